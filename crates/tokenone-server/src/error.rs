//! The one place a domain error becomes an HTTP answer on `/api`: the `{success, error, code}`
//! envelope with the status of conventions.md. Internal causes are logged (inside the request's
//! span, so with its request id) and never returned.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use tokenone_core::Error;

#[derive(Debug)]
pub struct ApiError(pub Error);

pub type ApiResult<T> = Result<T, ApiError>;

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    pub fn invalid(msg: impl std::fmt::Display) -> Self {
        ApiError(Error::invalid(msg))
    }
}

/// Status and machine code of each domain error.
pub fn status_and_code(e: &Error) -> (StatusCode, &'static str) {
    match e {
        Error::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
        Error::InvalidCode {
            code: "payload_too_large",
            ..
        } => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
        Error::InvalidCode { code, .. } => (StatusCode::BAD_REQUEST, code),
        Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, "unauthenticated"),
        Error::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
        Error::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
        Error::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
        Error::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
        Error::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
        Error::InsufficientFunds(_) => (StatusCode::PAYMENT_REQUIRED, "insufficient_funds"),
        Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
    }
}

#[derive(Serialize)]
struct Failure<'a> {
    success: bool,
    error: &'a str,
    code: &'a str,
}

/// A failure envelope with an explicit status and code (for errors raised outside services).
pub fn failure(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        Json(Failure {
            success: false,
            error: message,
            code,
        }),
    )
        .into_response()
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = status_and_code(&self.0);
        let message = match &self.0 {
            Error::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error".to_string()
            }
            other => other.to_string(),
        };
        let mut resp = failure(status, code, &message);
        if let Error::RateLimited { retry_after_secs, .. } = &self.0 {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
        }
        resp
    }
}

/// `{"success": true, "data": ...}` with 200.
pub struct Data<T>(pub T);

/// `{"success": true, "data": ...}` with 201.
pub struct Created<T>(pub T);

#[derive(Serialize)]
struct Success<T> {
    success: bool,
    data: T,
}

impl<T: Serialize> IntoResponse for Data<T> {
    fn into_response(self) -> Response {
        Json(Success {
            success: true,
            data: self.0,
        })
        .into_response()
    }
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        (
            StatusCode::CREATED,
            Json(Success {
                success: true,
                data: self.0,
            }),
        )
            .into_response()
    }
}
