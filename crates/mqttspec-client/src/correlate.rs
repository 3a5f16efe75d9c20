//! Matching responses to requests.
//!
//! Every request gets a unique `id`; the [`Correlator`] keeps the caller's
//! token (in the browser: the promise's resolve/reject pair) until the
//! response with that id arrives, the request times out, or the client ends.
//! Requests made while offline wait in an outbox and are handed out on the
//! next connect; one that expires while waiting is never sent, so a timed-out
//! `create` cannot happen later behind the caller's back. A response with an
//! unknown id (late, duplicate, or someone else's) is ignored.

use std::collections::{HashMap, VecDeque};

use mqttspec_proto::{Message, MessageType};

/// A failed request: `success: false` from the server, or a local failure
/// (`timeout`, `closed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SpecError {
    /// Machine-readable code (the server's `error.code`, or `timeout` / `closed`).
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

impl SpecError {
    /// An error with `code` and `message`.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        SpecError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// The outcome of one request: the response message, or why it failed.
pub type Completion<T> = (T, Result<Message, SpecError>);

struct Pending<T> {
    token: T,
    deadline_ms: u64,
    /// The message, while it waits in the outbox.
    unsent: Option<Message>,
}

/// Requests in flight and waiting, keyed by id.
pub struct Correlator<T> {
    nonce: String,
    counter: u64,
    pending: HashMap<String, Pending<T>>,
    outbox: VecDeque<String>,
}

impl<T> Correlator<T> {
    /// A correlator whose ids start with `nonce` (make it unique per page
    /// load, e.g. random, so ids never repeat across reloads).
    pub fn new(nonce: impl Into<String>) -> Self {
        Correlator {
            nonce: nonce.into(),
            counter: 0,
            pending: HashMap::new(),
            outbox: VecDeque::new(),
        }
    }

    /// A fresh request id.
    pub fn next_id(&mut self) -> String {
        self.counter += 1;
        format!("{}-{}", self.nonce, self.counter)
    }

    /// Track `message` (whose `id` must be set) until its response or
    /// `now_ms + timeout_ms`. Returns the message to publish now when
    /// `online`; otherwise it waits for [`Correlator::take_outbox`].
    pub fn submit(
        &mut self,
        message: Message,
        token: T,
        now_ms: u64,
        timeout_ms: u64,
        online: bool,
    ) -> Option<Message> {
        let id = message.id.clone().unwrap_or_else(|| self.next_id());
        let message = Message {
            id: Some(id.clone()),
            ..message
        };
        let deadline_ms = now_ms.saturating_add(timeout_ms);
        let (unsent, send_now) = if online {
            (None, Some(message))
        } else {
            (Some(message), None)
        };
        if unsent.is_some() {
            self.outbox.push_back(id.clone());
        }
        self.pending.insert(
            id,
            Pending {
                token,
                deadline_ms,
                unsent,
            },
        );
        send_now
    }

    /// Messages that waited while offline, in submission order; they count
    /// as sent from now on.
    pub fn take_outbox(&mut self) -> Vec<Message> {
        let pending = &mut self.pending;
        self.outbox
            .drain(..)
            .filter_map(|id| pending.get_mut(&id).and_then(|p| p.unsent.take()))
            .collect()
    }

    /// Hand in a received message; returns the completed request if it is
    /// the response (or pong) to one of ours.
    pub fn on_message(&mut self, message: Message) -> Option<Completion<T>> {
        if !matches!(
            message.kind,
            Some(MessageType::Response | MessageType::Pong) | None
        ) {
            return None;
        }
        let id = message.id.as_deref()?;
        let pending = self.pending.remove(id)?;
        let outcome = match (message.success, &message.error) {
            (Some(false), error) | (_, error @ Some(_)) => Err(error
                .as_ref()
                .map(|e| SpecError::new(e.code.clone(), e.message.clone()))
                .unwrap_or_else(|| {
                    SpecError::new(
                        "unknown_error",
                        "the server reported a failure without details",
                    )
                })),
            _ => Ok(message),
        };
        Some((pending.token, outcome))
    }

    /// Stop tracking request `id` (its publish failed); returns its token.
    pub fn cancel(&mut self, id: &str) -> Option<T> {
        self.outbox.retain(|queued| queued != id);
        self.pending.remove(id).map(|p| p.token)
    }

    /// Requests whose deadline is at or before `now_ms`, with their `timeout` error.
    pub fn expire(&mut self, now_ms: u64) -> Vec<(T, SpecError)> {
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| p.deadline_ms <= now_ms)
            .map(|(id, _)| id.clone())
            .collect();
        self.outbox.retain(|id| !expired.contains(id));
        expired
            .into_iter()
            .filter_map(|id| {
                let p = self.pending.remove(&id)?;
                let what = if p.unsent.is_some() {
                    "while waiting for the connection"
                } else {
                    "waiting for the response"
                };
                let error = SpecError::new("timeout", format!("request {id} timed out {what}"));
                Some((p.token, error))
            })
            .collect()
    }

    /// The earliest deadline, for the driver's timer.
    pub fn next_deadline(&self) -> Option<u64> {
        self.pending.values().map(|p| p.deadline_ms).min()
    }

    /// Fail everything (the client is ending) with code `closed`.
    pub fn close(&mut self, reason: &str) -> Vec<(T, SpecError)> {
        self.outbox.clear();
        let closed = |p: Pending<T>| (p.token, SpecError::new("closed", reason.to_string()));
        self.pending.drain().map(|(_, p)| closed(p)).collect()
    }

    /// Number of requests not yet answered.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Whether no request is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mqttspec_proto::ErrorBody;
    use serde_json::json;

    fn req(c: &mut Correlator<u32>) -> Message {
        Message {
            id: Some(c.next_id()),
            kind: Some(MessageType::Request),
            ..Message::default()
        }
    }

    fn response(id: &str, ok: bool) -> Message {
        Message {
            id: Some(id.into()),
            kind: Some(MessageType::Response),
            success: Some(ok),
            data: ok.then(|| json!({"id": 1})),
            error: (!ok).then(|| ErrorBody {
                code: "model_not_found".into(),
                message: "no".into(),
                details: None,
            }),
            ..Message::default()
        }
    }

    #[test]
    fn each_response_resolves_its_own_request_once() {
        let mut c = Correlator::new("n");
        let (a, b) = (req(&mut c), req(&mut c));
        let (ida, idb) = (a.id.clone().unwrap(), b.id.clone().unwrap());
        assert_ne!(ida, idb);
        assert!(c.submit(a, 1, 0, 100, true).is_some());
        assert!(c.submit(b, 2, 0, 100, true).is_some());
        let (tok, res) = c.on_message(response(&idb, false)).unwrap();
        assert_eq!(tok, 2);
        assert_eq!(res.unwrap_err().code, "model_not_found");
        let (tok, res) = c.on_message(response(&ida, true)).unwrap();
        assert_eq!((tok, res.unwrap().data), (1, Some(json!({"id": 1}))));
        assert!(
            c.on_message(response(&ida, true)).is_none(),
            "duplicate dropped"
        );
        assert!(c.is_empty());
    }

    #[test]
    fn timeout_then_late_answer_is_dropped() {
        let mut c = Correlator::new("n");
        let m = req(&mut c);
        let id = m.id.clone().unwrap();
        c.submit(m, 7, 1000, 50, true);
        assert_eq!(c.next_deadline(), Some(1050));
        assert!(c.expire(1049).is_empty());
        let expired = c.expire(1050);
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].1.code, "timeout");
        assert!(c.on_message(response(&id, true)).is_none());
    }

    #[test]
    fn offline_requests_wait_and_expired_ones_are_never_sent() {
        let mut c = Correlator::new("n");
        let (a, b) = (req(&mut c), req(&mut c));
        let ida = a.id.clone().unwrap();
        assert!(c.submit(a, 1, 0, 10, false).is_none());
        assert!(c.submit(b, 2, 0, 100, false).is_none());
        assert_eq!(c.expire(10).len(), 1);
        let out = c.take_outbox();
        assert_eq!(out.len(), 1);
        assert_ne!(out[0].id.as_deref(), Some(ida.as_str()));
        assert!(c.take_outbox().is_empty(), "handed out once");
        assert_eq!(c.len(), 1);
        assert_eq!(c.close("bye")[0].1.code, "closed");
        let m = req(&mut c);
        let id = m.id.clone().unwrap();
        c.submit(m, 3, 0, 10, false);
        assert_eq!(c.cancel(&id), Some(3));
        assert!(
            c.take_outbox().is_empty(),
            "a cancelled request is never sent"
        );
    }

    #[test]
    fn notifications_and_foreign_ids_are_not_completions() {
        let mut c: Correlator<u32> = Correlator::new("n");
        let m = req(&mut c);
        let id = m.id.clone().unwrap();
        c.submit(m, 1, 0, 10, true);
        let note = Message {
            id: Some(id.clone()),
            kind: Some(MessageType::Notification),
            ..Message::default()
        };
        assert!(c.on_message(note).is_none());
        assert!(c.on_message(response("other", true)).is_none());
        let pong = Message {
            id: Some(id),
            kind: Some(MessageType::Pong),
            success: Some(true),
            ..Message::default()
        };
        assert!(c.on_message(pong).unwrap().1.is_ok());
    }
}
