//! `ApiError`: the only error response. Every failure, ours or the framework's, leaves as
//! DreamFactory's `{"error": {"code", "context", "message", "status_code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::session::{AccessRefusal, Reason, SessionCap, SessionError};

/// Seconds a client should wait before retrying after a 503.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
    pub context: Value,
    /// Seconds for `Retry-After` (429 and 503).
    pub retry_after: Option<i64>,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>, context: Value) -> Self {
        Self {
            status,
            message: message.into(),
            context,
            retry_after: None,
        }
    }

    fn with_reason(status: StatusCode, message: impl Into<String>, reason: Reason) -> Self {
        Self::new(status, message, json!({ "reason": reason.as_str() }))
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message, Value::Null)
    }

    pub fn invalid_token(detail: &str) -> Self {
        Self::with_reason(
            StatusCode::UNAUTHORIZED,
            format!("Invalid token: {detail}"),
            Reason::InvalidToken,
        )
    }

    /// A fixed text for a status the framework produced (unknown route, wrong method, …).
    pub fn from_status(status: StatusCode) -> Self {
        let message = match status {
            StatusCode::NOT_FOUND => "Resource not found.",
            StatusCode::METHOD_NOT_ALLOWED => "This method is not supported on this resource.",
            StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large.",
            StatusCode::REQUEST_TIMEOUT => "The request took too long.",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "Unsupported content type.",
            s if s.is_server_error() => "The service could not complete the request.",
            _ => status.canonical_reason().unwrap_or("Request failed."),
        };
        Self::new(status, message, Value::Null)
    }
}

/// DreamFactory's error envelope, as every failure is sent.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// The HTTP status, again.
    pub code: u16,
    /// `{"reason": "…"}` for token and session refusals (see the README's reason table), a
    /// field → messages map for validation errors, otherwise null.
    #[schema(value_type = Option<Object>)]
    pub context: Value,
    pub message: String,
    /// The HTTP status, again (DreamFactory sends both).
    pub status_code: u16,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.status.as_u16();
        let body = ErrorBody {
            error: ErrorDetail {
                code,
                context: self.context,
                message: self.message,
                status_code: code,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let retry_after = match self.retry_after {
            Some(seconds) => HeaderValue::from(seconds.max(1)),
            None if self.status == StatusCode::SERVICE_UNAVAILABLE => {
                HeaderValue::from_static(RETRY_AFTER_SECONDS)
            }
            None => return response,
        };
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, retry_after);
        response
    }
}

impl From<SessionError> for ApiError {
    fn from(err: SessionError) -> Self {
        use SessionError::*;
        let unauthorized = StatusCode::UNAUTHORIZED;
        match err {
            MissingField(field) => Self::new(
                StatusCode::BAD_REQUEST,
                format!("Login request is missing required {field}."),
                json!({ "field": field }),
            ),
            InvalidCredentials => Self::with_reason(
                unauthorized,
                "Invalid credentials supplied.",
                Reason::InvalidCredentials,
            ),
            NoSession => Self::with_reason(
                unauthorized,
                "There is no valid session for the current request.",
                Reason::MissingToken,
            ),
            InvalidToken(defect) => Self::invalid_token(defect.as_str()),
            Expired => Self::with_reason(
                unauthorized,
                "Token has expired: Session expired. Please refresh your token (if still within refresh window) or re-login.",
                Reason::Expired,
            ),
            Terminated(reason) => Self::with_reason(
                StatusCode::FORBIDDEN,
                "The token has been blacklisted: Session terminated. Please re-login.",
                reason,
            ),
            RefreshRefused { reason, detail } => Self::with_reason(
                unauthorized,
                format!("Token refresh failed. {detail}"),
                reason,
            ),
            NotAdmin => Self::with_reason(
                unauthorized,
                "You are not authorized to perform this action.",
                Reason::NotAdmin,
            ),
            UserInactive => Self::with_reason(
                StatusCode::FORBIDDEN,
                "User is not active.",
                Reason::UserInactive,
            ),
            RegistrationDisabled => Self::new(
                StatusCode::FORBIDDEN,
                "Open Registration is not enabled.",
                json!({ "reason": "registration_disabled" }),
            ),
            Throttled { retry_after } => Self {
                retry_after: Some(retry_after),
                ..Self::with_reason(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "Too many failed login attempts. Try again in {retry_after} seconds."
                    ),
                    Reason::Throttled,
                )
            },
            SessionLimit(cap, max) => {
                let message = match cap {
                    SessionCap::PerUser => format!(
                        "Session limit reached: this user already has {max} active sessions. \
                         Log out on another device first."
                    ),
                    SessionCap::PerIp => format!(
                        "Session limit reached: {max} sessions are already active from this \
                         address. Log out on another device first."
                    ),
                    SessionCap::Total => format!(
                        "Session limit reached: the service already has {max} active \
                         sessions. Try again later."
                    ),
                };
                Self::new(
                    StatusCode::CONFLICT,
                    message,
                    json!({ "reason": cap.reason().as_str(), "limit": cap.var(), "max": max }),
                )
            }
            AppInactive => Self::with_reason(
                StatusCode::FORBIDDEN,
                "App is not active.",
                Reason::AppDisabled,
            ),
            RoleInactive => Self::with_reason(
                StatusCode::FORBIDDEN,
                "Role is not active.",
                Reason::RoleDisabled,
            ),
            AppNotFound(id) | RoleNotFound(id) => Self::new(
                StatusCode::NOT_FOUND,
                format!("Record with identifier '{id}' not found."),
                Value::Null,
            ),
            IntrospectionUnauthorized => Self::new(
                unauthorized,
                "Token introspection needs an active app's API key or an administrator's \
                 session token.",
                json!({ "reason": "introspection_unauthorized" }),
            ),
            SessionNotFound => Self::new(StatusCode::NOT_FOUND, "Session not found.", Value::Null),
            UserNotFound => Self::new(StatusCode::NOT_FOUND, "User not found.", Value::Null),
            WrongPassword => Self::new(
                StatusCode::BAD_REQUEST,
                "Validation failed",
                json!({ "old_password": ["The old password is not correct."] }),
            ),
            Validation(fields) => {
                Self::new(StatusCode::BAD_REQUEST, "Validation failed", json!(fields))
            }
            AccessRefused(refusal) => {
                // df-core's AccessCheck, word for word.
                let (status, message) = match refusal {
                    AccessRefusal::NoCredentials => (
                        StatusCode::BAD_REQUEST,
                        "No session token (JWT) or API Key detected in request. Please send in \
                         X-DreamFactory-Session-Token and/or X-DreamFactory-API-Key request \
                         header. You can also use URL query parameters session_token and/or \
                         api_key.",
                    ),
                    AccessRefusal::NoApiKey | AccessRefusal::UnknownApiKey => (
                        StatusCode::BAD_REQUEST,
                        "No API Key provided. Please provide a valid API Key using \
                         X-DreamFactory-API-Key request header or 'api_key' url query parameter.",
                    ),
                    AccessRefusal::NoSessionToken => (
                        StatusCode::BAD_REQUEST,
                        "No session token (JWT) provided. Please provide a valid JWT using \
                         X-DreamFactory-Session-Token request header or 'session_token' url \
                         query parameter.",
                    ),
                    AccessRefusal::RoleNotFound => (
                        StatusCode::FORBIDDEN,
                        "Role not found. A role may not be assigned to you or your application.",
                    ),
                };
                Self::new(status, message, json!({ "reason": refusal.as_str() }))
            }
            Unavailable(_) | Contended => {
                tracing::error!(cause = %cause_chain(&err), "storage unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The service is temporarily unavailable. Please retry shortly.",
                    json!({ "reason": "unavailable" }),
                )
            }
            Store(_) | Signing(_) | Password(_) | Randomness(_) => {
                tracing::error!(cause = %cause_chain(&err), "internal error");
                Self::from_status(StatusCode::INTERNAL_SERVER_ERROR)
            }
        }
    }
}

/// An error and every cause under it, outermost first: "storage failed: database error:
/// error returned from database: …". What the logs of a 5xx say.
pub fn cause_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
