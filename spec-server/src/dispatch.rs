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
    /// The client went away: drop its state after the requests before it.
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
            let worker = match workers.entry(caller.client_id.clone()) {
                Entry::Occupied(e) if !e.get().tx.is_closed() => e.into_mut(),
                Entry::Occupied(mut e) => {
                    e.insert(self.spawn_worker(&caller.client_id));
                    e.into_mut()
                }
                Entry::Vacant(e) => e.insert(self.spawn_worker(&caller.client_id)),
            };
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
    /// it sent before.
    pub fn gone(&self, client_id: &str) {
        match self.workers().remove(client_id) {
            Some(w) if !w.tx.is_closed() => {
                let handler = Arc::clone(&self.handler);
                let client_id = client_id.to_string();
                tokio::spawn(async move {
                    if w.tx.send(Work::Gone).await.is_err() {
                        // The worker ended meanwhile (idle): nothing to wait for.
                        handler.client_gone(&client_id);
                    }
                });
            }
            // No worker, or one that ended after a quiet period (its entry
            // stays until the next request): the client goes at once. (Was:
            // Gone sent to the ended worker and lost, so a client quiet for
            // longer than the idle period kept its subscriptions.)
            _ => self.handler.client_gone(client_id),
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

/// Answer one client's requests in order; end after a quiet period or
/// when the client is gone.
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
            Work::Gone => return handler.client_gone(&client_id),
        }
    }
}
