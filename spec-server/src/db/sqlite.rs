//! SQLite through rusqlite (bundled): one connection behind a mutex, used
//! from blocking threads. Tables named `schema_entity` are served as
//! `schema.entity`; a table without `_` as `main.table`.

use std::sync::{Arc, Mutex, Weak};

use base64::Engine;
use mqttspec_proto::filter::ValueKind;
use mqttspec_proto::Row;
use rusqlite::types::{Value as SqlValue, ValueRef};
use rusqlite::Connection;
use serde_json::Value;
use tokio::sync::Notify;

use super::{BoxFuture, Column, Database, DbError, Dialect, Entity, Param};

/// An SQLite database (a file, or `:memory:`).
pub struct SqliteDb {
    conn: Arc<Mutex<Connection>>,
    /// The file (`None` for an in-memory database).
    path: Option<String>,
}

fn db_err(e: impl std::fmt::Display) -> DbError {
    DbError(e.to_string())
}

impl SqliteDb {
    /// Open (or create) the database at `path` (`:memory:` for a private
    /// in-memory one). `LIKE` is made case-sensitive, as the protocol wants.
    pub fn open(path: &str) -> Result<SqliteDb, DbError> {
        let conn = Connection::open(path)
            .map_err(|e| DbError(format!("cannot open SQLite database {path:?}: {e}")))?;
        conn.execute_batch("PRAGMA case_sensitive_like = ON; PRAGMA foreign_keys = ON;")
            .map_err(db_err)?;
        if path != ":memory:" && !path.is_empty() {
            conn.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
                .map_err(db_err)?;
        }
        let file = path != ":memory:" && !path.is_empty();
        Ok(SqliteDb {
            conn: Arc::new(Mutex::new(conn)),
            path: file.then(|| path.to_string()),
        })
    }

    async fn with_conn<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, DbError> + Send + 'static,
    ) -> Result<T, DbError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            let conn = conn
                .lock()
                .map_err(|_| DbError("SQLite connection lock poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(db_err)?
    }
}

/// Kind of a column from its declared type. SQLite's affinity rules, except
/// that date/time types (numeric affinity in SQLite) hold ISO text here.
pub fn kind_of_declared(sql_type: &str) -> ValueKind {
    let t = sql_type.to_ascii_uppercase();
    if t.contains("DATE") || t.contains("TIME") {
        ValueKind::Text
    } else if t.contains("INT") || t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        ValueKind::Number
    } else if t.contains("CHAR")
        || t.contains("CLOB")
        || t.contains("TEXT")
        || t.contains("BLOB")
        || t.is_empty()
    {
        ValueKind::Text
    } else {
        ValueKind::Number
    }
}

/// Split a table name into `(schema, entity)`: `public_users` is
/// `("public", "users")`, `items` is `("main", "items")`.
pub fn split_table_name(table: &str) -> (String, String) {
    match table.split_once('_') {
        Some((schema, entity)) if !schema.is_empty() && !entity.is_empty() => {
            (schema.into(), entity.into())
        }
        _ => ("main".into(), table.into()),
    }
}

fn introspect(conn: &Connection) -> Result<Vec<Entity>, DbError> {
    let mut tables = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_mqttspec%' ESCAPE '\\' ORDER BY name")
        .map_err(db_err)?;
    let names: Vec<String> = tables
        .query_map([], |r| r.get(0))
        .map_err(db_err)?
        .collect::<Result<_, _>>()
        .map_err(db_err)?;
    let mut entities = Vec::new();
    for table in names {
        let mut columns: Vec<Column> = conn
            .prepare("SELECT name, type, \"notnull\", pk FROM pragma_table_info(?1) ORDER BY cid")
            .map_err(db_err)?
            .query_map([&table], |r| {
                let sql_type: String = r.get(1)?;
                Ok(Column {
                    name: r.get(0)?,
                    kind: kind_of_declared(&sql_type),
                    sql_type,
                    nullable: r.get::<_, i64>(2)? == 0,
                    primary: r.get::<_, i64>(3)? > 0,
                    unique: false,
                    indexed: false,
                })
            })
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        let indexes: Vec<(String, bool)> = conn
            .prepare("SELECT name, \"unique\" FROM pragma_index_list(?1)")
            .map_err(db_err)?
            .query_map([&table], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? != 0)))
            .map_err(db_err)?
            .collect::<Result<_, _>>()
            .map_err(db_err)?;
        for (index, unique) in indexes {
            let cols: Vec<String> = conn
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .map_err(db_err)?
                .query_map([&index], |r| r.get::<_, Option<String>>(0))
                .map_err(db_err)?
                .filter_map(|c| c.ok().flatten())
                .collect();
            for (pos, name) in cols.iter().enumerate() {
                if let Some(c) = columns.iter_mut().find(|c| &c.name == name) {
                    c.indexed |= pos == 0;
                    c.unique |= unique && cols.len() == 1;
                }
            }
        }
        for c in columns.iter_mut().filter(|c| c.primary) {
            c.indexed = true;
            c.nullable = false;
        }
        let single_pk = columns.iter().filter(|c| c.primary).count() == 1;
        for c in columns.iter_mut().filter(|c| c.primary && single_pk) {
            c.unique = true;
        }
        let (schema, name) = split_table_name(&table);
        entities.push(Entity {
            schema,
            name,
            db_schema: None,
            table,
            columns,
        });
    }
    Ok(entities)
}

fn to_sql(param: &Param) -> SqlValue {
    match param {
        Param::Null => SqlValue::Null,
        Param::Number(n) => match n.as_i64() {
            Some(i) => SqlValue::Integer(i),
            None => SqlValue::Real(n.as_f64().unwrap_or(0.0)),
        },
        Param::Text(s) => SqlValue::Text(s.clone()),
        Param::Bool(b) => SqlValue::Integer(i64::from(*b)),
    }
}

fn to_json(value: ValueRef<'_>) -> Value {
    match value {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::from(i),
        ValueRef::Real(f) => serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number),
        ValueRef::Text(t) => Value::String(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
    }
}

fn run_query(conn: &Connection, sql: &str, params: &[Param]) -> Result<Vec<Row>, DbError> {
    let mut stmt = conn.prepare_cached(sql).map_err(db_err)?;
    let names: Vec<String> = stmt.column_names().map(|s| s.to_string()).collect();
    let values: Vec<SqlValue> = params.iter().map(to_sql).collect();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(values))
        .map_err(db_err)?;
    let mut out = Vec::new();
    while let Some(row) = rows.next().map_err(db_err)? {
        let mut obj = Row::new();
        for (i, name) in names.iter().enumerate() {
            obj.insert(name.clone(), to_json(row.get_ref(i).map_err(db_err)?));
        }
        out.push(obj);
    }
    Ok(out)
}

impl Database for SqliteDb {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn entities(&self) -> BoxFuture<'_, Result<Vec<Entity>, DbError>> {
        Box::pin(self.with_conn(introspect))
    }

    fn execute_script<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), DbError>> {
        let sql = sql.to_string();
        Box::pin(self.with_conn(move |c| c.execute_batch(&sql).map_err(db_err)))
    }

    fn query(&self, sql: String, params: Vec<Param>) -> BoxFuture<'_, Result<Vec<Row>, DbError>> {
        Box::pin(self.with_conn(move |c| run_query(c, &sql, &params)))
    }

    fn watch_changes(&self, wake: Weak<Notify>) -> BoxFuture<'_, Result<(), DbError>> {
        let path = self.path.clone();
        Box::pin(async move {
            let Some(path) = path else {
                return Ok(()); // in memory: only this server writes, and it wakes the feed itself
            };
            let conn = Connection::open(&path).map_err(|e| {
                DbError(format!(
                    "cannot open SQLite database {path:?} to watch it: {e}"
                ))
            })?;
            let version = |c: &Connection| {
                c.query_row("PRAGMA data_version", [], |r| r.get::<_, i64>(0))
                    .map_err(db_err)
            };
            let mut seen = version(&conn)?;
            std::thread::Builder::new()
                .name("sqlite-watch".into())
                .spawn(move || {
                    // data_version changes when another connection commits.
                    while let Some(wake) = wake.upgrade() {
                        match version(&conn) {
                            Ok(v) if v != seen => {
                                seen = v;
                                wake.notify_one();
                            }
                            Ok(_) => {}
                            Err(e) => tracing::warn!(error = %e, "cannot read PRAGMA data_version"),
                        }
                        drop(wake);
                        std::thread::sleep(WATCH_INTERVAL);
                    }
                })
                .map_err(db_err)?;
            Ok(())
        })
    }
}

/// How often the SQLite watcher polls `PRAGMA data_version` (a page-cache
/// read, no I/O): other processes' writes reach subscribers within it plus
/// the feed's read.
const WATCH_INTERVAL: std::time::Duration = std::time::Duration::from_millis(10);
