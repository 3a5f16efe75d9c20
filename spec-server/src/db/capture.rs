//! The change log: SQL that makes the database itself record every write
//! to a served table, whoever makes it (this server, another instance,
//! `psql`, `sqlite3`, another application), in one table with an
//! increasing sequence. The server's change feed (`crate::feed`) reads it;
//! docs/SPEC_SERVER.md ("Change feed") says why this design.
//!
//! - SQLite: table `_mqttspec_changes`, filled by `AFTER INSERT/UPDATE/DELETE`
//!   triggers per table (`json_object` of the row). SQLite has one writer at
//!   a time, so sequences are assigned in commit order.
//! - PostgreSQL: table `mqttspec.changes`, filled by one trigger function
//!   (`row_to_json` of the row, the rendering reads use) that also sends
//!   `NOTIFY mqttspec_changes` with the sequence only (so no row meets
//!   NOTIFY's 8,000-byte limit). The function takes a transaction-level
//!   advisory lock first, so sequences are assigned in commit order and a
//!   reader never sees seq 6 before seq 5 commits.
//!
//! Identifiers come from the database's catalog ([`Entity`]) and are quoted.

use super::sql::{ident, Statement};
use super::{Dialect, Entity, Param};

/// Channel of PostgreSQL's `NOTIFY` (payload: the new sequence).
pub const PG_CHANNEL: &str = "mqttspec_changes";

/// Advisory lock key that orders captured writes (PostgreSQL), `'mqsp'`.
const PG_ORDER_LOCK: i64 = 0x6d71_7370;

/// Name prefix of the server's own SQLite objects (never served).
pub const SQLITE_PREFIX: &str = "_mqttspec";

/// PostgreSQL schema of the server's own objects (never served).
pub const PG_SCHEMA: &str = "mqttspec";

/// The log table.
pub fn log_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "_mqttspec_changes",
        Dialect::Postgres => "mqttspec.changes",
    }
}

/// How the log names an entity's table (`tbl` column).
pub fn log_key(entity: &Entity) -> String {
    match &entity.db_schema {
        Some(schema) => format!("{schema}.{}", entity.table),
        None => entity.table.clone(),
    }
}

/// `'text'` as an SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The script that creates the log and (re)creates the triggers of
/// `entities`; safe to run by several instances at once.
pub fn install_script(dialect: Dialect, entities: &[&Entity]) -> String {
    match dialect {
        Dialect::Sqlite => sqlite_script(entities),
        Dialect::Postgres => postgres_script(entities),
    }
}

fn sqlite_script(entities: &[&Entity]) -> String {
    let mut script = String::from(
        "BEGIN IMMEDIATE;\n\
         CREATE TABLE IF NOT EXISTS _mqttspec_changes (\n\
           seq INTEGER PRIMARY KEY AUTOINCREMENT, tbl TEXT NOT NULL, op TEXT NOT NULL,\n\
           old TEXT, new TEXT);\n\
         CREATE TABLE IF NOT EXISTS _mqttspec_answers (\n\
           client_id TEXT NOT NULL, request_id TEXT NOT NULL, answer TEXT, at INTEGER NOT NULL,\n\
           PRIMARY KEY (client_id, request_id));\n\
         CREATE TABLE IF NOT EXISTS _mqttspec_subscriptions (\n\
           id TEXT PRIMARY KEY, client_id TEXT NOT NULL, owner TEXT NOT NULL);\n",
    );
    for entity in entities {
        let table = ident(&entity.table);
        let key = literal(&log_key(entity));
        // A BLOB cannot go into JSON: it is logged as hex text.
        let row = |alias: &str| {
            let pairs: Vec<String> = entity
                .columns
                .iter()
                .map(|c| {
                    let col = format!("{alias}.{}", ident(&c.name));
                    format!(
                        "{}, CASE typeof({col}) WHEN 'blob' THEN hex({col}) ELSE {col} END",
                        literal(&c.name)
                    )
                })
                .collect();
            format!("json_object({})", pairs.join(", "))
        };
        for (event, op, old, new) in [
            ("INSERT", "create", "NULL".to_string(), row("NEW")),
            ("UPDATE", "update", row("OLD"), row("NEW")),
            ("DELETE", "delete", row("OLD"), "NULL".to_string()),
        ] {
            let trigger = ident(&format!("{SQLITE_PREFIX}_{op}_{}", entity.table));
            script.push_str(&format!(
                "DROP TRIGGER IF EXISTS {trigger};\n\
                 CREATE TRIGGER {trigger} AFTER {event} ON {table} BEGIN\n\
                   INSERT INTO _mqttspec_changes (tbl, op, old, new) VALUES ({key}, '{op}', {old}, {new});\n\
                 END;\n"
            ));
        }
    }
    script.push_str("COMMIT;\n");
    script
}

fn postgres_script(entities: &[&Entity]) -> String {
    let mut script = format!(
        "BEGIN;\n\
         SELECT pg_advisory_xact_lock({PG_ORDER_LOCK});\n\
         CREATE SCHEMA IF NOT EXISTS mqttspec;\n\
         CREATE TABLE IF NOT EXISTS mqttspec.changes (\n\
           seq bigserial PRIMARY KEY, tbl text NOT NULL, op text NOT NULL, old json, new json);\n\
         CREATE TABLE IF NOT EXISTS mqttspec.answers (\n\
           client_id text NOT NULL, request_id text NOT NULL, answer text, at bigint NOT NULL,\n\
           PRIMARY KEY (client_id, request_id));\n\
         CREATE TABLE IF NOT EXISTS mqttspec.subscriptions (\n\
           id text PRIMARY KEY, client_id text NOT NULL, owner text NOT NULL);\n\
         CREATE OR REPLACE FUNCTION mqttspec.capture() RETURNS trigger LANGUAGE plpgsql AS $f$\n\
         DECLARE s bigint;\n\
         BEGIN\n\
           PERFORM pg_advisory_xact_lock({PG_ORDER_LOCK});\n\
           INSERT INTO mqttspec.changes (tbl, op, old, new) VALUES (\n\
             TG_TABLE_SCHEMA || '.' || TG_TABLE_NAME,\n\
             CASE TG_OP WHEN 'INSERT' THEN 'create' WHEN 'UPDATE' THEN 'update' ELSE 'delete' END,\n\
             CASE WHEN TG_OP <> 'INSERT' THEN row_to_json(OLD) END,\n\
             CASE WHEN TG_OP <> 'DELETE' THEN row_to_json(NEW) END)\n\
           RETURNING seq INTO s;\n\
           PERFORM pg_notify('{PG_CHANNEL}', s::text);\n\
           RETURN NULL;\n\
         END $f$;\n\
         CREATE OR REPLACE FUNCTION mqttspec.control(o text, payload text) RETURNS bigint\n\
         LANGUAGE plpgsql AS $f$\n\
         DECLARE s bigint;\n\
         BEGIN\n\
           PERFORM pg_advisory_xact_lock({PG_ORDER_LOCK});\n\
           INSERT INTO mqttspec.changes (tbl, op, new) VALUES ('', o, payload::json) RETURNING seq INTO s;\n\
           PERFORM pg_notify('{PG_CHANNEL}', s::text);\n\
           RETURN s;\n\
         END $f$;\n"
    );
    for entity in entities {
        let schema = entity.db_schema.as_deref().unwrap_or("public");
        let table = format!("{}.{}", ident(schema), ident(&entity.table));
        script.push_str(&format!(
            "DROP TRIGGER IF EXISTS mqttspec_capture ON {table};\n\
             CREATE TRIGGER mqttspec_capture AFTER INSERT OR UPDATE OR DELETE ON {table}\n\
               FOR EACH ROW EXECUTE FUNCTION mqttspec.capture();\n"
        ));
    }
    script.push_str("COMMIT;\n");
    script
}

fn placeholder(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}::text::bigint"),
    }
}

fn number(n: u64) -> Param {
    Param::Number(n.into())
}

/// Up to `limit` changes after `after`, oldest first:
/// columns `seq`, `tbl`, `op`, `old`, `new` (rows: JSON text in SQLite,
/// `json` in PostgreSQL, which then arrive as objects, not escaped twice).
pub fn fetch(dialect: Dialect, after: u64, limit: u64) -> Statement {
    let sql = format!(
        "SELECT seq, tbl, op, old, new FROM {} WHERE seq > {} ORDER BY seq LIMIT {}",
        log_table(dialect),
        placeholder(dialect, 1),
        placeholder(dialect, 2)
    );
    (sql, vec![number(after), number(limit)])
}

/// Changes `(after, upto]` of one table, oldest first (a resume's replay).
pub fn fetch_range(dialect: Dialect, table_key: &str, after: u64, upto: u64) -> Statement {
    let sql = format!(
        "SELECT seq, tbl, op, old, new FROM {} WHERE seq > {} AND seq <= {} AND tbl = {} ORDER BY seq",
        log_table(dialect),
        placeholder(dialect, 1),
        placeholder(dialect, 2),
        match dialect {
            Dialect::Sqlite => "?3".to_string(),
            Dialect::Postgres => "$3::text".to_string(),
        }
    );
    (
        sql,
        vec![number(after), number(upto), Param::Text(table_key.into())],
    )
}

/// `floor` (every change after it is still in the log) and `head` (the
/// newest change), as columns of one row.
pub fn bounds(dialect: Dialect) -> Statement {
    let sql = format!(
        "SELECT coalesce(min(seq), 1) - 1 AS floor, coalesce(max(seq), 0) AS head FROM {}",
        log_table(dialect)
    );
    (sql, Vec::new())
}

/// Forget changes up to `upto` (retention).
pub fn prune(dialect: Dialect, upto: u64) -> Statement {
    let sql = format!(
        "DELETE FROM {} WHERE seq <= {} RETURNING seq",
        log_table(dialect),
        placeholder(dialect, 1)
    );
    (sql, vec![number(upto)])
}

/// A control entry (no table): `op` with `payload`, read by every instance.
pub fn control(dialect: Dialect, op: &str, payload: &str) -> Statement {
    let sql = match dialect {
        Dialect::Sqlite => format!(
            "INSERT INTO {} (tbl, op, new) VALUES ('', ?1, ?2) RETURNING seq",
            log_table(dialect)
        ),
        // Through the same ordering lock and NOTIFY as captured writes.
        Dialect::Postgres => "SELECT mqttspec.control($1::text, $2::text) AS seq".to_string(),
    };
    (
        sql,
        vec![Param::Text(op.into()), Param::Text(payload.into())],
    )
}

/// The answers table: writes' answers shared by the instances, so a
/// request resent to another instance is not run twice.
fn answers_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "_mqttspec_answers",
        Dialect::Postgres => "mqttspec.answers",
    }
}

fn text_param(dialect: Dialect, n: usize) -> String {
    match dialect {
        Dialect::Sqlite => format!("?{n}"),
        Dialect::Postgres => format!("${n}::text"),
    }
}

/// Claim `(client_id, request_id)` at `now_ms` (milliseconds since the
/// epoch); a claim without an answer older than `stale_ms` is taken over
/// (its instance died). Returns a row when this instance may run it.
pub fn claim(
    dialect: Dialect,
    client_id: &str,
    request_id: &str,
    now_ms: u64,
    stale_ms: u64,
) -> Statement {
    let t = answers_table(dialect);
    let sql = format!(
        "INSERT INTO {t} AS a (client_id, request_id, at) VALUES ({}, {}, {}) \
         ON CONFLICT (client_id, request_id) DO UPDATE SET at = excluded.at \
         WHERE a.answer IS NULL AND a.at < {} RETURNING client_id",
        text_param(dialect, 1),
        text_param(dialect, 2),
        placeholder(dialect, 3),
        placeholder(dialect, 4)
    );
    (
        sql,
        vec![
            Param::Text(client_id.into()),
            Param::Text(request_id.into()),
            number(now_ms),
            number(now_ms.saturating_sub(stale_ms)),
        ],
    )
}

/// The answer kept for `(client_id, request_id)`: column `answer` (NULL
/// while the claiming instance runs it).
pub fn answer(dialect: Dialect, client_id: &str, request_id: &str) -> Statement {
    let sql = format!(
        "SELECT answer FROM {} WHERE client_id = {} AND request_id = {}",
        answers_table(dialect),
        text_param(dialect, 1),
        text_param(dialect, 2)
    );
    (
        sql,
        vec![
            Param::Text(client_id.into()),
            Param::Text(request_id.into()),
        ],
    )
}

/// Keep `answer` for a claimed request; `None` drops the claim (a failed
/// request may run again).
pub fn settle(
    dialect: Dialect,
    client_id: &str,
    request_id: &str,
    answer: Option<&str>,
) -> Statement {
    let t = answers_table(dialect);
    let (c, r) = (text_param(dialect, 1), text_param(dialect, 2));
    let mut params = vec![
        Param::Text(client_id.into()),
        Param::Text(request_id.into()),
    ];
    let sql = match answer {
        Some(a) => {
            params.push(Param::Text(a.into()));
            format!(
                "UPDATE {t} SET answer = {} WHERE client_id = {c} AND request_id = {r} RETURNING client_id",
                text_param(dialect, 3)
            )
        }
        None => format!(
            "DELETE FROM {t} WHERE client_id = {c} AND request_id = {r} AND answer IS NULL RETURNING client_id"
        ),
    };
    (sql, params)
}

fn subscriptions_table(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "_mqttspec_subscriptions",
        Dialect::Postgres => "mqttspec.subscriptions",
    }
}

/// Record that instance `owner` holds subscription `id` of `client_id`
/// (so that another instance can tell the client when `owner` dies).
pub fn subscription_held(dialect: Dialect, id: &str, client_id: &str, owner: &str) -> Statement {
    let sql = format!(
        "INSERT INTO {} (id, client_id, owner) VALUES ({}, {}, {}) RETURNING id",
        subscriptions_table(dialect),
        text_param(dialect, 1),
        text_param(dialect, 2),
        text_param(dialect, 3)
    );
    (
        sql,
        vec![
            Param::Text(id.into()),
            Param::Text(client_id.into()),
            Param::Text(owner.into()),
        ],
    )
}

/// Forget the subscriptions of `client_id` (all, or only `id`).
pub fn subscriptions_dropped(dialect: Dialect, client_id: &str, id: Option<&str>) -> Statement {
    let t = subscriptions_table(dialect);
    let mut params = vec![Param::Text(client_id.into())];
    let one = match id {
        Some(id) => {
            params.push(Param::Text(id.into()));
            format!(" AND id = {}", text_param(dialect, 2))
        }
        None => String::new(),
    };
    let sql = format!(
        "DELETE FROM {t} WHERE client_id = {}{one} RETURNING id",
        text_param(dialect, 1)
    );
    (sql, params)
}

/// Take (delete and return: `id`, `client_id`) the subscriptions `owner`
/// held; atomic, so one instance tells each client once.
pub fn subscriptions_of(dialect: Dialect, owner: &str) -> Statement {
    let sql = format!(
        "DELETE FROM {} WHERE owner = {} RETURNING id, client_id",
        subscriptions_table(dialect),
        text_param(dialect, 1)
    );
    (sql, vec![Param::Text(owner.into())])
}

/// Forget answers older than `before_ms`.
pub fn prune_answers(dialect: Dialect, before_ms: u64) -> Statement {
    let sql = format!(
        "DELETE FROM {} WHERE at < {} RETURNING client_id",
        answers_table(dialect),
        placeholder(dialect, 1)
    );
    (sql, vec![number(before_ms)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::db::Column;
    use mqttspec_proto::filter::ValueKind;

    fn entity(db_schema: Option<&str>, table: &str) -> Entity {
        Entity {
            schema: "public".into(),
            name: table.into(),
            db_schema: db_schema.map(str::to_string),
            table: table.into(),
            columns: vec![Column {
                name: "it's".into(),
                sql_type: "TEXT".into(),
                kind: ValueKind::Text,
                nullable: true,
                primary: false,
                unique: false,
                indexed: false,
            }],
        }
    }

    #[test]
    fn scripts_quote_names_from_the_catalog() {
        let e = entity(None, "public_we\"ird");
        let s = install_script(Dialect::Sqlite, &[&e]);
        assert!(s.contains("AFTER INSERT ON \"public_we\"\"ird\""), "{s}");
        assert!(
            s.contains("json_object('it''s', CASE typeof(NEW.\"it's\")"),
            "{s}"
        );
        assert!(s.contains("VALUES ('public_we\"ird', 'create'"), "{s}");
        let e = entity(Some("sch"), "t");
        assert_eq!(log_key(&e), "sch.t");
        let s = install_script(Dialect::Postgres, &[&e]);
        assert!(s.contains("ON \"sch\".\"t\""), "{s}");
    }
}
