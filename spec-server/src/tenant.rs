//! Multi-tenancy example hook: every read, update, delete and subscription
//! of an entity with a tenant column is limited to the caller's tenant, and
//! every create stamps it. The tenant comes from a verified JWT claim (run
//! [`crate::jwt::JwtAuth`] first).

use mqttspec_proto::{require_filter, Filter, FilterOp};
use serde_json::Value;

use crate::hooks::{Hook, HookContext, HookError, HookPoint};

/// The tenancy hook.
pub struct Tenancy {
    column: String,
    claim: String,
}

impl Tenancy {
    /// Tenant id from claim `claim`, stored in column `column`.
    pub fn new(column: impl Into<String>, claim: impl Into<String>) -> Self {
        Tenancy {
            column: column.into(),
            claim: claim.into(),
        }
    }

    fn tenant(&self, ctx: &HookContext) -> Result<Value, HookError> {
        match ctx.claims.get(&self.claim) {
            Some(v) if !v.is_null() => Ok(v.clone()),
            _ => Err(HookError::unauthorized(format!(
                "no tenant: the token has no {:?} claim",
                self.claim
            ))),
        }
    }
}

impl Hook for Tenancy {
    fn call(&self, point: HookPoint, ctx: &mut HookContext) -> Result<(), HookError> {
        let has_column = ctx
            .entity
            .as_ref()
            .is_some_and(|e| e.column(&self.column).is_some());
        if !has_column {
            return Ok(());
        }
        match point {
            HookPoint::BeforeRead
            | HookPoint::BeforeUpdate
            | HookPoint::BeforeDelete
            | HookPoint::BeforeSubscribe => {
                let tenant = self.tenant(ctx)?;
                let only_tenant = Filter::new(self.column.clone(), FilterOp::Eq, tenant);
                ctx.options.filters = require_filter(&ctx.options.filters, only_tenant);
                if point == HookPoint::BeforeUpdate {
                    if let Some(Value::Object(data)) = ctx.data.as_mut() {
                        data.remove(&self.column);
                    }
                }
            }
            HookPoint::BeforeCreate => {
                let tenant = self.tenant(ctx)?;
                match ctx.data.as_mut() {
                    Some(Value::Object(data)) => {
                        data.insert(self.column.clone(), tenant);
                    }
                    _ => return Err(HookError::reject("create needs an object in data")),
                }
            }
            _ => {}
        }
        Ok(())
    }
}
