//! The gateway's one error type and its one mapping to an HTTP response.
//!
//! Every 4xx and 5xx leaves the server through [`ApiError::into_response`]
//! with the body `{"error": {"code", "message", "field"}}`, so clients can
//! rely on one shape and handlers never build error responses themselves.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use standings_core::{InvalidInput, StoreError};

/// A request that could not be served, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{status} {code}: {message}")]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// Machine-readable code, stable across releases.
    pub code: &'static str,
    /// A sentence a person can act on.
    pub message: Cow<'static, str>,
    /// The request field at fault, if one is.
    pub field: Option<Cow<'static, str>>,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u32>,
    /// Methods the path accepts (405).
    pub allow: Option<&'static str>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            allow: None,
        }
    }

    /// 400 for a bad `field`.
    pub fn bad_field(
        code: &'static str,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            field: Some(field.into()),
            ..Self::new(StatusCode::BAD_REQUEST, code, message)
        }
    }

    /// 400 for a body that is not JSON at all.
    pub fn invalid_json(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", message)
    }

    /// 404 for an unknown board.
    pub fn unknown_board(name: &str) -> Self {
        Self {
            field: Some("board".into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "unknown_board",
                format!("no board named {name:?}"),
            )
        }
    }

    /// 404 for a member without a score.
    pub fn unknown_member() -> Self {
        Self {
            field: Some("member".into()),
            ..Self::new(
                StatusCode::NOT_FOUND,
                "member_not_found",
                "the member has no score on this board",
            )
        }
    }

    /// 404 for a path that is no endpoint.
    pub fn not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint; see docs/openapi.yaml",
        )
    }

    /// 405 with the methods the path does accept.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                format!("this endpoint accepts {allow}"),
            )
        }
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("request body is over the limit of {limit} bytes"),
        )
    }

    /// 415 for a body that is not declared JSON.
    pub fn unsupported_media_type() -> Self {
        Self {
            field: Some("Content-Type".into()),
            ..Self::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be application/json",
            )
        }
    }

    /// 429: the client is over its write rate; retry after `wait`.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
        Self {
            retry_after: Some(secs),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limited",
                format!("too many writes from this client; retry in {secs} s"),
            )
        }
    }

    /// 503: the store is unreachable or the request ran out of time.
    pub fn unavailable(code: &'static str, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }

    /// The response: status, JSON body, and `Retry-After`/`Allow` headers.
    pub fn into_response(self) -> Response<Full<Bytes>> {
        #[derive(Serialize)]
        struct Body<'a> {
            error: Inner<'a>,
        }
        #[derive(Serialize)]
        struct Inner<'a> {
            code: &'a str,
            message: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            field: Option<&'a str>,
        }
        let body = serde_json::to_vec(&Body {
            error: Inner {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
            },
        })
        .unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.status;
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(allow) = self.allow {
            headers.insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        response
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        Self::bad_field(e.code, e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::OutOfRange => Self::bad_field(
                "invalid_score",
                "score",
                "the resulting score would leave +-2^53 (9007199254740992); nothing was applied",
            ),
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "store unavailable");
                Self::unavailable(
                    "store_unavailable",
                    "the score store is unavailable; nothing was applied, retry later",
                )
            }
            StoreError::Corrupt(why) => {
                tracing::error!(error = %why, "store returned unreadable data");
                Self::unavailable("store_error", "the score store returned unreadable data")
            }
        }
    }
}
