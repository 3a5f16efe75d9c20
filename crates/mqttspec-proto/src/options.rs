//! Typed request options: filters, sort, paging and column selection, as
//! carried in a message's `options` object.
//!
//! Filters combine left to right through each filter's `logic_operator`
//! (`AND` by default, `OR`), with **AND binding tighter than OR** (SQL's own
//! precedence): `a AND b OR c AND d` means `(a AND b) OR (c AND d)`.
//! [`Options::filter_groups`] returns exactly that grouping; the server's SQL
//! and [`crate::filter::matches`] both evaluate it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Comparison operator of a filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FilterOp {
    /// Equal.
    Eq,
    /// Not equal (never matches a NULL column, as in SQL).
    Neq,
    /// Greater than.
    Gt,
    /// Greater than or equal.
    Gte,
    /// Less than.
    Lt,
    /// Less than or equal.
    Lte,
    /// SQL `LIKE`, case-sensitive: `%` any run, `_` one character, `\` escapes.
    Like,
    /// `LIKE` ignoring ASCII case.
    Ilike,
    /// Value is an array; the column equals one of its items.
    In,
    /// Value is an array; the column is not NULL and equals none of its items.
    NotIn,
    /// The column is NULL (value ignored).
    IsNull,
    /// The column is not NULL (value ignored).
    IsNotNull,
    /// Value is `[low, high]`; inclusive range.
    Between,
}

impl FilterOp {
    /// Every operator, in wire order.
    pub const ALL: [FilterOp; 13] = [
        FilterOp::Eq,
        FilterOp::Neq,
        FilterOp::Gt,
        FilterOp::Gte,
        FilterOp::Lt,
        FilterOp::Lte,
        FilterOp::Like,
        FilterOp::Ilike,
        FilterOp::In,
        FilterOp::NotIn,
        FilterOp::IsNull,
        FilterOp::IsNotNull,
        FilterOp::Between,
    ];

    /// The operator's wire name (`"not_in"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            FilterOp::Eq => "eq",
            FilterOp::Neq => "neq",
            FilterOp::Gt => "gt",
            FilterOp::Gte => "gte",
            FilterOp::Lt => "lt",
            FilterOp::Lte => "lte",
            FilterOp::Like => "like",
            FilterOp::Ilike => "ilike",
            FilterOp::In => "in",
            FilterOp::NotIn => "not_in",
            FilterOp::IsNull => "is_null",
            FilterOp::IsNotNull => "is_not_null",
            FilterOp::Between => "between",
        }
    }
}

/// How a filter combines with the previous one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Logic {
    /// Both must hold (default).
    #[default]
    #[serde(rename = "AND", alias = "and")]
    And,
    /// Either holds.
    #[serde(rename = "OR", alias = "or")]
    Or,
}

/// One filter: `{column, operator, value, logic_operator}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Filter {
    /// Column name; must be one of the entity's columns.
    pub column: String,
    /// Comparison operator.
    pub operator: FilterOp,
    /// Operand (array for `in`/`not_in`/`between`, ignored for null tests).
    #[serde(default)]
    pub value: Value,
    /// How this filter combines with the previous one.
    #[serde(default, skip_serializing_if = "is_and")]
    pub logic_operator: Logic,
}

fn is_and(logic: &Logic) -> bool {
    *logic == Logic::And
}

impl Filter {
    /// A filter combined with AND.
    pub fn new(column: impl Into<String>, operator: FilterOp, value: Value) -> Self {
        Filter {
            column: column.into(),
            operator,
            value,
            logic_operator: Logic::And,
        }
    }

    /// The same filter combined with the previous one by OR.
    pub fn or(mut self) -> Self {
        self.logic_operator = Logic::Or;
        self
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Ascending (default); NULL sorts first.
    #[default]
    #[serde(alias = "ASC")]
    Asc,
    /// Descending; NULL sorts last.
    #[serde(alias = "DESC")]
    Desc,
}

/// One sort key: `{column, direction}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sort {
    /// Column name; must be one of the entity's columns.
    pub column: String,
    /// Direction, ascending by default.
    #[serde(default)]
    pub direction: Direction,
}

/// A message's `options`. Unknown fields (e.g. `preload`, cursors) are
/// kept in `extra` so a message roundtrips.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Only these columns in results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub columns: Option<Vec<String>>,
    /// Leave these columns out of results.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub omit_columns: Option<Vec<String>>,
    /// Row filters.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filters: Vec<Filter>,
    /// Sort keys, most significant first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sort: Vec<Sort>,
    /// At most this many rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
    /// Skip this many rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    /// On a subscribe: resume after this change sequence (the last `seq`
    /// the client applied) instead of starting from now; see
    /// [`crate::response::SubscribeData::resume`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<u64>,
    /// Fields this crate does not interpret.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, Value>,
}

impl Options {
    /// Parse a message's `options` value (absent or `null` is empty).
    pub fn from_value(value: Option<&Value>) -> Result<Options, serde_json::Error> {
        match value {
            None | Some(Value::Null) => Ok(Options::default()),
            Some(v) => Options::deserialize(v),
        }
    }

    /// Filters grouped for evaluation: the outer list is OR-ed, each inner
    /// list AND-ed. A filter whose `logic_operator` is `OR` starts a new group.
    pub fn filter_groups(&self) -> Vec<Vec<&Filter>> {
        group_filters(&self.filters)
    }

    /// Every column name the options refer to (filters, sort, columns,
    /// omit_columns), for checking against the entity's columns.
    pub fn referenced_columns(&self) -> impl Iterator<Item = &str> {
        self.filters
            .iter()
            .map(|f| f.column.as_str())
            .chain(self.sort.iter().map(|s| s.column.as_str()))
            .chain(self.columns.iter().flatten().map(String::as_str))
            .chain(self.omit_columns.iter().flatten().map(String::as_str))
    }
}

/// See [`Options::filter_groups`].
pub fn group_filters(filters: &[Filter]) -> Vec<Vec<&Filter>> {
    let mut groups: Vec<Vec<&Filter>> = Vec::new();
    for filter in filters {
        match (filter.logic_operator, groups.last_mut()) {
            (Logic::And, Some(group)) => group.push(filter),
            _ => groups.push(vec![filter]),
        }
    }
    groups
}

/// `filters` with `extra` required on top: `extra` is AND-ed into every OR
/// group, so `a OR b` becomes `(a AND extra) OR (b AND extra)`. Used to
/// inject tenant filters or a record key without widening the request.
pub fn require_filter(filters: &[Filter], extra: Filter) -> Vec<Filter> {
    let mut out: Vec<Filter> = Vec::with_capacity(filters.len() + 1);
    let groups = group_filters(filters);
    if groups.is_empty() {
        return vec![Filter {
            logic_operator: Logic::And,
            ..extra
        }];
    }
    for group in groups {
        for (i, filter) in group.into_iter().enumerate() {
            let logic = if i == 0 && !out.is_empty() {
                Logic::Or
            } else {
                Logic::And
            };
            out.push(Filter {
                logic_operator: logic,
                ..filter.clone()
            });
        }
        out.push(Filter {
            logic_operator: Logic::And,
            ..extra.clone()
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn options_parse_all_fields_and_keep_unknown_ones() {
        let raw = json!({
            "columns": ["id", "name"], "omit_columns": ["email"],
            "filters": [
                {"column": "status", "operator": "eq", "value": "active"},
                {"column": "age", "operator": "between", "value": [1, 2], "logic_operator": "OR"},
                {"column": "x", "operator": "is_not_null"}
            ],
            "sort": [{"column": "name", "direction": "desc"}, {"column": "id"}],
            "limit": 20, "offset": 5, "preload": [{"relation": "posts"}]
        });
        let options = Options::from_value(Some(&raw)).unwrap();
        assert_eq!(options.filters[1].operator, FilterOp::Between);
        assert_eq!(options.filters[1].logic_operator, Logic::Or);
        assert_eq!(options.filters[2].value, Value::Null);
        assert_eq!(options.sort[0].direction, Direction::Desc);
        assert_eq!(options.sort[1].direction, Direction::Asc);
        assert_eq!((options.limit, options.offset), (Some(20), Some(5)));
        assert!(options.extra.contains_key("preload"));
        let cols: Vec<&str> = options.referenced_columns().collect();
        assert_eq!(
            cols,
            ["status", "age", "x", "name", "id", "id", "name", "email"]
        );
        let mut back = serde_json::to_value(&options).unwrap();
        back["sort"][1]["direction"] = json!(null);
        assert_eq!(back["filters"][0].get("logic_operator"), None);
    }

    #[test]
    fn every_operator_has_its_wire_name() {
        for op in FilterOp::ALL {
            let back: FilterOp = serde_json::from_value(json!(op.as_str())).unwrap();
            assert_eq!(back, op);
        }
        assert!(serde_json::from_value::<FilterOp>(json!("contains")).is_err());
    }

    #[test]
    fn and_binds_tighter_than_or() {
        let f = |c: &str| Filter::new(c, FilterOp::IsNull, Value::Null);
        let filters = vec![f("a"), f("b"), f("c").or(), f("d"), f("e").or()];
        let groups: Vec<Vec<&str>> = group_filters(&filters)
            .iter()
            .map(|g| g.iter().map(|f| f.column.as_str()).collect())
            .collect();
        assert_eq!(groups, vec![vec!["a", "b"], vec!["c", "d"], vec!["e"]]);
        // A leading OR has no previous filter: it simply starts the first group.
        assert_eq!(group_filters(&[f("a").or(), f("b")]).len(), 1);
        assert!(group_filters(&[]).is_empty());
    }

    #[test]
    fn required_filter_goes_into_every_group() {
        let f = |c: &str| Filter::new(c, FilterOp::IsNull, Value::Null);
        let t = f("tenant").or();
        let required = require_filter(&[f("a"), f("b").or()], t.clone());
        let groups: Vec<Vec<&str>> = group_filters(&required)
            .iter()
            .map(|g| g.iter().map(|f| f.column.as_str()).collect())
            .collect();
        assert_eq!(groups, vec![vec!["a", "tenant"], vec!["b", "tenant"]]);
        assert_eq!(require_filter(&[], t).len(), 1);
    }
}
