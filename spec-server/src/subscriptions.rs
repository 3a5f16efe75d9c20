//! Live subscriptions: who watches which entity with which filters, and
//! which notification a change produces for each of them.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use mqttspec_proto::{matches, Filter, Operation, Options, Row};
/// One subscription.
#[derive(Debug, Clone)]
pub struct Subscription {
    /// Its id (`sub-...`).
    pub id: String,
    /// Owner.
    pub client_id: String,
    /// `schema` of the entity.
    pub schema: String,
    /// Entity name.
    pub entity: String,
    /// Filters (after hooks); see `mqttspec_proto::filter`.
    pub filters: Vec<Filter>,
    /// `columns` / `omit_columns` applied to notification data.
    pub options: Options,
    /// Changes up to this sequence are not sent (the client has them).
    pub after: u64,
    /// A resume waiting for the feed to replay the changes after this
    /// sequence; no live change is sent to it before.
    pub replay: Option<u64>,
    /// The subscribe's answer has been handed to the broker: the replay may
    /// start (its notifications then follow the answer that names the
    /// subscription).
    pub answered: bool,
}

/// The notification a change produces for a subscription, if any:
/// - create: when the new row matches;
/// - update: when the new row matches, or the old one did (the row left
///   the filter: the client sees it no longer matches and drops it);
/// - delete: when the old row matched (data is the deleted row).
pub fn notification_for(
    filters: &[Filter],
    operation: Operation,
    old: Option<&Row>,
    new: Option<&Row>,
) -> Option<Row> {
    let hit = |row: Option<&Row>| row.is_some_and(|r| matches(filters, r));
    match operation {
        Operation::Create => hit(new).then(|| new.cloned()).flatten(),
        Operation::Update => (hit(new) || hit(old)).then(|| new.cloned()).flatten(),
        Operation::Delete => hit(old).then(|| old.cloned()).flatten(),
        _ => None,
    }
}

/// Keep only the columns a subscription asked for.
pub fn project(row: Row, options: &Options) -> Row {
    let keep = |name: &String| {
        options.columns.as_ref().is_none_or(|c| c.contains(name))
            && !options
                .omit_columns
                .as_ref()
                .is_some_and(|o| o.contains(name))
    };
    row.into_iter().filter(|(k, _)| keep(k)).collect()
}

/// All subscriptions, plus when each client was last heard of.
#[derive(Debug, Default)]
pub struct Subscriptions {
    by_id: HashMap<String, Subscription>,
    last_seen: HashMap<String, Instant>,
    counter: u64,
}

impl Subscriptions {
    /// Note activity of `client_id`; returns true the first time it is seen.
    pub fn touch(&mut self, client_id: &str) -> bool {
        self.last_seen
            .insert(client_id.to_string(), Instant::now())
            .is_none()
    }

    /// Note activity of a client already known (another instance heard of it).
    pub fn refresh(&mut self, client_id: &str) {
        if let Some(seen) = self.last_seen.get_mut(client_id) {
            *seen = Instant::now();
        }
    }

    /// The subscription `id`.
    pub fn get(&self, id: &str) -> Option<&Subscription> {
        self.by_id.get(id)
    }

    /// Subscriptions waiting for a replay: `(id, since)`.
    pub fn pending_replays(&mut self) -> Vec<(String, u64)> {
        self.by_id
            .values()
            .filter(|s| s.answered)
            .filter_map(|s| Some((s.id.clone(), s.replay?)))
            .collect()
    }

    /// The answers to `client_id`'s subscribes are out: their replays may
    /// start. Returns whether one waits.
    pub fn answered(&mut self, client_id: &str) -> bool {
        let mut waiting = false;
        for s in self
            .by_id
            .values_mut()
            .filter(|s| s.client_id == client_id && !s.answered)
        {
            s.answered = true;
            waiting |= s.replay.is_some();
        }
        waiting
    }

    /// Subscription `id` has had its replay: live from now on.
    pub fn replayed(&mut self, id: &str) {
        if let Some(s) = self.by_id.get_mut(id) {
            s.replay = None;
        }
    }

    /// Whether `client_id` has been seen (and not dropped since).
    pub fn knows(&self, client_id: &str) -> bool {
        self.last_seen.contains_key(client_id)
    }

    /// A fresh subscription id.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .subsec_nanos();
        format!(
            "sub-{}-{:08x}",
            self.counter,
            nanos ^ (std::process::id() << 8)
        )
    }

    /// Add a subscription.
    pub fn add(&mut self, sub: Subscription) {
        self.by_id.insert(sub.id.clone(), sub);
    }

    /// Remove `id` if `client_id` owns it.
    pub fn remove(&mut self, client_id: &str, id: &str) -> Option<Subscription> {
        match self.by_id.get(id) {
            Some(s) if s.client_id == client_id => self.by_id.remove(id),
            _ => None,
        }
    }

    /// Forget a client and drop its subscriptions.
    pub fn remove_client(&mut self, client_id: &str) -> Vec<Subscription> {
        self.last_seen.remove(client_id);
        let ids: Vec<String> = self
            .by_id
            .values()
            .filter(|s| s.client_id == client_id)
            .map(|s| s.id.clone())
            .collect();
        ids.iter().filter_map(|id| self.by_id.remove(id)).collect()
    }

    /// Clients not heard of for `ttl`.
    pub fn expired_clients(&self, ttl: Duration) -> Vec<String> {
        self.last_seen
            .iter()
            .filter(|(_, seen)| seen.elapsed() > ttl)
            .map(|(c, _)| c.clone())
            .collect()
    }

    /// Subscriptions on `schema.entity`.
    pub fn on_entity<'a>(
        &'a self,
        schema: &'a str,
        entity: &'a str,
    ) -> impl Iterator<Item = &'a Subscription> {
        self.by_id
            .values()
            .filter(move |s| s.schema == schema && s.entity == entity)
    }

    /// Number of subscriptions.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttspec_proto::FilterOp;
    use serde_json::{json, Value};

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn update_leaving_the_filter_is_still_notified() {
        let f = [Filter::new("status", FilterOp::Eq, json!("active"))];
        let active = row(json!({"id": 1, "status": "active"}));
        let inactive = row(json!({"id": 1, "status": "inactive"}));
        assert!(notification_for(&f, Operation::Create, None, Some(&active)).is_some());
        assert!(notification_for(&f, Operation::Create, None, Some(&inactive)).is_none());
        let left = notification_for(&f, Operation::Update, Some(&active), Some(&inactive)).unwrap();
        assert_eq!(left["status"], "inactive");
        assert!(
            notification_for(&f, Operation::Update, Some(&inactive), Some(&inactive)).is_none()
        );
        assert!(notification_for(&f, Operation::Update, Some(&inactive), Some(&active)).is_some());
        assert!(notification_for(&f, Operation::Delete, Some(&active), None).is_some());
        assert!(notification_for(&f, Operation::Delete, Some(&inactive), None).is_none());
    }

    #[test]
    fn a_replay_waits_for_the_answer() {
        let mut subs = Subscriptions::default();
        subs.add(Subscription {
            id: "s".into(),
            client_id: "a".into(),
            schema: "public".into(),
            entity: "users".into(),
            filters: vec![],
            options: Options::default(),
            after: 7,
            replay: Some(7),
            answered: false,
        });
        assert!(
            subs.pending_replays().is_empty(),
            "not before its answer is out"
        );
        assert!(!subs.answered("b"));
        assert!(subs.answered("a"));
        assert_eq!(subs.pending_replays(), vec![("s".to_string(), 7)]);
        subs.replayed("s");
        assert!(subs.pending_replays().is_empty());
        assert!(!subs.answered("a"), "nothing waits any more");
    }

    #[test]
    fn clients_own_their_subscriptions() {
        let mut subs = Subscriptions::default();
        assert!(!subs.knows("a"));
        assert!(subs.touch("a"));
        assert!(!subs.touch("a"));
        assert!(subs.knows("a"));
        let id = subs.next_id();
        subs.add(Subscription {
            id: id.clone(),
            client_id: "a".into(),
            schema: "public".into(),
            entity: "users".into(),
            filters: vec![],
            options: Options::default(),
            after: 0,
            replay: None,
            answered: true,
        });
        assert!(subs.remove("b", &id).is_none());
        assert_eq!(subs.on_entity("public", "users").count(), 1);
        assert_eq!(subs.remove_client("a").len(), 1);
        assert!(subs.is_empty());
        let projected = project(
            row(json!({"a": 1, "b": 2, "c": 3})),
            &Options {
                omit_columns: Some(vec!["b".into()]),
                ..Options::default()
            },
        );
        assert_eq!(Value::Object(projected), json!({"a": 1, "c": 3}));
    }
}
