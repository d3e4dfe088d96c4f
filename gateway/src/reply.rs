//! Building responses: JSON bodies with their content type. Errors are
//! built in one place only, [`crate::error::ApiError::into_response`].

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

use crate::error::ApiError;

/// What a handler answers.
pub type Reply = Result<Response<Full<Bytes>>, ApiError>;

/// A JSON response with `body`.
pub fn json(status: StatusCode, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A 200 JSON response serialising `value`.
pub fn json_of<T: Serialize>(value: &T) -> Response<Full<Bytes>> {
    json(
        StatusCode::OK,
        Bytes::from(serde_json::to_vec(value).unwrap_or_default()),
    )
}
