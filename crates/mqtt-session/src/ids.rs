//! Small containers keyed by MQTT packet identifier, chosen for code size
//! in wasm (no hashing, no sorting): a bitset of identifiers and an
//! insertion-ordered list. Acks usually arrive in the order packets were
//! sent, so lookups from the front are short.

use std::collections::VecDeque;

/// A set of packet identifiers (a 8 KiB bitset, allocated on first insert).
#[derive(Debug, Default, Clone)]
pub struct IdSet {
    words: Vec<u64>,
}

impl IdSet {
    /// Add `id`; false if it was already there.
    pub fn insert(&mut self, id: u16) -> bool {
        if self.words.is_empty() {
            self.words = vec![0; 1024];
        }
        let (w, bit) = (usize::from(id >> 6), 1u64 << (id & 63));
        match self.words.get_mut(w) {
            Some(word) if *word & bit == 0 => {
                *word |= bit;
                true
            }
            _ => false,
        }
    }

    /// Remove `id`.
    pub fn remove(&mut self, id: u16) {
        if let Some(word) = self.words.get_mut(usize::from(id >> 6)) {
            *word &= !(1u64 << (id & 63));
        }
    }

    /// Is `id` in the set?
    pub fn contains(&self, id: u16) -> bool {
        self.words
            .get(usize::from(id >> 6))
            .is_some_and(|w| w & (1u64 << (id & 63)) != 0)
    }

    /// Remove everything.
    pub fn clear(&mut self) {
        self.words.clear();
    }
}

/// Values keyed by packet identifier, kept in insertion order.
#[derive(Debug)]
pub struct ById<V> {
    items: VecDeque<(u16, V)>,
}

impl<V> Default for ById<V> {
    fn default() -> Self {
        ById {
            items: VecDeque::new(),
        }
    }
}

impl<V> ById<V> {
    /// Append (the caller guarantees `id` is not present).
    pub fn push(&mut self, id: u16, value: V) {
        self.items.push_back((id, value));
    }

    /// Insert before everything else.
    pub fn push_front(&mut self, id: u16, value: V) {
        self.items.push_front((id, value));
    }

    fn index(&self, id: u16) -> Option<usize> {
        self.items.iter().position(|(k, _)| *k == id)
    }

    /// The value of `id`, searching from the oldest entry.
    pub fn get(&self, id: u16) -> Option<&V> {
        self.index(id)
            .and_then(|i| self.items.get(i))
            .map(|(_, v)| v)
    }

    /// Mutable value of `id`, searching from the oldest entry.
    pub fn get_mut(&mut self, id: u16) -> Option<&mut V> {
        let i = self.index(id)?;
        self.items.get_mut(i).map(|(_, v)| v)
    }

    /// Mutable value of `id`, searching from the newest entry.
    pub fn get_recent_mut(&mut self, id: u16) -> Option<&mut V> {
        let i = self.items.iter().rposition(|(k, _)| *k == id)?;
        self.items.get_mut(i).map(|(_, v)| v)
    }

    /// Remove and return the value of `id`.
    pub fn remove(&mut self, id: u16) -> Option<V> {
        let i = self.index(id)?;
        self.items.remove(i).map(|(_, v)| v)
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// No entries.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Entries, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (u16, &V)> {
        self.items.iter().map(|(k, v)| (*k, v))
    }

    /// Remove every entry, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = (u16, V)> + '_ {
        self.items.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_set() {
        let mut s = IdSet::default();
        assert!(!s.contains(7));
        assert!(s.insert(7));
        assert!(!s.insert(7));
        assert!(s.insert(65535) && s.insert(0));
        assert!(s.contains(7) && s.contains(65535) && s.contains(0) && !s.contains(8));
        s.remove(7);
        assert!(!s.contains(7));
        s.clear();
        assert!(!s.contains(65535));
    }

    #[test]
    fn by_id_keeps_order() {
        let mut m = ById::default();
        m.push(3, "c");
        m.push(1, "a");
        m.push_front(9, "z");
        assert_eq!(m.iter().map(|(k, _)| k).collect::<Vec<_>>(), vec![9, 3, 1]);
        assert_eq!(m.get(1), Some(&"a"));
        *m.get_recent_mut(3).unwrap() = "C";
        assert_eq!(m.remove(3), Some("C"));
        assert_eq!(m.remove(3), None);
        assert_eq!(m.len(), 2);
        assert_eq!(m.drain().count(), 2);
        assert!(m.is_empty());
    }
}
