//! Test support: a handler on an in-memory SQLite database, for the unit
//! tests of the handler and of what feeds it.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::{Handler, HandlerConfig, Outgoing};
use crate::db::sqlite::SqliteDb;
use crate::db::{capture, Database, Entity};
use crate::hooks::Hooks;
use crate::registry::{ModelsConfig, Registry};

/// A handler on an in-memory SQLite database with the demo tables, one more
/// in schema `audit` and the server's change log, `models` (if given) as its entity list; its
/// answers arrive on the receiver.
pub(crate) async fn handler(
    models: Option<&[&str]>,
    hooks: Hooks,
) -> (Handler, mpsc::Receiver<Outgoing>) {
    let db = SqliteDb::open(":memory:").expect("in-memory SQLite");
    crate::demo::seed(&db).await.expect("demo tables");
    db.execute_script("CREATE TABLE audit_events (id INTEGER PRIMARY KEY, what TEXT);")
        .await
        .expect("audit table");
    let config = models.map(|m| ModelsConfig {
        entities: m.iter().map(|s| s.to_string()).collect(),
    });
    let registry = Registry::load(&db, config.as_ref())
        .await
        .expect("registry");
    // The change log, as the server installs it (subscriptions read its head).
    let served: Vec<&Entity> = registry.entities().iter().map(AsRef::as_ref).collect();
    db.execute_script(&capture::install_script(db.dialect(), &served))
        .await
        .expect("change log");
    let (tx, rx) = mpsc::channel(16);
    let config = HandlerConfig {
        prefix: "spec".into(),
        max_payload: 1 << 20,
        max_rows: None,
        shared: None,
    };
    (Handler::new(Arc::new(db), registry, hooks, config, tx), rx)
}
