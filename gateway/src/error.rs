//! The gateway's one error type and its one mapping to an HTTP response.
//!
//! Every 4xx and 5xx leaves the server through [`ApiError::into_response`]
//! with the body `{"error": {"code", "message", "field"}}`, so clients can
//! rely on one shape and handlers never build error responses themselves.
//! Each [`ErrorCode`] has exactly one status ([`ErrorCode::status`]).

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;
use standings_core::rank::RankError;
use standings_core::{InputCode, InvalidInput, StoreError};

/// Every error code the gateway answers, stable across releases; each is
/// listed and explained in `docs/openapi.yaml`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// 400: the body is not JSON, or not an object.
    InvalidJson,
    /// 400: a required field is absent.
    MissingField,
    /// 400: a field the endpoint does not take.
    UnknownField,
    /// 400: a board name outside the pattern.
    InvalidBoard,
    /// 400: a member id that is empty, too long or holds refused characters.
    InvalidMember,
    /// 400: a score that is not a finite number within +-2^53.
    InvalidScore,
    /// 400: an op that is not `incr`, `set` or `best`.
    InvalidOp,
    /// 400: a malformed `Idempotency-Key` header.
    InvalidIdempotencyKey,
    /// 400: a query parameter the endpoint does not take.
    UnknownParameter,
    /// 400: a query parameter out of its range.
    InvalidParameter,
    /// 400: a path segment that is not UTF-8.
    InvalidPath,
    /// 404: no board of that name.
    UnknownBoard,
    /// 404: the member has no score on the board.
    MemberNotFound,
    /// 404: no such endpoint or file.
    NotFound,
    /// 405: the path does not take the method.
    MethodNotAllowed,
    /// 413: the body is over the limit.
    BodyTooLarge,
    /// 415: the body is not declared JSON.
    UnsupportedMediaType,
    /// 422: the `Idempotency-Key` was used before with a different write.
    IdempotencyConflict,
    /// 429: the client is over its rate.
    RateLimited,
    /// 503: the store is unreachable.
    StoreUnavailable,
    /// 503: the store answered something unreadable.
    StoreError,
    /// 503: the write was sent to the store and no answer came in time; it
    /// may have been applied.
    OutcomeUnknown,
    /// 503: the request did not finish within the request timeout.
    Timeout,
    /// 503: the gateway cannot serve yet.
    NotReady,
    /// 503: shed before any work (fan-out or connection limit).
    Overloaded,
    /// 400: a `period` that is not a kind, a kind with `/previous`, an id
    /// or a blend of the board.
    InvalidPeriod,
    /// 404: a well-formed period id the board does not hold (not started
    /// yet, or past its retention).
    UnknownPeriod,
    /// 400: blend parts that are not valid for the board.
    InvalidBlend,
    /// 401: no API key where one is needed, or a key the gateway does not
    /// know.
    Unauthorized,
    /// 403: the key lacks the scope the request needs.
    Forbidden,
    /// 422: a reload found a config that does not load or validate.
    InvalidConfig,
    /// 409: a board of that name exists (or its data does).
    BoardExists,
    /// 409: the board is defined in the config file, not at run time.
    BoardInConfig,
    /// 400: an event whose id, type or parties are malformed.
    InvalidEvent,
    /// 503: the event spool is full (the store has been down a while).
    SpoolFull,
    /// 400: an `after` that is not a cursor of this board and period.
    InvalidCursor,
    /// 400: a `meta` that is not a JSON object of at most 512 bytes.
    InvalidMeta,
}

impl ErrorCode {
    /// Every code, for the spec check.
    pub const ALL: [ErrorCode; 37] = [
        ErrorCode::InvalidJson,
        ErrorCode::MissingField,
        ErrorCode::UnknownField,
        ErrorCode::InvalidBoard,
        ErrorCode::InvalidMember,
        ErrorCode::InvalidScore,
        ErrorCode::InvalidOp,
        ErrorCode::InvalidIdempotencyKey,
        ErrorCode::UnknownParameter,
        ErrorCode::InvalidParameter,
        ErrorCode::InvalidPath,
        ErrorCode::UnknownBoard,
        ErrorCode::MemberNotFound,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::BodyTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::IdempotencyConflict,
        ErrorCode::RateLimited,
        ErrorCode::StoreUnavailable,
        ErrorCode::StoreError,
        ErrorCode::OutcomeUnknown,
        ErrorCode::Timeout,
        ErrorCode::NotReady,
        ErrorCode::Overloaded,
        ErrorCode::InvalidPeriod,
        ErrorCode::UnknownPeriod,
        ErrorCode::InvalidBlend,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::InvalidConfig,
        ErrorCode::BoardExists,
        ErrorCode::BoardInConfig,
        ErrorCode::InvalidEvent,
        ErrorCode::SpoolFull,
        ErrorCode::InvalidCursor,
        ErrorCode::InvalidMeta,
    ];

    /// The code as the error body spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidJson => "invalid_json",
            ErrorCode::MissingField => "missing_field",
            ErrorCode::UnknownField => "unknown_field",
            ErrorCode::InvalidBoard => "invalid_board",
            ErrorCode::InvalidMember => "invalid_member",
            ErrorCode::InvalidScore => "invalid_score",
            ErrorCode::InvalidOp => "invalid_op",
            ErrorCode::InvalidIdempotencyKey => "invalid_idempotency_key",
            ErrorCode::UnknownParameter => "unknown_parameter",
            ErrorCode::InvalidParameter => "invalid_parameter",
            ErrorCode::InvalidPath => "invalid_path",
            ErrorCode::UnknownBoard => "unknown_board",
            ErrorCode::MemberNotFound => "member_not_found",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::BodyTooLarge => "body_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::IdempotencyConflict => "idempotency_conflict",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::StoreUnavailable => "store_unavailable",
            ErrorCode::StoreError => "store_error",
            ErrorCode::OutcomeUnknown => "outcome_unknown",
            ErrorCode::Timeout => "timeout",
            ErrorCode::NotReady => "not_ready",
            ErrorCode::Overloaded => "overloaded",
            ErrorCode::InvalidPeriod => "invalid_period",
            ErrorCode::UnknownPeriod => "unknown_period",
            ErrorCode::InvalidBlend => "invalid_blend",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::InvalidConfig => "invalid_config",
            ErrorCode::BoardExists => "board_exists",
            ErrorCode::BoardInConfig => "board_in_config",
            ErrorCode::InvalidEvent => "invalid_event",
            ErrorCode::SpoolFull => "spool_full",
            ErrorCode::InvalidCursor => "invalid_cursor",
            ErrorCode::InvalidMeta => "invalid_meta",
        }
    }

    /// The one status each code is answered with.
    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidJson
            | Self::MissingField
            | Self::UnknownField
            | Self::InvalidBoard
            | Self::InvalidMember
            | Self::InvalidScore
            | Self::InvalidOp
            | Self::InvalidIdempotencyKey
            | Self::UnknownParameter
            | Self::InvalidParameter
            | Self::InvalidPath
            | Self::InvalidPeriod
            | Self::InvalidBlend
            | Self::InvalidEvent
            | Self::InvalidCursor
            | Self::InvalidMeta => StatusCode::BAD_REQUEST,
            Self::UnknownBoard | Self::MemberNotFound | Self::NotFound | Self::UnknownPeriod => {
                StatusCode::NOT_FOUND
            }
            Self::BoardExists | Self::BoardInConfig => StatusCode::CONFLICT,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::BodyTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::IdempotencyConflict | Self::InvalidConfig => StatusCode::UNPROCESSABLE_ENTITY,
            Self::RateLimited => StatusCode::TOO_MANY_REQUESTS,
            Self::StoreUnavailable
            | Self::StoreError
            | Self::OutcomeUnknown
            | Self::Timeout
            | Self::NotReady
            | Self::Overloaded
            | Self::SpoolFull => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl From<InputCode> for ErrorCode {
    fn from(code: InputCode) -> Self {
        match code {
            InputCode::InvalidBoard => ErrorCode::InvalidBoard,
            InputCode::InvalidMember => ErrorCode::InvalidMember,
            InputCode::InvalidScore => ErrorCode::InvalidScore,
            InputCode::InvalidOp => ErrorCode::InvalidOp,
            InputCode::InvalidEvent => ErrorCode::InvalidEvent,
            InputCode::InvalidMeta => ErrorCode::InvalidMeta,
        }
    }
}

impl PartialEq<&str> for ErrorCode {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Most characters of client input an error message repeats: enough to
/// recognise a typo, never a 10 KB echo.
pub const ECHO_CHARS: usize = 64;

/// `input` cut to [`ECHO_CHARS`] characters, marked with `…` when cut.
pub fn short(input: &str) -> String {
    match input.char_indices().nth(ECHO_CHARS) {
        Some((at, _)) => format!("{}…", &input[..at]),
        None => input.to_string(),
    }
}

/// A request that could not be served, and why.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{code:?}: {message}")]
pub struct ApiError {
    /// Machine-readable code; it decides the status.
    pub code: ErrorCode,
    /// A sentence a person can act on.
    pub message: Cow<'static, str>,
    /// The request field at fault, if one is.
    pub field: Option<Cow<'static, str>>,
    /// Seconds to wait before retrying (429, 503).
    pub retry_after: Option<u32>,
    /// Methods the path accepts (405).
    pub allow: Option<&'static str>,
    /// Further headers (the IETF `RateLimit-Policy` and `RateLimit` of a
    /// 429); empty, and unallocated, otherwise.
    pub headers: Vec<(http::HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            message: message.into(),
            field: None,
            retry_after: None,
            allow: None,
            headers: Vec::new(),
        }
    }

    /// The HTTP status of its code.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// The error with the request field at fault.
    pub fn with_field(self, field: impl Into<Cow<'static, str>>) -> Self {
        Self {
            field: Some(field.into()),
            ..self
        }
    }

    /// 400 for a bad `field`.
    pub fn bad_field(
        code: ErrorCode,
        field: impl Into<Cow<'static, str>>,
        message: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self::new(code, message).with_field(field)
    }

    /// 400 for a body that is not JSON at all.
    pub fn invalid_json(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorCode::InvalidJson, message)
    }

    /// 404 for an unknown board.
    pub fn unknown_board(name: &str) -> Self {
        Self::new(
            ErrorCode::UnknownBoard,
            format!("no board named {:?}", short(name)),
        )
        .with_field("board")
    }

    /// 404 for a member without a score.
    pub fn unknown_member() -> Self {
        Self::new(
            ErrorCode::MemberNotFound,
            "the member has no score on this board",
        )
        .with_field("member")
    }

    /// 404 for a path that is no endpoint.
    pub fn not_found() -> Self {
        Self::new(
            ErrorCode::NotFound,
            "no such endpoint; see docs/openapi.yaml",
        )
    }

    /// 405 with the methods the path does accept.
    pub fn method_not_allowed(allow: &'static str) -> Self {
        Self {
            allow: Some(allow),
            ..Self::new(
                ErrorCode::MethodNotAllowed,
                format!("this endpoint accepts {allow}"),
            )
        }
    }

    /// 413 for a body over the limit.
    pub fn too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::BodyTooLarge,
            format!("request body is over the limit of {limit} bytes"),
        )
    }

    /// 415 for a body that is not declared JSON.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            ErrorCode::UnsupportedMediaType,
            "the body must be application/json",
        )
        .with_field("Content-Type")
    }

    /// 429: the client is over its write rate; retry after `wait`.
    pub fn rate_limited(wait: std::time::Duration) -> Self {
        Self::over_limit("writes", wait, Vec::new())
    }

    /// 429: the client is over its rate of `what` (`reads`, `writes`);
    /// retry after `wait`; `headers` describe the limit.
    pub fn over_limit(
        what: &str,
        wait: std::time::Duration,
        headers: Vec<(http::HeaderName, HeaderValue)>,
    ) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0) as u32;
        Self {
            retry_after: Some(secs),
            headers,
            ..Self::new(
                ErrorCode::RateLimited,
                format!("too many {what} from this client; retry in {secs} s"),
            )
        }
    }

    /// 503: the store is unreachable or the request ran out of time.
    pub fn unavailable(code: ErrorCode, message: impl Into<Cow<'static, str>>) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(code, message)
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
                code: self.code.as_str(),
                message: &self.message,
                field: self.field.as_deref(),
            },
        })
        .unwrap_or_default();
        let mut response = Response::new(Full::new(Bytes::from(body)));
        *response.status_mut() = self.code.status();
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
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

impl From<InvalidInput> for ApiError {
    fn from(e: InvalidInput) -> Self {
        Self::bad_field(e.code.into(), e.field, e.message)
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::OutOfRange => Self::bad_field(
                ErrorCode::InvalidScore,
                "score",
                "the resulting score would leave +-2^53 (9007199254740992); nothing was applied",
            ),
            StoreError::Unavailable(why) => {
                tracing::warn!(error = %why, "store unavailable");
                Self::unavailable(
                    ErrorCode::StoreUnavailable,
                    "the score store is unavailable; nothing was applied, retry later",
                )
            }
            StoreError::OutcomeUnknown(why) => {
                tracing::warn!(error = %why, "store write outcome unknown");
                Self::unavailable(
                    ErrorCode::OutcomeUnknown,
                    "the write was sent to the store but no answer came in time; it may have been applied: retry with the same Idempotency-Key",
                )
            }
            StoreError::IdempotencyConflict => Self::bad_field(
                ErrorCode::IdempotencyConflict,
                "Idempotency-Key",
                "this Idempotency-Key was used before with a different write; nothing was applied",
            ),
            StoreError::Corrupt(why) => {
                tracing::error!(error = %why, "store returned unreadable data");
                Self::unavailable(
                    ErrorCode::StoreError,
                    "the score store returned unreadable data",
                )
            }
        }
    }
}

impl From<RankError> for ApiError {
    fn from(e: RankError) -> Self {
        match e {
            RankError::Input(e) => e.into(),
            RankError::Store(e) => e.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_short() {
        assert_eq!(short("abc"), "abc");
        let long = "é".repeat(10_000);
        let cut = short(&long);
        assert_eq!(cut.chars().count(), ECHO_CHARS + 1);
        assert!(cut.ends_with('…'));
        let e = ApiError::unknown_board(&"b".repeat(10_000));
        assert!(e.message.len() < 100, "{}", e.message);
    }

    #[test]
    fn codes_are_distinct_and_client_errors_are_4xx() {
        let names: std::collections::HashSet<&str> =
            ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(names.len(), ErrorCode::ALL.len());
        for code in ErrorCode::ALL {
            let status = code.status().as_u16();
            assert!((400..600).contains(&status), "{code:?}");
            assert_eq!(
                ApiError::new(code, "x").into_response().status(),
                code.status()
            );
        }
    }
}
