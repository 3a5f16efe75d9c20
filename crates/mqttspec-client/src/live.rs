//! A live query: the rows a widget shows, kept current by notifications.
//!
//! The view is the first `limit` rows matching `filters`, ordered by `sort`
//! with the key column appended as the last key, so ties have one order on
//! the client and the server alike. Notifications are applied in arrival
//! order, each carrying the row as stored:
//!
//! - a row that (still) matches is placed at its sorted position, merging
//!   partial updates into the row held;
//! - a row that stops matching, or is deleted, leaves;
//! - a row that starts matching enters, unless it falls past the end of a
//!   full view.
//!
//! Notifications that arrive before the initial read's answer are held and
//! applied on top of it, by key, so a row created while the read was in
//! flight appears once. When the view is known to be cut by its limit
//! (`truncated`) and a row leaves it, or a changed row lands in its last
//! slot, only the server knows which row comes next: the change then asks for
//! a refill (read again and [`LiveQuery::load`]).

use std::cmp::Ordering;
use std::collections::HashMap;

use mqttspec_proto::response::{Resume, SubscribeData};
use mqttspec_proto::{compare_rows, matches, Direction, Filter, Operation, Row, Sort};
use serde_json::{json, Value};

/// What one load or notification changed in the view.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LiveChange {
    /// Rows that entered the view.
    pub added: Vec<Row>,
    /// Rows that stayed but changed (their new state).
    pub updated: Vec<Row>,
    /// Rows that left the view (their last state).
    pub removed: Vec<Row>,
    /// The view may miss a row only the server knows: read again and load.
    pub needs_refill: bool,
}

impl LiveChange {
    /// Whether the view is unchanged.
    pub fn is_empty(&self) -> bool {
        self.added.is_empty()
            && self.updated.is_empty()
            && self.removed.is_empty()
            && !self.needs_refill
    }

    /// Add `other`'s changes to these (several notifications, one report).
    pub fn merge(&mut self, other: LiveChange) {
        self.added.extend(other.added);
        self.updated.extend(other.updated);
        self.removed.extend(other.removed);
        self.needs_refill |= other.needs_refill;
    }
}

/// The state of one live query.
#[derive(Debug, Clone)]
pub struct LiveQuery {
    key: String,
    filters: Vec<Filter>,
    sort: Vec<Sort>,
    limit: Option<usize>,
    rows: Vec<Row>,
    loaded: bool,
    held: Vec<(Operation, Row)>,
    /// More than [`MAX_HELD`] notifications came while a read was missing:
    /// they were dropped, and the next load asks for another read.
    held_overflow: bool,
    truncated: bool,
    /// The newest change sequence the view reflects (notifications applied
    /// or held, or the subscribe answer's `seq`): what a resume sends as
    /// `since`.
    last_seq: Option<u64>,
}

/// Notifications held while a read is awaited; past this many they are
/// dropped and the view is read again after the load (memory stays bounded
/// while a read keeps failing).
pub const MAX_HELD: usize = 10_000;

impl LiveQuery {
    /// A live query on rows keyed by `key` (usually `"id"`).
    pub fn new(
        key: impl Into<String>,
        filters: Vec<Filter>,
        mut sort: Vec<Sort>,
        limit: Option<usize>,
    ) -> Self {
        let key = key.into();
        if !sort.iter().any(|s| s.column == key) {
            sort.push(Sort {
                column: key.clone(),
                direction: Direction::Asc,
            });
        }
        LiveQuery {
            key,
            filters,
            sort,
            limit,
            rows: Vec::new(),
            loaded: false,
            held: Vec::new(),
            held_overflow: false,
            truncated: false,
            last_seq: None,
        }
    }

    /// The newest change sequence the view reflects: send it as `since`
    /// when subscribing again after a reconnect
    /// ([`crate::request::resume`]). `None` before any (or from a server
    /// without a change log): then read the view again instead.
    pub fn last_seq(&self) -> Option<u64> {
        self.last_seq
    }

    /// The subscribe answer arrived. Returns whether the view must be read
    /// (again): always for a new subscription, and for a resume the server
    /// answered `reset`; a `replayed` resume keeps the view, and the missed
    /// changes follow as notifications.
    pub fn subscribed(&mut self, answer: &SubscribeData) -> bool {
        if answer.resume == Some(Resume::Replayed) {
            return false;
        }
        // The read that follows reflects at least the answer's `seq`.
        if let Some(seq) = answer.seq {
            self.last_seq = Some(self.last_seq.map_or(seq, |s| s.max(seq)));
        }
        true
    }

    /// [`LiveQuery::apply`] for a notification carrying the change sequence
    /// `seq`: a change the view already reflects (a replay overlapping what
    /// arrived before the drop, a duplicate delivery) is ignored. Feed it
    /// the notifications of the query's current subscription only: the
    /// server orders each subscription's notifications, not several.
    pub fn apply_seq(&mut self, op: Operation, data: Row, seq: Option<u64>) -> LiveChange {
        if let Some(seq) = seq {
            if self.last_seq.is_some_and(|last| seq <= last) {
                return LiveChange::default();
            }
            self.last_seq = Some(seq);
        }
        self.apply(op, data)
    }

    /// The rows in view, in order.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Whether the initial read has been loaded.
    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// `options` for the read that fills the view (filters, full sort, limit).
    pub fn read_options(&self) -> Value {
        let mut options = json!({ "filters": self.filters, "sort": self.sort });
        if let (Some(limit), Some(o)) = (self.limit, options.as_object_mut()) {
            o.insert("limit".into(), json!(limit));
        }
        options
    }

    /// `options` for the subscription that feeds the view (filters only).
    pub fn subscribe_options(&self) -> Value {
        json!({ "filters": self.filters })
    }

    /// A read is about to be made: hold notifications until [`LiveQuery::load`].
    pub fn begin_reload(&mut self) {
        self.loaded = false;
    }

    /// Install the rows of a read (`total`: the server's count of matching
    /// rows, if it sent one), then apply the notifications held meanwhile.
    /// Returns the difference with what was shown before.
    pub fn load(&mut self, mut rows: Vec<Row>, total: Option<u64>) -> LiveChange {
        rows.sort_by(|a, b| self.order(a, b));
        let full = self.limit.is_some_and(|l| rows.len() >= l);
        self.truncated = full && total.is_none_or(|t| t > rows.len() as u64);
        let before = std::mem::replace(&mut self.rows, rows);
        self.loaded = true;
        let mut change = LiveChange::default();
        // Keyed lookups both ways: O(n) for views of any size (a reload after
        // a reconnect may bring thousands of rows).
        let now = KeyIndex::new(&self.rows, &self.key);
        let was = KeyIndex::new(&before, &self.key);
        for old in &before {
            match now
                .find(&self.rows, &self.key, old.get(&self.key))
                .and_then(|i| self.rows.get(i))
            {
                Some(row) if row != old => change.updated.push(row.clone()),
                Some(_) => {}
                None => change.removed.push(old.clone()),
            }
        }
        change.added = self
            .rows
            .iter()
            .filter(|r| was.find(&before, &self.key, r.get(&self.key)).is_none())
            .cloned()
            .collect();
        for (op, row) in std::mem::take(&mut self.held) {
            change.merge(self.apply(op, row));
        }
        // Notifications were lost while waiting: the rows may be stale.
        change.needs_refill |= std::mem::take(&mut self.held_overflow);
        change
    }

    /// Apply one notification (`data` is the row as stored; for delete, at
    /// least its key). Before the initial load it is held.
    pub fn apply(&mut self, op: Operation, data: Row) -> LiveChange {
        if !self.loaded {
            if self.held.len() >= MAX_HELD {
                self.held.clear();
                self.held_overflow = true;
            }
            if !self.held_overflow {
                self.held.push((op, data));
            }
            return LiveChange::default();
        }
        let mut change = LiveChange::default();
        let Some(key) = data.get(&self.key).cloned() else {
            return change;
        };
        let existing = self.position(Some(&key)).map(|i| self.rows.remove(i));
        let row = match (op, existing.clone()) {
            (Operation::Delete, _) => None,
            (_, Some(mut held)) => {
                held.extend(data);
                Some(held)
            }
            (_, None) => Some(data),
        };
        let row = row.filter(|r| matches(&self.filters, r));
        let Some(row) = row else {
            if let Some(old) = existing {
                change.removed.push(old);
                change.needs_refill = self.truncated;
            }
            return change;
        };
        let at = self
            .rows
            .partition_point(|r| self.order(r, &row) == Ordering::Less);
        let full = self.limit.is_some_and(|l| self.rows.len() >= l);
        if full && at == self.rows.len() {
            // Past the end of a full view: not shown, but the view is now cut.
            self.truncated = true;
            if let Some(old) = existing {
                change.removed.push(old);
                change.needs_refill = self.truncated;
            }
            return change;
        }
        self.rows.insert(at, row.clone());
        if self.limit.is_some_and(|l| self.rows.len() > l) {
            if let Some(pushed_out) = self.rows.pop() {
                change.removed.push(pushed_out);
            }
            self.truncated = true;
        }
        let lands_last = self
            .limit
            .is_some_and(|l| self.rows.len() == l && at + 1 == l);
        change.needs_refill |= self.truncated && existing.is_some() && lands_last;
        match existing {
            Some(_) => change.updated.push(row),
            None => change.added.push(row),
        }
        change
    }

    fn order(&self, a: &Row, b: &Row) -> Ordering {
        compare_rows(a, b, &self.sort)
    }

    fn position(&self, key: Option<&Value>) -> Option<usize> {
        self.rows
            .iter()
            .position(|r| same_key(r.get(&self.key), key))
    }
}

/// A key reduced so that keys [`same_key`] calls equal reduce to the same
/// value (numbers and numeric text to the number's bits).
#[derive(Debug, PartialEq, Eq, Hash)]
enum NormKey {
    Num(u64),
    Text(String),
    Other(String),
}

fn norm_key(v: &Value) -> NormKey {
    // `+ 0.0` makes -0 and 0 one key, as `==` on f64 does.
    let num = |x: f64| NormKey::Num((x + 0.0).to_bits());
    match v {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| NormKey::Other(v.to_string()), num),
        Value::String(s) => s
            .parse::<f64>()
            .map_or_else(|_| NormKey::Text(s.clone()), num),
        _ => NormKey::Other(v.to_string()),
    }
}

/// Rows by key, for lookups in O(1) instead of a scan.
struct KeyIndex(HashMap<NormKey, Vec<usize>>);

impl KeyIndex {
    fn new(rows: &[Row], key: &str) -> Self {
        let mut map: HashMap<NormKey, Vec<usize>> = HashMap::with_capacity(rows.len());
        for (i, r) in rows.iter().enumerate() {
            if let Some(k) = r.get(key) {
                map.entry(norm_key(k)).or_default().push(i);
            }
        }
        KeyIndex(map)
    }

    /// The first row of `rows` (the slice indexed) whose key is `key`.
    fn find(&self, rows: &[Row], column: &str, key: Option<&Value>) -> Option<usize> {
        let candidates = self.0.get(&norm_key(key?))?;
        candidates
            .iter()
            .copied()
            .find(|&i| same_key(rows.get(i).and_then(|r| r.get(column)), key))
    }
}

/// Keys are equal when their values are, or when one is the other's text
/// (`10` and `"10"`: a delete notification may carry the record id as text).
/// Runs for every row of the view per notification: no allocation.
fn same_key(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) if a == b => true,
        (Some(Value::String(s)), Some(Value::Number(n)))
        | (Some(Value::Number(n)), Some(Value::String(s))) => s
            .parse::<f64>()
            .ok()
            .zip(n.as_f64())
            .is_some_and(|(x, y)| x == y),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttspec_proto::FilterOp;

    fn row(v: Value) -> Row {
        v.as_object().cloned().unwrap()
    }

    fn ids(q: &LiveQuery) -> Vec<i64> {
        q.rows().iter().map(|r| r["id"].as_i64().unwrap()).collect()
    }

    fn active_by_score(limit: Option<usize>) -> LiveQuery {
        LiveQuery::new(
            "id",
            vec![Filter::new("status", FilterOp::Eq, json!("active"))],
            vec![Sort {
                column: "score".into(),
                direction: Direction::Desc,
            }],
            limit,
        )
    }

    #[test]
    fn enter_leave_reorder_and_ties() {
        let mut q = active_by_score(None);
        let c = q.load(
            vec![
                row(json!({"id": 2, "status": "active", "score": 5})),
                row(json!({"id": 1, "status": "active", "score": 5})),
            ],
            Some(2),
        );
        assert_eq!(c.added.len(), 2);
        assert_eq!(ids(&q), vec![1, 2], "ties ordered by key");
        let c = q.apply(Operation::Update, row(json!({"id": 2, "score": 9})));
        assert_eq!(ids(&q), vec![2, 1]);
        assert_eq!(c.updated[0]["status"], "active", "partial update merged");
        let c = q.apply(
            Operation::Update,
            row(json!({"id": 1, "status": "inactive", "score": 5})),
        );
        assert_eq!((ids(&q), c.removed.len()), (vec![2], 1), "left the filter");
        let c = q.apply(
            Operation::Create,
            row(json!({"id": 3, "status": "inactive", "score": 1})),
        );
        assert!(c.is_empty(), "never matched");
        q.apply(
            Operation::Update,
            row(json!({"id": 3, "status": "active", "score": 1})),
        );
        assert_eq!(ids(&q), vec![2, 3], "entered the filter");
        let c = q.apply(Operation::Delete, row(json!({"id": "3"})));
        assert_eq!(
            (ids(&q), c.removed.len()),
            (vec![2], 1),
            "delete by text key"
        );
    }

    #[test]
    fn notification_racing_the_initial_read_is_not_duplicated() {
        let mut q = active_by_score(None);
        assert!(q
            .apply(
                Operation::Create,
                row(json!({"id": 7, "status": "active", "score": 1}))
            )
            .is_empty());
        assert!(q.apply(Operation::Delete, row(json!({"id": 8}))).is_empty());
        let c = q.load(
            vec![
                row(json!({"id": 7, "status": "active", "score": 1})),
                row(json!({"id": 8, "status": "active", "score": 2})),
            ],
            None,
        );
        assert_eq!(ids(&q), vec![7]);
        assert_eq!(c.removed.len(), 1);
    }

    #[test]
    fn reload_of_a_large_view_diffs_by_key() {
        // 50,000 rows: a scan per row (the old diff) would take minutes here.
        const N: i64 = 50_000;
        let mut q = active_by_score(None);
        let first: Vec<Row> = (0..N)
            .map(|i| row(json!({"id": i, "status": "active", "score": i % 100})))
            .collect();
        assert_eq!(q.load(first, None).added.len(), N as usize);
        // Again: ids 0..10 gone, ids N..N+5 new, even ids below 1000 changed,
        // and a key sent as text ("10") is the same row as the number 10.
        let mut second: Vec<Row> = (10..N + 5)
            .map(|i| {
                let score = if i < 1000 && i % 2 == 0 {
                    1000
                } else {
                    i % 100
                };
                row(json!({"id": i, "status": "active", "score": score}))
            })
            .collect();
        second[0] = row(json!({"id": "10", "status": "active", "score": 1000}));
        q.begin_reload();
        let c = q.load(second, None);
        assert_eq!(c.removed.len(), 10);
        assert_eq!(c.added.len(), 5);
        assert_eq!(c.updated.len(), 495);
        assert_eq!(q.rows().len(), N as usize - 5);
    }

    #[test]
    fn sequences_skip_what_the_view_has_and_resume_keeps_the_view() {
        let answer = |seq, resume| SubscribeData {
            subscription_id: "s".into(),
            schema: "public".into(),
            entity: "users".into(),
            notify_topic: "spec/c/notify/s".into(),
            seq: Some(seq),
            resume,
        };
        let mut q = active_by_score(None);
        assert_eq!(q.last_seq(), None);
        assert!(q.subscribed(&answer(10, None)), "a new subscription reads");
        q.load(
            vec![row(json!({"id": 1, "status": "active", "score": 1}))],
            None,
        );
        let created = row(json!({"id": 2, "status": "active", "score": 2}));
        assert!(
            q.apply_seq(Operation::Create, created.clone(), Some(9))
                .is_empty(),
            "older than the read"
        );
        assert_eq!(
            q.apply_seq(Operation::Create, created.clone(), Some(11))
                .added
                .len(),
            1
        );
        assert!(
            q.apply_seq(Operation::Create, created, Some(11)).is_empty(),
            "duplicate"
        );
        assert_eq!(q.last_seq(), Some(11));
        // Reconnect: resume from 11; the replay brings 12 and the view stays.
        assert!(!q.subscribed(&answer(15, Some(Resume::Replayed))));
        assert_eq!(q.last_seq(), Some(11), "the replay's changes still apply");
        let c = q.apply_seq(Operation::Delete, row(json!({"id": 1})), Some(12));
        assert_eq!((c.removed.len(), ids(&q)), (1, vec![2]));
        // A reset asks for a read and moves the sequence to the answer's.
        assert!(q.subscribed(&answer(900, Some(Resume::Reset))));
        assert_eq!(q.last_seq(), Some(900));
        let mut plain = active_by_score(None);
        assert!(
            plain
                .apply_seq(
                    Operation::Create,
                    row(json!({"id": 5, "status": "active", "score": 1})),
                    None
                )
                .is_empty(),
            "held before the load, no sequence needed"
        );
    }

    #[test]
    fn held_notifications_are_bounded_and_overflow_asks_for_a_new_read() {
        let mut q = active_by_score(None);
        q.load(
            vec![row(json!({"id": 1, "status": "active", "score": 1}))],
            None,
        );
        q.begin_reload();
        for i in 0..(MAX_HELD as i64 + 5) {
            q.apply(
                Operation::Create,
                row(json!({"id": 100 + i, "status": "active", "score": 2})),
            );
        }
        assert!(q.held.is_empty(), "dropped on overflow, not kept");
        let c = q.load(
            vec![row(json!({"id": 1, "status": "active", "score": 1}))],
            None,
        );
        assert!(c.needs_refill, "the rows may miss the dropped changes");
        assert_eq!(ids(&q), vec![1]);
        q.begin_reload();
        q.apply(
            Operation::Create,
            row(json!({"id": 2, "status": "active", "score": 2})),
        );
        let c = q.load(
            vec![row(json!({"id": 1, "status": "active", "score": 1}))],
            None,
        );
        assert!(!c.needs_refill, "the next load is normal again");
        assert_eq!(ids(&q), vec![2, 1]);
    }

    #[test]
    fn limit_pushes_out_and_asks_for_refill_when_cut() {
        let mut q = active_by_score(Some(2));
        q.load(
            vec![
                row(json!({"id": 1, "status": "active", "score": 9})),
                row(json!({"id": 2, "status": "active", "score": 8})),
            ],
            Some(3),
        );
        let c = q.apply(
            Operation::Create,
            row(json!({"id": 4, "status": "active", "score": 1})),
        );
        assert!(c.is_empty(), "past the end of a full view");
        let c = q.apply(
            Operation::Create,
            row(json!({"id": 5, "status": "active", "score": 10})),
        );
        assert_eq!(
            (ids(&q), c.removed[0]["id"].clone()),
            (vec![5, 1], json!(2))
        );
        let c = q.apply(Operation::Delete, row(json!({"id": 5})));
        assert!(c.needs_refill, "only the server knows the next row");
        assert_eq!(q.read_options()["sort"][1]["column"], "id");
    }

    /// Random creates, updates and deletes against a model "server"; after
    /// every notification (and a refill when asked) the view must equal a
    /// fresh read.
    #[test]
    fn random_stream_matches_fresh_reads() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rand = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for limit in [None, Some(1), Some(5), Some(20)] {
            let mut server: Vec<Row> = Vec::new();
            let mut q = active_by_score(limit);
            let read = |server: &Vec<Row>, q: &LiveQuery| {
                let mut m: Vec<Row> = server
                    .iter()
                    .filter(|r| matches(&q.filters, r))
                    .cloned()
                    .collect();
                m.sort_by(|a, b| q.order(a, b));
                let total = m.len() as u64;
                m.truncate(limit.unwrap_or(usize::MAX));
                (m, total)
            };
            let (rows, total) = read(&server, &q);
            q.load(rows, Some(total));
            for step in 0..3000 {
                let id = rand(40) as i64;
                let status = if rand(3) == 0 { "inactive" } else { "active" };
                let fresh = row(json!({"id": id, "status": status, "score": rand(10)}));
                let pos = server.iter().position(|r| r["id"] == json!(id));
                let (op, data) = match (pos, rand(4)) {
                    (Some(i), 0) => (
                        Operation::Delete,
                        row(json!({"id": server.remove(i)["id"]})),
                    ),
                    (Some(i), _) => {
                        server[i] = fresh.clone();
                        (Operation::Update, fresh)
                    }
                    (None, _) => {
                        server.push(fresh.clone());
                        (Operation::Create, fresh)
                    }
                };
                if q.apply(op, data).needs_refill {
                    let (rows, total) = read(&server, &q);
                    q.load(rows, Some(total));
                }
                assert_eq!(
                    q.rows(),
                    read(&server, &q).0.as_slice(),
                    "limit {limit:?}, step {step}"
                );
            }
        }
    }
}
