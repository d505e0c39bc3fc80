//! The domain error: one variant per outcome a caller must tell apart. The server maps each to a
//! status and code in one place (REST envelope or native proxy shape).

use std::fmt;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or a value is out of range (400 `invalid_request`).
    #[error("{0}")]
    Invalid(String),
    /// Like `Invalid` but with its own stable machine code (400 with that code).
    #[error("{message}")]
    InvalidCode { code: &'static str, message: String },
    /// No credentials, or bad/expired/revoked ones (401).
    #[error("{0}")]
    Unauthenticated(String),
    /// Authenticated but not allowed (403).
    #[error("{0}")]
    Forbidden(String),
    /// No such object, or the caller may not know it exists (404).
    #[error("{0}")]
    NotFound(String),
    /// The wallet cannot cover the call (402).
    #[error("{0}")]
    InsufficientFunds(String),
    /// State conflict: duplicate, last owner, already cold, idempotency key reuse (409).
    #[error("{0}")]
    Conflict(String),
    /// Too many attempts; retry after the given number of whole seconds (429).
    #[error("{message}")]
    RateLimited { message: String, retry_after_secs: u64 },
    /// A dependency is down (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged with the request id, never shown to the client (500).
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl Error {
    pub fn invalid(msg: impl fmt::Display) -> Self {
        Error::Invalid(msg.to_string())
    }
    pub fn not_found(what: &str) -> Self {
        Error::NotFound(format!("{what} not found"))
    }
    pub fn conflict(msg: impl fmt::Display) -> Self {
        Error::Conflict(msg.to_string())
    }
    pub fn forbidden(msg: impl fmt::Display) -> Self {
        Error::Forbidden(msg.to_string())
    }
    pub fn unauthenticated(msg: impl fmt::Display) -> Self {
        Error::Unauthenticated(msg.to_string())
    }
    pub fn internal(e: impl Into<anyhow::Error>) -> Self {
        Error::Internal(e.into())
    }
}
