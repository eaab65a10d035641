//! The one table from error codes to HTTP statuses. Internal causes are
//! logged with their chain and answered opaquely.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;

/// Every error code an HTTP client of Kefu can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    BadRequest,
    PayloadTooLarge,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    Gone,
    /// A file of a type the operation does not take.
    UnsupportedMediaType,
    /// Too many attempts (e.g. a locked sign-in).
    TooManyRequests,
    Unavailable,
    Internal,
}

impl Code {
    pub fn status(self) -> StatusCode {
        match self {
            Code::BadRequest => StatusCode::BAD_REQUEST,
            Code::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Code::Unauthorized => StatusCode::UNAUTHORIZED,
            Code::Forbidden => StatusCode::FORBIDDEN,
            Code::NotFound => StatusCode::NOT_FOUND,
            Code::Conflict => StatusCode::CONFLICT,
            Code::Gone => StatusCode::GONE,
            Code::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Code::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Code::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// An error on its way to an HTTP client.
#[derive(Debug)]
pub struct ApiError {
    pub code: Code,
    /// Safe to show to the caller.
    pub message: String,
}

#[derive(Serialize)]
struct Body<'a> {
    code: Code,
    message: &'a str,
}

impl ApiError {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// Logs the cause and answers a generic 500.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(Code::Internal, "internal error")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.code.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status_code()).json(Body {
            code: self.code,
            message: &self.message,
        })
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        use crate::store::StoreError;
        match e {
            StoreError::Duplicate => ApiError::new(Code::Conflict, "already exists"),
            StoreError::NotFound => ApiError::new(Code::NotFound, "not found"),
            other => ApiError::internal(other),
        }
    }
}

/// A client id (a retried send carries the same one, so it is stored
/// once): 1 to 64 letters, digits, `-` or `_`. The console's and the web
/// widget's.
pub(crate) fn checked_client_id(client_id: &str) -> Result<&str, ApiError> {
    let client_id = client_id.trim();
    if client_id.is_empty()
        || client_id.chars().count() > 64
        || !client_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(ApiError::new(
            Code::BadRequest,
            "client_id must be 1 to 64 letters, digits, - or _",
        ));
    }
    Ok(client_id)
}
