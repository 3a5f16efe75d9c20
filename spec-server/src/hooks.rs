//! Hooks: code run at the protocol's 17 hook points, able to reject a
//! request or rewrite it (options, data) and, after an operation, its
//! result. Hooks run in registration order; the first rejection wins.

use std::sync::Arc;

use mqttspec_proto::{ErrorCode, Operation, Options};
use serde_json::{Map, Value};

use crate::db::Entity;

/// Where a hook runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookPoint {
    /// A client id is seen for the first time (embedded broker with login: at MQTT CONNECT).
    BeforeConnect,
    /// After the connection was accepted.
    AfterConnect,
    /// Before a client's subscriptions are dropped (disconnect or expiry).
    BeforeDisconnect,
    /// After they were dropped.
    AfterDisconnect,
    /// Every request and subscription message, after the entity is resolved.
    BeforeHandle,
    /// Before a read; may add filters.
    BeforeRead,
    /// After a read; may rewrite `result`.
    AfterRead,
    /// Before a create; may rewrite `data`.
    BeforeCreate,
    /// After a create.
    AfterCreate,
    /// Before an update; may rewrite `data` and add filters.
    BeforeUpdate,
    /// After an update.
    AfterUpdate,
    /// Before a delete; may add filters.
    BeforeDelete,
    /// After a delete.
    AfterDelete,
    /// Before a subscription is made; may add filters.
    BeforeSubscribe,
    /// After a subscription is made.
    AfterSubscribe,
    /// Before a subscription is removed.
    BeforeUnsubscribe,
    /// After a subscription is removed.
    AfterUnsubscribe,
}

impl HookPoint {
    /// All 17 hook points.
    pub const ALL: [HookPoint; 17] = [
        HookPoint::BeforeConnect,
        HookPoint::AfterConnect,
        HookPoint::BeforeDisconnect,
        HookPoint::AfterDisconnect,
        HookPoint::BeforeHandle,
        HookPoint::BeforeRead,
        HookPoint::AfterRead,
        HookPoint::BeforeCreate,
        HookPoint::AfterCreate,
        HookPoint::BeforeUpdate,
        HookPoint::AfterUpdate,
        HookPoint::BeforeDelete,
        HookPoint::AfterDelete,
        HookPoint::BeforeSubscribe,
        HookPoint::AfterSubscribe,
        HookPoint::BeforeUnsubscribe,
        HookPoint::AfterUnsubscribe,
    ];

    /// The Before/After points of an operation.
    pub fn around(operation: Operation) -> Option<(HookPoint, HookPoint)> {
        Some(match operation {
            Operation::Read => (HookPoint::BeforeRead, HookPoint::AfterRead),
            Operation::Create => (HookPoint::BeforeCreate, HookPoint::AfterCreate),
            Operation::Update => (HookPoint::BeforeUpdate, HookPoint::AfterUpdate),
            Operation::Delete => (HookPoint::BeforeDelete, HookPoint::AfterDelete),
            Operation::Subscribe => (HookPoint::BeforeSubscribe, HookPoint::AfterSubscribe),
            Operation::Unsubscribe => (HookPoint::BeforeUnsubscribe, HookPoint::AfterUnsubscribe),
            Operation::Meta => return None,
        })
    }
}

/// What a hook sees and may change.
#[derive(Debug, Clone, Default)]
pub struct HookContext {
    /// The MQTT client id (from the broker session; behind an external
    /// broker, from the request topic).
    pub client_id: String,
    /// The MQTT username of the connection that sent the request (embedded
    /// broker; `None` for anonymous clients and behind an external broker).
    pub username: Option<String>,
    /// The MQTT password, at `BeforeConnect` only.
    pub password: Option<String>,
    /// The operation, on request hooks.
    pub operation: Option<Operation>,
    /// The resolved entity, on request hooks.
    pub entity: Option<Arc<Entity>>,
    /// Request options; changes apply to the operation.
    pub options: Options,
    /// Request data (create/update); changes apply to the operation.
    pub data: Option<Value>,
    /// The record addressed, if any.
    pub record_id: Option<Value>,
    /// The operation's result, on After hooks; changes go to the client.
    pub result: Option<Value>,
    /// State shared by the hooks of one request (e.g. verified JWT claims).
    pub claims: Map<String, Value>,
}

/// A hook's refusal: the client gets `success: false` with this code and message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct HookError {
    /// `unauthorized`, `auth_error` or `hook_error` usually.
    pub code: ErrorCode,
    /// Told to the client.
    pub message: String,
}

impl HookError {
    /// A `hook_error` refusal.
    pub fn reject(message: impl Into<String>) -> Self {
        HookError {
            code: ErrorCode::HookError,
            message: message.into(),
        }
    }

    /// An `unauthorized` refusal.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        HookError {
            code: ErrorCode::Unauthorized,
            message: message.into(),
        }
    }
}

/// Code run at hook points. Runs on the request's task: keep it fast and
/// free of blocking IO.
pub trait Hook: Send + Sync {
    /// Called at every hook point; return `Err` to reject.
    fn call(&self, point: HookPoint, ctx: &mut HookContext) -> Result<(), HookError>;
}

/// A closure as a hook for one point.
pub struct FnHook<F> {
    point: HookPoint,
    f: F,
}

/// Run `f` at `point` only.
pub fn on<F>(point: HookPoint, f: F) -> FnHook<F>
where
    F: Fn(&mut HookContext) -> Result<(), HookError> + Send + Sync,
{
    FnHook { point, f }
}

impl<F> Hook for FnHook<F>
where
    F: Fn(&mut HookContext) -> Result<(), HookError> + Send + Sync,
{
    fn call(&self, point: HookPoint, ctx: &mut HookContext) -> Result<(), HookError> {
        if point == self.point {
            (self.f)(ctx)
        } else {
            Ok(())
        }
    }
}

/// The hooks of a server, in order.
#[derive(Clone, Default)]
pub struct Hooks {
    hooks: Vec<Arc<dyn Hook>>,
}

impl Hooks {
    /// No hooks.
    pub fn new() -> Self {
        Hooks::default()
    }

    /// Add a hook after the others.
    pub fn with(mut self, hook: impl Hook + 'static) -> Self {
        self.hooks.push(Arc::new(hook));
        self
    }

    /// Whether any hook is registered.
    pub fn is_empty(&self) -> bool {
        self.hooks.is_empty()
    }

    /// Run every hook at `point`; stop at the first refusal.
    pub fn run(&self, point: HookPoint, ctx: &mut HookContext) -> Result<(), HookError> {
        self.hooks.iter().try_for_each(|h| h.call(point, ctx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_refusal_wins_and_rewrites_apply_in_order() {
        let hooks = Hooks::new()
            .with(on(HookPoint::BeforeCreate, |ctx| {
                ctx.data = Some(serde_json::json!({"a": 1}));
                Ok(())
            }))
            .with(on(HookPoint::BeforeRead, |_| {
                Err(HookError::reject("no reads"))
            }));
        let mut ctx = HookContext::default();
        hooks.run(HookPoint::BeforeCreate, &mut ctx).unwrap();
        assert_eq!(ctx.data.as_ref().unwrap()["a"], 1);
        let err = hooks.run(HookPoint::BeforeRead, &mut ctx).unwrap_err();
        assert_eq!(err.code, ErrorCode::HookError);
        assert_eq!(HookPoint::ALL.len(), 17);
    }
}
