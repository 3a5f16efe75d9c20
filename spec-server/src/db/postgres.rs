//! PostgreSQL through tokio-postgres. Every parameter travels as text and
//! is cast to the column's type in SQL (`$1::text::"int4"`); every row
//! comes back as `row_to_json` text, so all column types map to JSON the
//! way PostgreSQL itself renders them. A lost connection (database
//! restart, network cut) is opened again by the next request; a read that
//! failed because the connection was lost is retried once on the new one.

use std::sync::{Arc, Weak};
use std::time::Duration;

use mqttspec_proto::filter::ValueKind;
use mqttspec_proto::Row;
use tokio::sync::{Mutex, Notify};
use tokio_postgres::{AsyncMessage, Client, NoTls};

use super::{capture, BoxFuture, Column, Database, DbError, Dialect, Entity, Param};

/// A PostgreSQL database (one pipelined connection, reopened when lost).
pub struct PostgresDb {
    url: String,
    /// The current connection. Locked only to take a clone (or, when the
    /// connection is closed, to open the next one), so queries pipeline.
    client: Mutex<Arc<Client>>,
}

/// How long opening a connection may take (a host that drops packets would
/// otherwise hold every request for the operating system's TCP timeout).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Open a connection; it runs on a spawned task until it ends.
async fn open(url: &str) -> Result<Client, DbError> {
    let (client, connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| {
                DbError(format!(
                    "cannot connect to PostgreSQL: no answer within {} s",
                    CONNECT_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|e| DbError(format!("cannot connect to PostgreSQL: {e}")))?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!(error = %e, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

fn db_err(e: tokio_postgres::Error) -> DbError {
    match e.as_db_error() {
        Some(db) => DbError(format!("{}: {}", db.code().code(), db.message())),
        None => DbError(e.to_string()),
    }
}

/// Kind of a column from its type name (`pg_type.typname`).
pub fn kind_of_type(typname: &str) -> ValueKind {
    match typname {
        "int2" | "int4" | "int8" | "float4" | "float8" | "numeric" | "oid" => ValueKind::Number,
        "bool" => ValueKind::Bool,
        _ => ValueKind::Text,
    }
}

/// Whether values of this type compare as collated text (we force `"C"`).
pub fn is_text_type(typname: &str) -> bool {
    matches!(typname, "text" | "varchar" | "bpchar" | "name" | "citext")
}

/// The values a PostgreSQL integer type holds (`None`: not an integer type).
pub fn integer_range(typname: &str) -> Option<std::ops::RangeInclusive<i64>> {
    match typname {
        "int2" => Some(i64::from(i16::MIN)..=i64::from(i16::MAX)),
        "int4" => Some(i64::from(i32::MIN)..=i64::from(i32::MAX)),
        "int8" => Some(i64::MIN..=i64::MAX),
        _ => None,
    }
}

const CATALOG: &str = r#"
SELECT n.nspname::text, c.relname::text, a.attname::text, t.typname::text, NOT a.attnotnull,
  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisprimary AND a.attnum = ANY (i.indkey::int2[])),
  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indnatts = 1 AND i.indkey[0] = a.attnum),
  EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = c.oid AND i.indkey[0] = a.attnum)
FROM pg_class c
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN pg_type t ON t.oid = a.atttypid
WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\_toast%' AND n.nspname <> 'mqttspec'
ORDER BY n.nspname, c.relname, a.attnum
"#;

impl PostgresDb {
    /// Connect to `url` (`postgres://user:pass@host:port/db`, or with
    /// `?host=/socket/dir`). The connection runs on a spawned task.
    pub async fn connect(url: &str) -> Result<PostgresDb, DbError> {
        let client = open(url).await?;
        Ok(PostgresDb {
            url: url.to_string(),
            client: Mutex::new(Arc::new(client)),
        })
    }

    /// The open connection, after opening a new one if it was lost.
    async fn client(&self) -> Result<Arc<Client>, DbError> {
        let mut current = self.client.lock().await;
        if current.is_closed() {
            tracing::warn!("PostgreSQL connection lost: reconnecting");
            let client = open(&self.url).await.map_err(|DbError(e)| {
                DbError(format!(
                    "{e} (the connection was lost; the request was not run)"
                ))
            })?;
            tracing::info!("PostgreSQL connection open again");
            *current = Arc::new(client);
        }
        Ok(Arc::clone(&current))
    }

    async fn introspect(&self) -> Result<Vec<Entity>, DbError> {
        let rows = self
            .client()
            .await?
            .query(CATALOG, &[])
            .await
            .map_err(db_err)?;
        let mut entities: Vec<Entity> = Vec::new();
        for row in rows {
            let (schema, table): (String, String) = (row.get(0), row.get(1));
            let typname: String = row.get(3);
            let column = Column {
                name: row.get(2),
                kind: kind_of_type(&typname),
                sql_type: typname,
                nullable: row.get(4),
                primary: row.get(5),
                unique: row.get(6),
                indexed: row.get(7),
            };
            match entities.last_mut() {
                Some(e) if e.schema == schema && e.table == table => e.columns.push(column),
                _ => entities.push(Entity {
                    name: table.clone(),
                    db_schema: Some(schema.clone()),
                    schema,
                    table,
                    columns: vec![column],
                }),
            }
        }
        Ok(entities)
    }

    async fn run(&self, sql: String, params: Vec<Param>) -> Result<Vec<Row>, DbError> {
        let is_read = sql.trim_start().starts_with("SELECT");
        let wrapped = if is_read {
            format!("SELECT row_to_json(q)::text FROM ({sql}) q")
        } else {
            format!("WITH q AS ({sql}) SELECT row_to_json(q)::text FROM q")
        };
        let texts: Vec<Option<String>> = params.iter().map(Param::as_text).collect();
        let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = texts
            .iter()
            .map(|t| t as &(dyn tokio_postgres::types::ToSql + Sync))
            .collect();
        let client = self.client().await?;
        let rows = match client.query(&wrapped, &refs).await {
            // A read that met a lost connection runs again on a new one; a
            // write is not repeated (it may have been committed).
            Err(_) if client.is_closed() && is_read => {
                self.client().await?.query(&wrapped, &refs).await
            }
            rows => rows,
        }
        .map_err(db_err)?;
        rows.iter()
            .map(|r| {
                let text: String = r.get(0);
                serde_json::from_str(&text).map_err(|e| DbError(format!("row is not JSON: {e}")))
            })
            .collect()
    }
}

impl Database for PostgresDb {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn entities(&self) -> BoxFuture<'_, Result<Vec<Entity>, DbError>> {
        Box::pin(self.introspect())
    }

    fn execute_script<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<(), DbError>> {
        Box::pin(async move {
            self.client()
                .await?
                .batch_execute(sql)
                .await
                .map_err(db_err)
        })
    }

    fn query(&self, sql: String, params: Vec<Param>) -> BoxFuture<'_, Result<Vec<Row>, DbError>> {
        Box::pin(self.run(sql, params))
    }

    fn watch_changes(&self, wake: Weak<Notify>) -> BoxFuture<'_, Result<(), DbError>> {
        let url = self.url.clone();
        Box::pin(async move {
            // The first LISTEN must work (a startup error says so); later
            // losses reconnect with backoff.
            let first = listen(&url, Weak::clone(&wake)).await?;
            tokio::spawn(async move {
                let mut session = Some(first);
                let mut backoff = Duration::from_millis(100);
                while wake.strong_count() > 0 {
                    if let Some(s) = session.take() {
                        let _ = s.await;
                        tracing::warn!("PostgreSQL LISTEN connection lost: reconnecting");
                    }
                    tokio::time::sleep(backoff).await;
                    match listen(&url, Weak::clone(&wake)).await {
                        Ok(s) => {
                            backoff = Duration::from_millis(100);
                            // Changes made while it was down: read them now.
                            if let Some(w) = wake.upgrade() {
                                w.notify_one();
                            }
                            session = Some(s);
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "cannot LISTEN again");
                            backoff = (backoff * 2).min(Duration::from_secs(5));
                        }
                    }
                }
            });
            Ok(())
        })
    }
}

/// Open a connection that `LISTEN`s on the change channel and wakes `wake`
/// per notification; the returned task ends when the connection does.
async fn listen(url: &str, wake: Weak<Notify>) -> Result<tokio::task::JoinHandle<()>, DbError> {
    let (client, mut connection) =
        tokio::time::timeout(CONNECT_TIMEOUT, tokio_postgres::connect(url, NoTls))
            .await
            .map_err(|_| DbError("cannot connect to PostgreSQL to LISTEN: timed out".into()))?
            .map_err(|e| DbError(format!("cannot connect to PostgreSQL to LISTEN: {e}")))?;
    let task = tokio::spawn(async move {
        while let Some(message) = std::future::poll_fn(|cx| connection.poll_message(cx)).await {
            match message {
                Ok(AsyncMessage::Notification(_)) => match wake.upgrade() {
                    Some(w) => w.notify_one(),
                    None => return,
                },
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "PostgreSQL LISTEN connection ended");
                    return;
                }
            }
        }
    });
    client
        .batch_execute(&format!("LISTEN {}", capture::PG_CHANNEL))
        .await
        .map_err(db_err)?;
    // The client lives as long as the connection (dropping it would close it).
    Ok(tokio::spawn(async move {
        let _ = task.await;
        drop(client);
    }))
}
