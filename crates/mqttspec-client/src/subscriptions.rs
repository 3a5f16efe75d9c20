//! Local subscription handles and the server's subscription ids.
//!
//! A handle lives as long as the caller keeps its subscription; the server id
//! it maps to changes when the subscription is re-established after a
//! reconnect that lost the session (the server forgets a client's
//! subscriptions when it disconnects).

use std::collections::HashMap;

use serde_json::Value;

use crate::request::EntityRef;

/// Local handle of one subscription.
pub type Handle = u64;

/// What a subscription asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct Wanted {
    /// The entity watched.
    pub entity: EntityRef,
    /// The `options` sent with the subscribe (filters).
    pub options: Option<Value>,
}

/// The registry.
#[derive(Debug, Default)]
pub struct Subscriptions {
    next: Handle,
    wanted: HashMap<Handle, (Wanted, Option<String>)>,
    by_server_id: HashMap<String, Handle>,
}

impl Subscriptions {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Register a new subscription (not yet confirmed by the server).
    pub fn add(&mut self, entity: EntityRef, options: Option<Value>) -> Handle {
        self.next += 1;
        self.wanted
            .insert(self.next, (Wanted { entity, options }, None));
        self.next
    }

    /// The server confirmed `handle` as `server_id`. Returns false when the
    /// handle was removed meanwhile (the caller should unsubscribe `server_id`).
    pub fn bind(&mut self, handle: Handle, server_id: String) -> bool {
        let Some((_, bound)) = self.wanted.get_mut(&handle) else {
            return false;
        };
        if let Some(old) = bound.replace(server_id.clone()) {
            self.by_server_id.remove(&old);
        }
        self.by_server_id.insert(server_id, handle);
        true
    }

    /// What `handle` asked for (None once removed).
    pub fn wanted(&self, handle: Handle) -> Option<&Wanted> {
        self.wanted.get(&handle).map(|(w, _)| w)
    }

    /// The server's id for `handle`, once confirmed.
    pub fn server_id(&self, handle: Handle) -> Option<&str> {
        self.wanted.get(&handle)?.1.as_deref()
    }

    /// Forget `handle`; returns its server id if it had one (to unsubscribe).
    pub fn remove(&mut self, handle: Handle) -> Option<String> {
        let (_, server_id) = self.wanted.remove(&handle)?;
        let server_id = server_id?;
        self.by_server_id.remove(&server_id);
        Some(server_id)
    }

    /// The handle a notification for `server_id` belongs to.
    pub fn handle_of(&self, server_id: &str) -> Option<Handle> {
        self.by_server_id.get(server_id).copied()
    }

    /// The server lost `handle`'s subscription (`subscription_lost`): forget
    /// its server id and return what to subscribe again.
    pub fn unbind(&mut self, handle: Handle) -> Option<Wanted> {
        let (wanted, bound) = self.wanted.get_mut(&handle)?;
        if let Some(old) = bound.take() {
            self.by_server_id.remove(&old);
        }
        Some(wanted.clone())
    }

    /// The session was lost: forget every server id and return what to
    /// subscribe again, oldest first.
    pub fn reset(&mut self) -> Vec<(Handle, Wanted)> {
        self.by_server_id.clear();
        let mut all: Vec<(Handle, Wanted)> = self
            .wanted
            .iter_mut()
            .map(|(h, (wanted, bound))| {
                *bound = None;
                (*h, wanted.clone())
            })
            .collect();
        all.sort_by_key(|(h, _)| *h);
        all
    }

    /// Number of live handles.
    pub fn len(&self) -> usize {
        self.wanted.len()
    }

    /// Whether there is none.
    pub fn is_empty(&self) -> bool {
        self.wanted.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_dispatch_reset_rebind() {
        let mut s = Subscriptions::new();
        let users = EntityRef::parse("public.users", None);
        let a = s.add(users.clone(), None);
        let b = s.add(users, Some(serde_json::json!({"filters": []})));
        assert!(s.bind(a, "sub-1".into()));
        assert!(s.bind(b, "sub-2".into()));
        assert_eq!(s.handle_of("sub-2"), Some(b));
        assert_eq!(s.server_id(b), Some("sub-2"));
        let again = s.reset();
        assert_eq!(
            again.iter().map(|(h, _)| *h).collect::<Vec<_>>(),
            vec![a, b]
        );
        assert_eq!(s.handle_of("sub-1"), None, "old server ids are gone");
        assert!(s.bind(a, "sub-9".into()));
        assert_eq!(s.handle_of("sub-9"), Some(a));
        assert_eq!(s.remove(a).as_deref(), Some("sub-9"));
        assert_eq!(s.handle_of("sub-9"), None);
        assert!(!s.bind(a, "late".into()), "removed handles do not rebind");
        assert_eq!(s.remove(b), None, "b was never re-confirmed");
        assert!(s.is_empty());
    }
}
