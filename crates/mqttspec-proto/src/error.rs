//! Error codes of failed responses (`error.code`).

use serde::{Deserialize, Serialize};

/// Every `error.code` this project sends. The first fifteen are the
/// reference server's; the rest are this project's additions, named after
/// what was wrong.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// Payload is not a valid message (not JSON, wrong field types, too large, missing fields).
    InvalidMessage,
    /// `type` is not one a client may send.
    InvalidMessageType,
    /// No such entity (table) is served.
    ModelNotFound,
    /// The entity exists but cannot be used (e.g. it has no primary key for a single-record operation).
    InvalidModel,
    /// A hook refused the request for lack of credentials or rights.
    Unauthorized,
    /// Credentials were present but could not be verified (bad token).
    AuthError,
    /// A hook refused the request.
    HookError,
    /// The database failed a read.
    ReadError,
    /// The database failed a create.
    CreateError,
    /// The database failed an update.
    UpdateError,
    /// The database failed a delete.
    DeleteError,
    /// The database failed a meta request.
    MetaError,
    /// `operation` does not fit a request.
    InvalidOperation,
    /// `operation` does not fit a subscription message.
    InvalidSubscriptionOperation,
    /// Unknown subscription id, or not the client's.
    InvalidSubscription,
    /// A column name (in filters, sort, columns, omit_columns or data) is not one of the entity's.
    InvalidColumn,
    /// A filter's operator or value does not fit (e.g. `between` without two bounds).
    InvalidFilter,
    /// `options` is malformed (wrong types, negative limit, ...).
    InvalidOptions,
    /// `data` is missing or not an object where one is required.
    InvalidData,
    /// The addressed record does not exist (or no longer matches the request's filters).
    NotFound,
    /// The client sent requests faster than its limit, or has too many
    /// waiting: this one was not run; send it again later (same id is fine).
    TooManyRequests,
    /// On a notify topic: the server instance holding this subscription
    /// stopped; subscribe again (with `options.since` to resume).
    SubscriptionLost,
}

impl ErrorCode {
    /// The wire name (`"model_not_found"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidMessage => "invalid_message",
            ErrorCode::InvalidMessageType => "invalid_message_type",
            ErrorCode::ModelNotFound => "model_not_found",
            ErrorCode::InvalidModel => "invalid_model",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::AuthError => "auth_error",
            ErrorCode::HookError => "hook_error",
            ErrorCode::ReadError => "read_error",
            ErrorCode::CreateError => "create_error",
            ErrorCode::UpdateError => "update_error",
            ErrorCode::DeleteError => "delete_error",
            ErrorCode::MetaError => "meta_error",
            ErrorCode::InvalidOperation => "invalid_operation",
            ErrorCode::InvalidSubscriptionOperation => "invalid_subscription_operation",
            ErrorCode::InvalidSubscription => "invalid_subscription",
            ErrorCode::InvalidColumn => "invalid_column",
            ErrorCode::InvalidFilter => "invalid_filter",
            ErrorCode::InvalidOptions => "invalid_options",
            ErrorCode::InvalidData => "invalid_data",
            ErrorCode::NotFound => "not_found",
            ErrorCode::TooManyRequests => "too_many_requests",
            ErrorCode::SubscriptionLost => "subscription_lost",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_match_serde() {
        let all = [
            ErrorCode::InvalidMessage,
            ErrorCode::InvalidSubscriptionOperation,
            ErrorCode::ModelNotFound,
            ErrorCode::NotFound,
            ErrorCode::InvalidColumn,
            ErrorCode::SubscriptionLost,
        ];
        for code in all {
            assert_eq!(serde_json::to_value(code).unwrap(), code.as_str());
        }
    }
}
