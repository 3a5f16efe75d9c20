//! SQL text for the operations, for both dialects. Identifiers come only
//! from an [`Entity`] (the database's own catalog) and are quoted; every
//! value is a bound [`Param`]. Filter semantics are those of
//! `mqttspec_proto::filter` (same grouping, NULL handling, coercion and
//! `LIKE` escaping), so a read returns exactly the rows `matches` accepts.
//!
//! Callers must have checked every column name against the entity first
//! (`crate::handler::check_options`); an unknown one here is a bug and yields
//! an error, never SQL.

use mqttspec_proto::filter::{between_bounds, coerce, like_pattern, list, ValueKind};
use mqttspec_proto::options::group_filters;
use mqttspec_proto::{Direction, Filter, FilterOp, Sort};
use serde_json::Value;

use super::postgres::{integer_range, is_text_type};
use super::{Column, DbError, Dialect, Entity, Param};

/// A statement and its parameters.
pub type Statement = (String, Vec<Param>);

/// Quote an identifier (`"name"`, inner quotes doubled).
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Builds one statement for one entity.
pub struct SqlBuilder<'a> {
    dialect: Dialect,
    entity: &'a Entity,
    params: Vec<Param>,
}

impl<'a> SqlBuilder<'a> {
    /// A builder for statements on `entity`.
    pub fn new(dialect: Dialect, entity: &'a Entity) -> Self {
        SqlBuilder {
            dialect,
            entity,
            params: Vec::new(),
        }
    }

    fn column(&self, name: &str) -> Result<&'a Column, DbError> {
        self.entity.column(name).ok_or_else(|| {
            DbError(format!(
                "column {name:?} is not a column of {}",
                self.entity.full_name()
            ))
        })
    }

    fn table(&self) -> String {
        match &self.entity.db_schema {
            Some(schema) => format!("{}.{}", ident(schema), ident(&self.entity.table)),
            None => ident(&self.entity.table),
        }
    }

    /// Placeholder for a new parameter stored in `column`.
    fn param(&mut self, column: &Column, param: Param) -> String {
        self.params.push(param);
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres if is_text_type(&column.sql_type) => format!("${n}::text"),
            Dialect::Postgres => format!("${n}::text::{}", ident(&column.sql_type)),
        }
    }

    /// Placeholder for a new parameter compared with `column`: on
    /// PostgreSQL an integer compared with an integer column is cast to the
    /// column's type (so its index serves `id = 7`); other numbers are
    /// compared as `numeric`, so `2.5` works on an integer column.
    fn compared_param(&mut self, column: &Column, param: Param) -> String {
        let integer_to_integer = match (&param, integer_range(&column.sql_type)) {
            (Param::Number(n), Some(range)) => n.as_i64().is_some_and(|i| range.contains(&i)),
            _ => false,
        };
        if self.dialect == Dialect::Postgres
            && column.kind == ValueKind::Number
            && !integer_to_integer
        {
            self.params.push(param);
            return format!("${}::text::numeric", self.params.len());
        }
        self.param(column, param)
    }

    /// Placeholder for a text parameter (LIKE patterns).
    fn text_param(&mut self, text: String) -> String {
        self.params.push(Param::Text(text));
        let n = self.params.len();
        match self.dialect {
            Dialect::Sqlite => format!("?{n}"),
            Dialect::Postgres => format!("${n}::text"),
        }
    }

    /// The column for ordering comparisons (`COLLATE "C"` on PostgreSQL text).
    fn ordered(&self, column: &Column) -> String {
        match self.dialect {
            Dialect::Postgres if is_text_type(&column.sql_type) => {
                format!("{} COLLATE \"C\"", ident(&column.name))
            }
            _ => ident(&column.name),
        }
    }

    fn value(&mut self, column: &Column, value: &Value) -> Option<String> {
        let coerced = coerce(value, column.kind)?;
        Some(self.compared_param(column, Param::from_json(&coerced)))
    }

    fn predicate(&mut self, filter: &Filter) -> Result<String, DbError> {
        const FALSE: &str = "1 = 0";
        let column = self.column(&filter.column)?;
        let name = ident(&column.name);
        let cmp = |b: &mut Self, op: &str, ordered: bool| {
            let lhs = if ordered {
                b.ordered(column)
            } else {
                name.clone()
            };
            match b.value(column, &filter.value) {
                Some(ph) => format!("{lhs} {op} {ph}"),
                None => FALSE.to_string(),
            }
        };
        Ok(match filter.operator {
            FilterOp::IsNull => format!("{name} IS NULL"),
            FilterOp::IsNotNull => format!("{name} IS NOT NULL"),
            FilterOp::Eq => cmp(self, "=", false),
            FilterOp::Neq => cmp(self, "<>", false),
            FilterOp::Gt => cmp(self, ">", true),
            FilterOp::Gte => cmp(self, ">=", true),
            FilterOp::Lt => cmp(self, "<", true),
            FilterOp::Lte => cmp(self, "<=", true),
            FilterOp::In | FilterOp::NotIn => {
                let items: Vec<String> = list(&filter.value)
                    .filter_map(|v| self.value(column, v))
                    .collect();
                match (filter.operator, items.is_empty()) {
                    (FilterOp::In, true) => FALSE.to_string(),
                    (_, true) => format!("{name} IS NOT NULL"),
                    (FilterOp::In, false) => format!("{name} IN ({})", items.join(", ")),
                    (_, false) => format!("{name} NOT IN ({})", items.join(", ")),
                }
            }
            FilterOp::Between => {
                // Both bounds are converted before either is bound.
                let bounds = between_bounds(&filter.value).and_then(|(low, high)| {
                    Some((coerce(low, column.kind)?, coerce(high, column.kind)?))
                });
                match bounds {
                    Some((low, high)) => {
                        let low = self.compared_param(column, Param::from_json(&low));
                        let high = self.compared_param(column, Param::from_json(&high));
                        format!("{} BETWEEN {low} AND {high}", self.ordered(column))
                    }
                    None => FALSE.to_string(),
                }
            }
            FilterOp::Like | FilterOp::Ilike => match like_pattern(&filter.value) {
                None => FALSE.to_string(),
                Some(pattern) => {
                    let ph = self.text_param(pattern);
                    if filter.operator == FilterOp::Like {
                        format!("CAST({name} AS TEXT) LIKE {ph} ESCAPE '\\'")
                    } else {
                        format!("lower(CAST({name} AS TEXT)) LIKE lower({ph}) ESCAPE '\\'")
                    }
                }
            },
        })
    }

    /// ` WHERE ...` for `filters` (AND binds tighter than OR), or nothing.
    pub fn where_clause(&mut self, filters: &[Filter]) -> Result<String, DbError> {
        let mut groups = Vec::new();
        for group in group_filters(filters) {
            let preds: Vec<String> = group
                .iter()
                .map(|f| self.predicate(f))
                .collect::<Result<_, _>>()?;
            groups.push(format!("({})", preds.join(" AND ")));
        }
        Ok(if groups.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", groups.join(" OR "))
        })
    }

    /// ` ORDER BY ...`: `sort` then the primary key, NULL lowest.
    fn order_by(&self, sort: &[Sort]) -> Result<String, DbError> {
        let mut keys = Vec::new();
        let mut used: Vec<&str> = Vec::new();
        let pk = self
            .entity
            .columns
            .iter()
            .filter(|c| c.primary)
            .map(|c| Sort {
                column: c.name.clone(),
                direction: Direction::Asc,
            });
        let all: Vec<Sort> = sort.iter().cloned().chain(pk).collect();
        for key in &all {
            if used.contains(&key.column.as_str()) {
                continue;
            }
            let column = self.column(&key.column)?;
            used.push(&column.name);
            keys.push(match key.direction {
                Direction::Asc => format!("{} ASC NULLS FIRST", self.ordered(column)),
                Direction::Desc => format!("{} DESC NULLS LAST", self.ordered(column)),
            });
        }
        Ok(if keys.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", keys.join(", "))
        })
    }

    fn projection(&self, columns: &[String]) -> Result<String, DbError> {
        let names: Vec<String> = columns
            .iter()
            .map(|c| self.column(c).map(|c| ident(&c.name)))
            .collect::<Result<_, _>>()?;
        Ok(names.join(", "))
    }

    fn finish(self, sql: String) -> Statement {
        (sql, self.params)
    }

    /// `SELECT columns FROM t WHERE ... ORDER BY ... LIMIT ... OFFSET ...`.
    pub fn select(
        mut self,
        columns: &[String],
        filters: &[Filter],
        sort: &[Sort],
        limit: Option<u64>,
        offset: Option<u64>,
    ) -> Result<Statement, DbError> {
        let mut sql = format!("SELECT {} FROM {}", self.projection(columns)?, self.table());
        sql += &self.where_clause(filters)?;
        sql += &self.order_by(sort)?;
        match (limit, offset) {
            (Some(l), o) => sql += &format!(" LIMIT {l} OFFSET {}", o.unwrap_or(0)),
            (None, Some(o)) if self.dialect == Dialect::Sqlite => {
                sql += &format!(" LIMIT -1 OFFSET {o}")
            }
            (None, Some(o)) => sql += &format!(" OFFSET {o}"),
            (None, None) => {}
        }
        Ok(self.finish(sql))
    }

    /// `SELECT COUNT(*) AS total FROM t WHERE ...`.
    pub fn count(mut self, filters: &[Filter]) -> Result<Statement, DbError> {
        let sql = format!(
            "SELECT COUNT(*) AS total FROM {}{}",
            self.table(),
            self.where_clause(filters)?
        );
        Ok(self.finish(sql))
    }

    /// Store parameter of a `data` value for `column`.
    fn data_value(&mut self, name: &str, value: &Value) -> Result<(String, String), DbError> {
        let column = self.column(name)?;
        let param = match value {
            Value::Null => Param::Null,
            Value::Array(_) | Value::Object(_) if column.kind == ValueKind::Text => {
                Param::Text(value.to_string())
            }
            other => match coerce(other, column.kind) {
                Some(v) => Param::from_json(&v),
                None => {
                    return Err(DbError(format!(
                        "column {name:?} ({}) cannot store {other}",
                        column.sql_type
                    )))
                }
            },
        };
        Ok((ident(&column.name), self.param(column, param)))
    }

    /// `INSERT INTO t (...) VALUES (...) RETURNING *`.
    pub fn insert(mut self, data: &[(&String, &Value)]) -> Result<Statement, DbError> {
        let table = self.table();
        let sql = if data.is_empty() {
            format!("INSERT INTO {table} DEFAULT VALUES RETURNING *")
        } else {
            let pairs: Vec<(String, String)> = data
                .iter()
                .map(|(k, v)| self.data_value(k, v))
                .collect::<Result<_, _>>()?;
            let (names, values): (Vec<String>, Vec<String>) = pairs.into_iter().unzip();
            format!(
                "INSERT INTO {table} ({}) VALUES ({}) RETURNING *",
                names.join(", "),
                values.join(", ")
            )
        };
        Ok(self.finish(sql))
    }

    /// `UPDATE t SET ... WHERE ... RETURNING *` (`data` must not be empty).
    pub fn update(
        mut self,
        data: &[(&String, &Value)],
        filters: &[Filter],
    ) -> Result<Statement, DbError> {
        let sets: Vec<String> = data
            .iter()
            .map(|(k, v)| self.data_value(k, v).map(|(n, p)| format!("{n} = {p}")))
            .collect::<Result<_, _>>()?;
        let sql = format!(
            "UPDATE {} SET {}{} RETURNING *",
            self.table(),
            sets.join(", "),
            self.where_clause(filters)?
        );
        Ok(self.finish(sql))
    }

    /// `DELETE FROM t WHERE ... RETURNING *`.
    pub fn delete(mut self, filters: &[Filter]) -> Result<Statement, DbError> {
        let sql = format!(
            "DELETE FROM {}{} RETURNING *",
            self.table(),
            self.where_clause(filters)?
        );
        Ok(self.finish(sql))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn entity() -> Entity {
        let col = |name: &str, kind, primary: bool| Column {
            name: name.into(),
            sql_type: if kind == ValueKind::Number {
                "INTEGER"
            } else {
                "TEXT"
            }
            .into(),
            kind,
            nullable: !primary,
            primary,
            unique: primary,
            indexed: primary,
        };
        Entity {
            schema: "public".into(),
            name: "users".into(),
            db_schema: None,
            table: "public_users".into(),
            columns: vec![
                col("id", ValueKind::Number, true),
                col("name", ValueKind::Text, false),
            ],
        }
    }

    #[test]
    fn select_binds_values_and_groups_or() {
        let e = entity();
        let filters = vec![
            Filter::new("id", FilterOp::Gt, json!("1")),
            Filter::new("name", FilterOp::Eq, json!("x'); DROP TABLE t; --")),
            Filter::new("name", FilterOp::IsNull, json!(null)).or(),
        ];
        let (sql, params) = SqlBuilder::new(Dialect::Sqlite, &e)
            .select(&["id".into()], &filters, &[], Some(5), None)
            .unwrap();
        assert_eq!(
            sql,
            "SELECT \"id\" FROM \"public_users\" WHERE (\"id\" > ?1 AND \"name\" = ?2) OR (\"name\" IS NULL) ORDER BY \"id\" ASC NULLS FIRST LIMIT 5 OFFSET 0"
        );
        assert_eq!(params[0], Param::Number(1.into()));
        assert_eq!(params[1], Param::Text("x'); DROP TABLE t; --".into()));
    }

    #[test]
    fn postgres_integers_keep_the_column_type_so_indexes_serve() {
        let mut e = entity();
        e.columns[0].sql_type = "int4".into();
        let sql = |value| {
            let filters = [Filter::new("id", FilterOp::Eq, value)];
            SqlBuilder::new(Dialect::Postgres, &e)
                .count(&filters)
                .unwrap()
                .0
        };
        assert!(
            sql(json!(7)).contains("\"id\" = $1::text::\"int4\""),
            "{}",
            sql(json!(7))
        );
        assert!(
            sql(json!(2.5)).contains("$1::text::numeric"),
            "fractions compare as numeric"
        );
        assert!(
            sql(json!(99_999_999_999_i64)).contains("$1::text::numeric"),
            "out of int4 range: no match instead of a cast error"
        );
    }

    #[test]
    fn unknown_columns_never_reach_sql() {
        let e = entity();
        let bad = [Filter::new("id\" OR 1=1 --", FilterOp::Eq, json!(1))];
        assert!(SqlBuilder::new(Dialect::Sqlite, &e).count(&bad).is_err());
        let sort = [Sort {
            column: "name; DROP TABLE x".into(),
            direction: Direction::Asc,
        }];
        assert!(SqlBuilder::new(Dialect::Sqlite, &e)
            .select(&["id".into()], &[], &sort, None, None)
            .is_err());
        assert!(SqlBuilder::new(Dialect::Postgres, &e)
            .select(&["*".into()], &[], &[], None, None)
            .is_err());
    }

    #[test]
    fn postgres_casts_text_parameters_to_the_column_type() {
        let e = entity();
        let (sql, params) = SqlBuilder::new(Dialect::Postgres, &e)
            .update(
                &[(&"name".to_string(), &json!(7))],
                &[Filter::new("id", FilterOp::Eq, json!(3))],
            )
            .unwrap();
        assert_eq!(
            sql,
            "UPDATE \"public_users\" SET \"name\" = $1::text::\"TEXT\" WHERE (\"id\" = $2::text::numeric) RETURNING *"
        );
        assert_eq!(
            params,
            vec![Param::Text("7".into()), Param::Number(3.into())]
        );
    }
}
