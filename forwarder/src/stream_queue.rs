//! The queue between the control socket and one relayed stream's task,
//! bounded in bytes rather than in messages: MQTT.js, for one, sends a
//! single MQTT packet as several WebSocket messages of a few bytes, so a
//! burst of small publishes is thousands of messages but only kilobytes.
//! Each message costs its length plus a fixed overhead, so empty messages
//! are bounded too. A message always fits into an empty queue (a local side
//! that keeps up never loses a large message to the bound).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

/// Bytes of messages that may wait for one slow local side (default of
/// `ttf --stream-buffer`).
pub const STREAM_QUEUE_BYTES: usize = 8 * 1024 * 1024;

/// Bookkeeping cost of one queued message beyond its payload.
const MESSAGE_OVERHEAD: usize = 64;

/// An item's size for the bound.
pub trait Cost {
    /// Payload bytes this item holds.
    fn bytes(&self) -> usize;
}

/// The control socket's end of a stream queue.
pub struct QueueTx<T> {
    tx: mpsc::UnboundedSender<T>,
    queued: Arc<AtomicUsize>,
    limit: usize,
}

/// The stream task's end of a stream queue.
pub struct QueueRx<T> {
    rx: mpsc::UnboundedReceiver<T>,
    queued: Arc<AtomicUsize>,
}

/// Why an item was not queued.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// The task is behind by this many bytes (and the item would pass the bound).
    Full(usize),
    /// The task ended.
    Closed,
}

/// A queue holding at most `limit` bytes (see the module comment).
pub fn queue<T: Cost>(limit: usize) -> (QueueTx<T>, QueueRx<T>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    let rx = QueueRx {
        rx,
        queued: Arc::clone(&queued),
    };
    (QueueTx { tx, queued, limit }, rx)
}

fn cost<T: Cost>(item: &T) -> usize {
    item.bytes() + MESSAGE_OVERHEAD
}

impl<T: Cost> QueueTx<T> {
    /// Queue `item` unless that would pass the bound.
    pub fn try_send(&self, item: T) -> Result<(), Refused> {
        let cost = cost(&item);
        let queued = self.queued.load(Ordering::Acquire);
        if queued > 0 && queued + cost > self.limit {
            return Err(Refused::Full(queued));
        }
        self.queued.fetch_add(cost, Ordering::AcqRel);
        self.tx.send(item).map_err(|_| Refused::Closed)
    }
}

impl<T: Cost> QueueRx<T> {
    /// The next item; `None` once the sending end is gone and all was taken.
    pub async fn recv(&mut self) -> Option<T> {
        let item = self.rx.recv().await?;
        self.queued.fetch_sub(cost(&item), Ordering::AcqRel);
        Some(item)
    }

    /// The next item if one is waiting now.
    pub fn try_recv(&mut self) -> Option<T> {
        let item = self.rx.try_recv().ok()?;
        self.queued.fetch_sub(cost(&item), Ordering::AcqRel);
        Some(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Cost for Vec<u8> {
        fn bytes(&self) -> usize {
            self.len()
        }
    }

    #[tokio::test]
    async fn bounds_bytes_not_messages() {
        let (tx, mut rx) = queue::<Vec<u8>>(64 * 1024);
        // 500 tiny messages (a burst of split MQTT packets) fit.
        for i in 0..500u32 {
            tx.try_send(i.to_be_bytes().to_vec()).unwrap();
        }
        for i in 0..500u32 {
            assert_eq!(rx.recv().await.unwrap(), i.to_be_bytes().to_vec());
        }
        // Past the bound: refused, saying how far behind the task is.
        tx.try_send(vec![0; 40 * 1024]).unwrap();
        let behind = 40 * 1024 + MESSAGE_OVERHEAD;
        assert_eq!(tx.try_send(vec![0; 40 * 1024]), Err(Refused::Full(behind)));
        // Taking an item frees its bytes.
        assert_eq!(rx.try_recv().unwrap().len(), 40 * 1024);
        assert!(rx.try_recv().is_none());
        tx.try_send(vec![0; 40 * 1024]).unwrap();
    }

    #[tokio::test]
    async fn a_large_message_fits_an_empty_queue() {
        let (tx, mut rx) = queue::<Vec<u8>>(1024);
        tx.try_send(vec![1; 10_000]).unwrap();
        assert_eq!(
            tx.try_send(vec![2]),
            Err(Refused::Full(10_000 + MESSAGE_OVERHEAD))
        );
        assert_eq!(rx.recv().await.unwrap().len(), 10_000);
        tx.try_send(vec![2]).unwrap();
    }

    #[tokio::test]
    async fn a_gone_task_is_reported() {
        let (tx, rx) = queue::<Vec<u8>>(1024);
        drop(rx);
        assert_eq!(tx.try_send(vec![1]), Err(Refused::Closed));
    }
}
