//! The database behind one trait: entities (tables) and their columns, and
//! statements with bound parameters returning JSON rows. SQLite and
//! PostgreSQL implement it; SQL text is built by [`sql`] from checked
//! identifiers only.

pub mod capture;
pub mod postgres;
pub mod sql;
pub mod sqlite;

use std::future::Future;
use std::pin::Pin;
use std::sync::Weak;

use mqttspec_proto::filter::ValueKind;
use mqttspec_proto::Row;
use serde_json::Value;
use tokio::sync::Notify;

/// A boxed future, so the trait can be used as `dyn Database`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A database error, with the database's own message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DbError(pub String);

/// Which SQL dialect a database speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// SQLite 3.35+ (`RETURNING`, `NULLS FIRST`).
    Sqlite,
    /// PostgreSQL 12+.
    Postgres,
}

/// One column of an entity.
#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    /// Column name, as in the database.
    pub name: String,
    /// Declared SQL type (`INTEGER`, `text`, `timestamptz`, ...).
    pub sql_type: String,
    /// How filter values are converted for this column.
    pub kind: ValueKind,
    /// Whether it may hold NULL.
    pub nullable: bool,
    /// Part of the primary key.
    pub primary: bool,
    /// Has a unique constraint or unique index of its own.
    pub unique: bool,
    /// Is the first column of some index.
    pub indexed: bool,
}

/// One table served as `schema.entity`.
#[derive(Debug, Clone, PartialEq)]
pub struct Entity {
    /// Schema name (`public`; for SQLite the part of the table name before `_`).
    pub schema: String,
    /// Entity name (for SQLite the part of the table name after `schema_`).
    pub name: String,
    /// Schema of the table in the database (PostgreSQL), if any.
    pub db_schema: Option<String>,
    /// Table name in the database.
    pub table: String,
    /// Columns in table order.
    pub columns: Vec<Column>,
}

impl Entity {
    /// The column called `name`, if the entity has it.
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The single-column primary key, if the table has one.
    pub fn primary_key(&self) -> Option<&Column> {
        let mut keys = self.columns.iter().filter(|c| c.primary);
        match (keys.next(), keys.next()) {
            (Some(key), None) => Some(key),
            _ => None,
        }
    }

    /// `schema.entity`.
    pub fn full_name(&self) -> String {
        format!("{}.{}", self.schema, self.name)
    }
}

/// A bound parameter: already converted to the column's kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Param {
    /// SQL NULL.
    Null,
    /// A number (or a bool stored as 0/1 in SQLite).
    Number(serde_json::Number),
    /// Text.
    Text(String),
    /// A bool.
    Bool(bool),
}

impl Param {
    /// The parameter for a JSON value already of the wanted kind.
    pub fn from_json(value: &Value) -> Param {
        match value {
            Value::Null => Param::Null,
            Value::Bool(b) => Param::Bool(*b),
            Value::Number(n) => Param::Number(n.clone()),
            Value::String(s) => Param::Text(s.clone()),
            other => Param::Text(other.to_string()),
        }
    }

    /// The value as text, as PostgreSQL receives every parameter.
    pub fn as_text(&self) -> Option<String> {
        match self {
            Param::Null => None,
            Param::Number(n) => Some(n.to_string()),
            Param::Text(s) => Some(s.clone()),
            Param::Bool(b) => Some(b.to_string()),
        }
    }
}

/// A database: introspection and statements with bound parameters.
pub trait Database: Send + Sync {
    /// The SQL dialect.
    fn dialect(&self) -> Dialect;

    /// Every table with its columns, primary key and indexes.
    fn entities(&self) -> BoxFuture<'_, Result<Vec<Entity>, DbError>>;

    /// Run a script of statements without parameters (schema files, demo data).
    fn execute_script<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), DbError>>;

    /// Run one statement returning rows (`SELECT`, or a write with
    /// `RETURNING *`); each row is a JSON object.
    fn query(&self, sql: String, params: Vec<Param>) -> BoxFuture<'_, Result<Vec<Row>, DbError>>;

    /// Wake `wake` soon after any process commits a change to the database
    /// (the change feed then reads the log; [`capture`]). Runs in the
    /// background until `wake` is dropped. SQLite: `PRAGMA data_version` on
    /// a second connection, polled every 10 ms (in-memory databases have no
    /// other writer); PostgreSQL: `LISTEN`, reconnecting when lost.
    fn watch_changes(&self, wake: Weak<Notify>) -> BoxFuture<'_, Result<(), DbError>>;
}

/// Open a database by URL: `sqlite::memory:`, `sqlite:path`, `sqlite://path`
/// or `postgres://...` / `postgresql://...`.
pub async fn open(url: &str) -> Result<Box<dyn Database>, DbError> {
    if let Some(rest) = url.strip_prefix("sqlite:") {
        let path = rest.strip_prefix("//").unwrap_or(rest);
        return Ok(Box::new(sqlite::SqliteDb::open(path)?));
    }
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(Box::new(postgres::PostgresDb::connect(url).await?));
    }
    Err(DbError(format!(
        "unsupported database URL {url:?}: use sqlite:PATH, sqlite::memory: or postgres://USER@HOST:PORT/DB"
    )))
}
