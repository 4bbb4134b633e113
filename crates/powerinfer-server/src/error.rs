//! Errors in OpenAI's JSON shape, with the status code that fits.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// A request that cannot be served: the status, OpenAI's `type` and `code`, a message,
/// and the parameter at fault when there is one.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// OpenAI's error `type` (`invalid_request_error`, `server_error`, …).
    pub kind: &'static str,
    /// A short machine-readable code.
    pub code: &'static str,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault.
    pub param: Option<String>,
    /// Seconds a client should wait before retrying (429/503).
    pub retry_after: Option<u64>,
}

impl ApiError {
    fn new(status: StatusCode, kind: &'static str, code: &'static str, message: String) -> Self {
        ApiError {
            status,
            kind,
            code,
            message,
            param: None,
            retry_after: None,
        }
    }

    /// 400: a malformed body or a field out of range.
    pub fn bad_request(message: impl Into<String>, param: Option<&str>) -> Self {
        let mut e = ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_error",
            "invalid_request",
            message.into(),
        );
        e.param = param.map(str::to_string);
        e
    }

    /// 400: a prompt or answer that does not fit the context.
    pub fn context_length(message: String) -> Self {
        let mut e = ApiError::bad_request(message, Some("messages"));
        e.code = "context_length_exceeded";
        e
    }

    /// 401: a missing or wrong API key.
    pub fn unauthorized() -> Self {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "invalid_request_error",
            "invalid_api_key",
            "missing or wrong API key (Authorization: Bearer <key>)".into(),
        )
    }

    /// 404: an unknown route or model.
    pub fn not_found(code: &'static str, message: String) -> Self {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "invalid_request_error",
            code,
            message,
        )
    }

    /// 413: a body past the limit.
    pub fn too_large(limit: usize) -> Self {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request_error",
            "request_too_large",
            format!("the request body is larger than {limit} bytes"),
        )
    }

    /// 429: the queue is full.
    pub fn busy(queue: usize) -> Self {
        let mut e = ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "server_busy",
            "queue_full",
            format!("{queue} requests are already waiting; retry later"),
        );
        e.retry_after = Some(1);
        e
    }

    /// 503: no generation slot freed before the deadline.
    pub fn timed_out(secs: u64) -> Self {
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "server_busy",
            "queue_timeout",
            format!("no generation slot freed within {secs} s; retry later"),
        );
        e.retry_after = Some(1);
        e
    }

    /// 500: the model failed (logged; the server keeps serving).
    pub fn internal(message: String) -> Self {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "internal_error",
            message,
        )
    }

    /// The JSON body: `{"error": {"message", "type", "param", "code"}}`.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind,
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        eprintln!(
            "[powerinfer-server] {} {}: {}",
            self.status.as_u16(),
            self.code,
            self.message
        );
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(secs) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        r
    }
}
