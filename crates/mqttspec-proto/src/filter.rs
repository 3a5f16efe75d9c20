//! Filter evaluation and row ordering on JSON rows, with the same semantics
//! as the SQL `mqttspec-server` generates, so a subscription (or a client's
//! live query) decides exactly as a database read would.
//!
//! Semantics (mirrored by the server's SQL):
//! - Groups: see [`crate::options`]; AND binds tighter than OR; no filters
//!   match every row.
//! - NULL: a NULL (or missing) column matches only `is_null`; every other
//!   operator, `neq` and `not_in` included, is false on NULL, as in SQL.
//! - Coercion: the filter value is converted to the type of the row's value
//!   (the column's type): to a number from a numeric string or a bool
//!   (`true` = 1), to text from a number or bool, to a bool from `"true"`,
//!   `"false"`, 1 or 0. A value that cannot be converted makes the predicate
//!   false (and is left out of `in`/`not_in` lists).
//! - Numbers compare as numbers, text by bytes (SQLite's BINARY, PostgreSQL
//!   `COLLATE "C"`), bools false < true.
//! - `like` is case-sensitive; `ilike` folds ASCII case only; `%` matches
//!   any run, `_` one character, `\` escapes the next character. The column
//!   value is compared as text.
//! - `between` is inclusive; `not_in` with an empty list is true for a
//!   non-NULL column.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::options::{group_filters, Direction, Filter, FilterOp, Sort};

/// A JSON row: column name to value.
pub type Row = Map<String, Value>;

/// The type a filter value is converted to before comparing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Integers and floating point numbers.
    Number,
    /// Text (and anything else compared as text).
    Text,
    /// Booleans.
    Bool,
}

impl ValueKind {
    /// The kind of a non-NULL row value (arrays and objects count as text).
    pub fn of(value: &Value) -> Option<ValueKind> {
        match value {
            Value::Null => None,
            Value::Bool(_) => Some(ValueKind::Bool),
            Value::Number(_) => Some(ValueKind::Number),
            _ => Some(ValueKind::Text),
        }
    }
}

/// Convert `value` to `kind` (see the module doc); `None` if it cannot be.
pub fn coerce(value: &Value, kind: ValueKind) -> Option<Value> {
    match (kind, value) {
        (_, Value::Null) => None,
        (ValueKind::Number, Value::Number(_)) => Some(value.clone()),
        (ValueKind::Number, Value::Bool(b)) => Some(Value::from(u8::from(*b))),
        (ValueKind::Number, Value::String(s)) => parse_number(s.trim()),
        (ValueKind::Text, Value::String(_)) => Some(value.clone()),
        (ValueKind::Text, Value::Number(n)) => Some(Value::String(n.to_string())),
        (ValueKind::Text, Value::Bool(b)) => Some(Value::String(b.to_string())),
        (ValueKind::Bool, Value::Bool(_)) => Some(value.clone()),
        (ValueKind::Bool, Value::String(s)) => match s.as_str() {
            "true" => Some(Value::Bool(true)),
            "false" => Some(Value::Bool(false)),
            _ => None,
        },
        (ValueKind::Bool, Value::Number(n)) => match n.as_f64() {
            Some(1.0) => Some(Value::Bool(true)),
            Some(0.0) => Some(Value::Bool(false)),
            _ => None,
        },
        (_, Value::Array(_) | Value::Object(_)) => None,
    }
}

fn parse_number(s: &str) -> Option<Value> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(Value::from(i));
    }
    let f = s.parse::<f64>().ok().filter(|f| f.is_finite())?;
    serde_json::Number::from_f64(f).map(Value::Number)
}

/// The value as text, as a database would render it for `LIKE`.
pub fn as_text(value: &Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

/// Whether `row` satisfies `filters` (see the module doc for semantics).
pub fn matches(filters: &[Filter], row: &Row) -> bool {
    let groups = group_filters(filters);
    groups.is_empty()
        || groups
            .iter()
            .any(|group| group.iter().all(|f| filter_matches(f, row)))
}

/// Whether one filter holds for `row`.
pub fn filter_matches(filter: &Filter, row: &Row) -> bool {
    let cell = row.get(&filter.column).unwrap_or(&Value::Null);
    let Some(kind) = ValueKind::of(cell) else {
        return filter.operator == FilterOp::IsNull;
    };
    let cmp = |v: &Value| coerce(v, kind).map(|v| compare_values(cell, &v));
    let holds = |v: &Value, ok: fn(Ordering) -> bool| cmp(v).is_some_and(ok);
    match filter.operator {
        FilterOp::IsNull => false,
        FilterOp::IsNotNull => true,
        FilterOp::Eq => holds(&filter.value, Ordering::is_eq),
        FilterOp::Neq => holds(&filter.value, Ordering::is_ne),
        FilterOp::Gt => holds(&filter.value, Ordering::is_gt),
        FilterOp::Gte => holds(&filter.value, Ordering::is_ge),
        FilterOp::Lt => holds(&filter.value, Ordering::is_lt),
        FilterOp::Lte => holds(&filter.value, Ordering::is_le),
        FilterOp::In => list(&filter.value).any(|v| holds(v, Ordering::is_eq)),
        FilterOp::NotIn => list(&filter.value).filter_map(cmp).all(Ordering::is_ne),
        FilterOp::Between => match between_bounds(&filter.value) {
            Some((low, high)) => holds(low, Ordering::is_ge) && holds(high, Ordering::is_le),
            None => false,
        },
        FilterOp::Like | FilterOp::Ilike => {
            let (Some(text), Some(pattern)) = (as_text(cell), like_pattern(&filter.value)) else {
                return false;
            };
            if filter.operator == FilterOp::Ilike {
                like(&text.to_ascii_lowercase(), &pattern.to_ascii_lowercase())
            } else {
                like(&text, &pattern)
            }
        }
    }
}

/// Items of an `in`/`not_in` operand (a scalar counts as a one-item list).
pub fn list(value: &Value) -> impl Iterator<Item = &Value> {
    match value {
        Value::Array(items) => items.iter(),
        other => std::slice::from_ref(other).iter(),
    }
}

/// `[low, high]` of a `between` operand, if it is a two-item array.
pub fn between_bounds(value: &Value) -> Option<(&Value, &Value)> {
    match value.as_array().map(Vec::as_slice) {
        Some([low, high]) => Some((low, high)),
        _ => None,
    }
}

/// The pattern of a `like`/`ilike` operand: strings as is, numbers and
/// bools as text; `None` for anything else.
pub fn like_pattern(value: &Value) -> Option<String> {
    match value {
        Value::String(_) | Value::Number(_) | Value::Bool(_) => as_text(value),
        _ => None,
    }
}

/// SQL `LIKE` with `\` as escape character, case-sensitive.
pub fn like(text: &str, pattern: &str) -> bool {
    let text: Vec<char> = text.chars().collect();
    let pattern: Vec<char> = pattern.chars().collect();
    like_from(&text, &pattern)
}

fn like_from(text: &[char], pattern: &[char]) -> bool {
    let (mut t, mut p) = (0, 0);
    // Position after the last `%` seen, and the text position it is tried at.
    let mut backtrack: Option<(usize, usize)> = None;
    while let Some(tc) = text.get(t) {
        let step = match pattern.get(p) {
            Some('%') => {
                backtrack = Some((p + 1, t));
                p += 1;
                continue;
            }
            Some('_') => Some(1),
            Some('\\') => match pattern.get(p + 1) {
                Some(c) if c == tc => Some(2),
                _ => None,
            },
            Some(c) if c == tc => Some(1),
            _ => None,
        };
        match (step, backtrack) {
            (Some(n), _) => {
                p += n;
                t += 1;
            }
            (None, Some((bp, bt))) => {
                backtrack = Some((bp, bt + 1));
                p = bp;
                t = bt + 1;
            }
            (None, None) => return false,
        }
    }
    pattern
        .get(p..)
        .unwrap_or_default()
        .iter()
        .all(|c| *c == '%')
}

/// Total order on JSON values used for sorting: NULL < bool < number <
/// text < arrays/objects (by their JSON text); numbers numerically, text
/// by bytes.
pub fn compare_values(a: &Value, b: &Value) -> Ordering {
    fn rank(v: &Value) -> u8 {
        match v {
            Value::Null => 0,
            Value::Bool(_) => 1,
            Value::Number(_) => 2,
            Value::String(_) => 3,
            Value::Array(_) | Value::Object(_) => 4,
        }
    }
    match (a, b) {
        (Value::Bool(x), Value::Bool(y)) => x.cmp(y),
        (Value::Number(x), Value::Number(y)) => compare_numbers(x, y),
        (Value::String(x), Value::String(y)) => x.as_bytes().cmp(y.as_bytes()),
        _ if rank(a) == rank(b) && rank(a) == 4 => a.to_string().cmp(&b.to_string()),
        _ => rank(a).cmp(&rank(b)),
    }
}

fn compare_numbers(x: &serde_json::Number, y: &serde_json::Number) -> Ordering {
    match (x.as_i64(), y.as_i64()) {
        (Some(a), Some(b)) => a.cmp(&b),
        _ => {
            let (a, b) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            a.partial_cmp(&b).unwrap_or(Ordering::Equal)
        }
    }
}

/// Order two rows by `sort` (NULL first ascending, last descending). Rows
/// equal on every key compare equal: append the primary key to `sort` for
/// a total order, as the server does.
pub fn compare_rows(a: &Row, b: &Row, sort: &[Sort]) -> Ordering {
    for key in sort {
        let x = a.get(&key.column).unwrap_or(&Value::Null);
        let y = b.get(&key.column).unwrap_or(&Value::Null);
        let ord = compare_values(x, y);
        let ord = match key.direction {
            Direction::Asc => ord,
            Direction::Desc => ord.reverse(),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap()
    }

    fn check(op: FilterOp, value: Value, cell: Value) -> bool {
        filter_matches(&Filter::new("c", op, value), &row(json!({ "c": cell })))
    }

    #[test]
    fn comparison_operators_on_numbers_and_text() {
        use FilterOp::*;
        let cases = [
            (Eq, json!(5), json!(5), true),
            (Eq, json!(5), json!(5.0), true),
            (Eq, json!(5), json!(6), false),
            (Neq, json!(5), json!(6), true),
            (Neq, json!(5), json!(5), false),
            (Gt, json!(5), json!(4.5), true),
            (Gt, json!(5), json!(5), false),
            (Gte, json!(5), json!(5), true),
            (Lt, json!(5), json!(10), true),
            (Lte, json!(5), json!(5), true),
            (Lte, json!(5), json!(4), false),
            (Eq, json!("a"), json!("a"), true),
            (Gt, json!("b"), json!("a"), true),
            // Byte order: upper case sorts before lower case.
            (Lt, json!("Z"), json!("a"), true),
        ];
        for (op, cell, value, expected) in cases {
            assert_eq!(
                check(op, value.clone(), cell.clone()),
                expected,
                "{value} {op:?} {cell}"
            );
        }
    }

    #[test]
    fn filter_value_is_coerced_to_the_column_type() {
        use FilterOp::*;
        // Number column, string operand: numeric comparison.
        assert!(check(Eq, json!("10"), json!(10)));
        assert!(check(Gt, json!("9"), json!(10)));
        assert!(check(Gt, json!(" 9.5 "), json!(10)));
        // Text column, number operand: text comparison ("10" < "9").
        assert!(check(Lt, json!(9), json!("10")));
        assert!(check(Eq, json!(5), json!("5")));
        // Bools from strings and 0/1, numbers from bools.
        assert!(check(Eq, json!("true"), json!(true)));
        assert!(check(Eq, json!(0), json!(false)));
        assert!(check(Eq, json!(true), json!(1)));
        // Unconvertible operands make the predicate false, even for neq.
        assert!(!check(Eq, json!("ten"), json!(10)));
        assert!(!check(Neq, json!("ten"), json!(10)));
        assert!(!check(Eq, json!("yes"), json!(true)));
        assert!(!check(Eq, json!([1]), json!(1)));
    }

    #[test]
    fn null_matches_only_is_null() {
        for op in FilterOp::ALL {
            let on_null = check(op, json!([1, 2]), Value::Null);
            assert_eq!(on_null, op == FilterOp::IsNull, "{op:?}");
            let missing = filter_matches(&Filter::new("c", op, json!(1)), &Row::new());
            assert_eq!(
                missing,
                op == FilterOp::IsNull,
                "{op:?} on a missing column"
            );
        }
        assert!(check(FilterOp::IsNotNull, Value::Null, json!(0)));
        assert!(!check(FilterOp::Eq, Value::Null, json!(0)));
        assert!(!check(FilterOp::Neq, Value::Null, json!(0)));
    }

    #[test]
    fn in_not_in_between() {
        use FilterOp::*;
        assert!(check(In, json!([1, 2, 3]), json!(2)));
        assert!(check(In, json!(["1", "x"]), json!(1)));
        assert!(!check(In, json!([]), json!(1)));
        assert!(check(In, json!(2), json!(2)), "a scalar is a one-item list");
        assert!(check(NotIn, json!([1, 3]), json!(2)));
        assert!(!check(NotIn, json!([1, 2]), json!(2)));
        assert!(check(NotIn, json!([]), json!(2)));
        assert!(
            check(NotIn, json!(["x"]), json!(2)),
            "unconvertible items are dropped"
        );
        assert!(check(Between, json!([1, 3]), json!(1)));
        assert!(check(Between, json!([1, 3]), json!(3)));
        assert!(!check(Between, json!([1, 3]), json!(3.5)));
        assert!(check(Between, json!(["a", "c"]), json!("b")));
        assert!(!check(Between, json!([3, 1]), json!(2)));
        assert!(!check(Between, json!([1]), json!(1)));
        assert!(!check(Between, json!(1), json!(1)));
    }

    #[test]
    fn like_patterns() {
        assert!(like("hello", "hello"));
        assert!(like("hello", "h%"));
        assert!(like("hello", "%llo"));
        assert!(like("hello", "%l%"));
        assert!(like("hello", "h_llo"));
        assert!(!like("hello", "h_lo"));
        assert!(like("", "%"));
        assert!(!like("", "_"));
        assert!(like("a%b", "a\\%b"));
        assert!(!like("axb", "a\\%b"));
        assert!(like("a_b", "a\\_b"));
        assert!(!like("Hello", "hello"));
        assert!(like("mississippi", "%iss%ppi"));
        assert!(like("abcabc", "%abc"));
        assert!(like("aaa", "%%a"));
        assert!(like("héllo", "h_llo"), "_ is one character, not one byte");
        assert!(check(FilterOp::Ilike, json!("HEL%"), json!("hello")));
        assert!(!check(FilterOp::Like, json!("HEL%"), json!("hello")));
        assert!(
            check(FilterOp::Like, json!("4%"), json!(42)),
            "numbers compare as text"
        );
        assert!(!check(FilterOp::Like, json!(["x"]), json!("x")));
    }

    #[test]
    fn and_or_precedence() {
        let r = row(json!({"a": 1, "b": 2, "c": 3}));
        let f = |c: &str, v: i64| Filter::new(c, FilterOp::Eq, json!(v));
        // a=1 AND b=0 OR c=3  ==  (a=1 AND b=0) OR c=3  -> true
        assert!(matches(&[f("a", 1), f("b", 0), f("c", 3).or()], &r));
        // a=0 OR b=2 AND c=0  ==  a=0 OR (b=2 AND c=0)  -> false
        assert!(!matches(&[f("a", 0), f("b", 2).or(), f("c", 0)], &r));
        assert!(matches(&[], &r));
    }

    #[test]
    fn rows_sort_with_nulls_first_ascending() {
        let rows: Vec<Row> = [json!({"n": 2}), json!({"n": null}), json!({"n": 1})]
            .into_iter()
            .map(row)
            .collect();
        let mut asc = rows.clone();
        let key = |d| {
            vec![Sort {
                column: "n".into(),
                direction: d,
            }]
        };
        asc.sort_by(|a, b| compare_rows(a, b, &key(Direction::Asc)));
        assert_eq!(
            asc.iter().map(|r| r["n"].clone()).collect::<Vec<_>>(),
            [json!(null), json!(1), json!(2)]
        );
        let mut desc = rows;
        desc.sort_by(|a, b| compare_rows(a, b, &key(Direction::Desc)));
        assert_eq!(
            desc.iter().map(|r| r["n"].clone()).collect::<Vec<_>>(),
            [json!(2), json!(1), json!(null)]
        );
        assert_eq!(compare_values(&json!(1.5), &json!(2)), Ordering::Less);
        assert_eq!(compare_values(&json!(9), &json!("1")), Ordering::Less);
    }
}
