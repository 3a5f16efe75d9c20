//! From the broker to the handler, fairly: one worker task per client
//! (a client's requests are answered in order, clients in parallel), each
//! with a bounded queue and a rate limit. A client that sends faster than
//! its limit, or has too many requests waiting, gets `too_many_requests`
//! answers for the excess; its burst never delays another client and never
//! grows memory past the bounds. Refusals go out through their own bounded
//! queue, so the transport that calls [`Dispatcher::request`] never waits.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use mqttspec_proto::ErrorCode;
use tokio::sync::mpsc;

use crate::handler::{Caller, Handler};

/// Per-client bounds.
#[derive(Debug, Clone, Copy)]
pub struct ClientLimits {
    /// Requests waiting for one client's worker.
    pub queued: usize,
    /// Requests per second one client may send (sustained; bursts up to
    /// the same number).
    pub rate: NonZeroU32,
}

impl Default for ClientLimits {
    /// 1,000 waiting, 2,000 per second.
    fn default() -> Self {
        ClientLimits {
            queued: 1000,
            rate: NonZeroU32::new(2000).unwrap_or(NonZeroU32::MIN),
        }
    }
}

const WORKER_IDLE: Duration = Duration::from_secs(30);
/// Refusals waiting to be answered, all clients together.
const REFUSALS_QUEUED: usize = 4096;

/// What a client's worker does next, in arrival order.
enum Work {
    /// Answer one request payload.
    Request(Caller, Vec<u8>),
    /// The client's connection went away: drop its state after the
    /// requests before it (those after it come from a new connection).
    Gone,
}

struct Worker {
    tx: mpsc::Sender<Work>,
    limiter: DefaultDirectRateLimiter,
}

struct Refusal {
    caller: Caller,
    payload: Vec<u8>,
    reason: &'static str,
}

/// Routes requests to per-client workers.
pub struct Dispatcher {
    handler: Arc<Handler>,
    limits: ClientLimits,
    workers: Mutex<HashMap<String, Worker>>,
    refusals: mpsc::Sender<Refusal>,
}

impl Dispatcher {
    /// The handler it feeds.
    pub fn handler(&self) -> &Arc<Handler> {
        &self.handler
    }

    /// A dispatcher feeding `handler`; spawns the refusal task.
    pub fn new(handler: Arc<Handler>, limits: ClientLimits) -> Arc<Self> {
        let (refusals, mut rx) = mpsc::channel::<Refusal>(REFUSALS_QUEUED);
        let refuser = Arc::clone(&handler);
        tokio::spawn(async move {
            while let Some(r) = rx.recv().await {
                refuser
                    .refuse(&r.caller, &r.payload, ErrorCode::TooManyRequests, r.reason)
                    .await;
            }
        });
        Arc::new(Dispatcher {
            handler,
            limits,
            workers: Mutex::new(HashMap::new()),
            refusals,
        })
    }

    fn workers(&self) -> std::sync::MutexGuard<'_, HashMap<String, Worker>> {
        self.workers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `caller` published `payload` on its request topic. Never waits.
    pub fn request(&self, caller: Caller, payload: Vec<u8>) {
        let refused = {
            let mut workers = self.workers();
            if workers.len() > 4096 {
                workers.retain(|_, w| !w.tx.is_closed());
            }
            let worker = self.worker_of(&mut workers, &caller.client_id);
            if worker.limiter.check().is_err() {
                Some((
                    caller,
                    payload,
                    "request rate over the client's limit: slow down and send it again",
                ))
            } else {
                match worker.tx.try_send(Work::Request(caller, payload)) {
                    Err(mpsc::error::TrySendError::Full(Work::Request(caller, payload))) => Some((
                        caller,
                        payload,
                        "too many requests of this client are waiting: wait for answers before sending more",
                    )),
                    _ => None,
                }
            }
        };
        if let Some((caller, payload, reason)) = refused {
            tracing::debug!(client_id = caller.client_id, reason, "request refused");
            let refusal = Refusal {
                caller,
                payload,
                reason,
            };
            if self.refusals.try_send(refusal).is_err() {
                tracing::warn!("refusals queue full: a refused request gets no answer");
            }
        }
    }

    /// The client's connection ended: its state goes after the requests
    /// it sent before, and before any a new connection sends (they queue
    /// behind it in the same worker). Was: the worker was dropped from the
    /// map and `Gone` sent to it on the side, so a new connection's
    /// requests went to a new worker and, while the old one was still busy,
    /// its subscribe could be made and then dropped by the old `Gone`.
    pub fn gone(&self, client_id: &str) {
        let mut workers = self.workers();
        let working = workers.get(client_id).is_some_and(|w| !w.tx.is_closed());
        if !working && !self.handler.knows_client(client_id) {
            // Nothing waiting, nothing kept (most MQTT clients of the broker):
            // no worker is started just to find that out.
            return;
        }
        let worker = self.worker_of(&mut workers, client_id);
        if let Err(mpsc::error::TrySendError::Full(gone)) = worker.tx.try_send(Work::Gone) {
            // Its queue is full: `Gone` waits for a slot. A bounded channel
            // gives a freed slot to a waiting sender before any later
            // `try_send`, so what the client sends next still queues after it.
            let tx = worker.tx.clone();
            tokio::spawn(async move {
                let _ = tx.send(gone).await;
            });
        }
    }

    /// The live worker of `client_id`, made if it has none (or its last one
    /// ended after a quiet period).
    fn worker_of<'a>(
        &self,
        workers: &'a mut HashMap<String, Worker>,
        client_id: &str,
    ) -> &'a mut Worker {
        match workers.entry(client_id.to_string()) {
            Entry::Occupied(e) if !e.get().tx.is_closed() => e.into_mut(),
            Entry::Occupied(mut e) => {
                e.insert(self.spawn_worker(client_id));
                e.into_mut()
            }
            Entry::Vacant(e) => e.insert(self.spawn_worker(client_id)),
        }
    }

    fn spawn_worker(&self, client_id: &str) -> Worker {
        let (tx, rx) = mpsc::channel(self.limits.queued.max(1));
        tokio::spawn(run_worker(
            Arc::clone(&self.handler),
            client_id.to_string(),
            rx,
        ));
        Worker {
            tx,
            limiter: RateLimiter::direct(Quota::per_second(self.limits.rate)),
        }
    }
}

/// Answer one client's requests and departures in order; end after a
/// quiet period.
async fn run_worker(handler: Arc<Handler>, client_id: String, mut rx: mpsc::Receiver<Work>) {
    loop {
        let work = match tokio::time::timeout(WORKER_IDLE, rx.recv()).await {
            Ok(Some(work)) => work,
            Ok(None) => return,
            // Quiet: take no more, answer what is already queued, end.
            Err(_) => {
                rx.close();
                continue;
            }
        };
        match work {
            Work::Request(caller, payload) => handler.handle(&caller, &payload).await,
            Work::Gone => handler.client_gone(&client_id),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{mpsc as blocking, Arc, Mutex};

    use serde_json::json;
    use tokio::sync::mpsc;

    use super::{ClientLimits, Dispatcher};
    use crate::handler::testing::handler;
    use crate::handler::Caller;
    use crate::hooks::{on, HookPoint, Hooks};

    fn payload(v: serde_json::Value) -> Vec<u8> {
        v.to_string().into_bytes()
    }

    /// A client reconnects while its old connection's read is still being
    /// answered: the new connection's subscribe must outlive the old
    /// connection's departure.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_subscribe_after_a_reconnect_survives_the_old_connections_departure() {
        // The first read blocks in its hook until released.
        let (entered_tx, mut entered) = mpsc::unbounded_channel::<()>();
        let (release, released) = blocking::channel::<()>();
        let released = Mutex::new(Some(released));
        let hooks = Hooks::new().with(on(HookPoint::BeforeRead, move |_| {
            if let Some(rx) = released.lock().unwrap().take() {
                let _ = entered_tx.send(());
                let _ = rx.recv();
            }
            Ok(())
        }));
        let (h, mut answers) = handler(None, hooks).await;
        let h = Arc::new(h);
        let d = Dispatcher::new(Arc::clone(&h), ClientLimits::default());
        let c1 = || Caller::anonymous("c1", 1);
        let read = |id: &str| {
            payload(json!({"id": id, "type": "request", "operation": "read", "entity": "users"}))
        };

        d.request(c1(), read("r1"));
        entered.recv().await.expect("the read reached its hook");
        d.gone("c1"); // the old connection ends while its read is answered
        d.request(
            c1(),
            payload(json!({"id": "s1", "type": "subscription", "operation": "subscribe", "entity": "users"})),
        );
        release.send(()).expect("release the read");
        d.request(c1(), read("r2"));
        let mut ids = Vec::new();
        for _ in 0..3 {
            let out = answers.recv().await.expect("an answer");
            let m: serde_json::Value = serde_json::from_slice(&out.payload).expect("json");
            ids.push(m["id"].as_str().unwrap_or_default().to_string());
        }
        assert_eq!(ids, ["r1", "s1", "r2"], "one client's work stays in order");
        assert_eq!(
            h.subscription_count(),
            1,
            "the new connection's subscription was dropped"
        );
    }
}
