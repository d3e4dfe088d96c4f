//! Reading a request: the query string, the JSON body (size-limited,
//! declared JSON, an object with known fields), and the headers the API
//! defines. Every failure is an [`ApiError`] naming the field at fault.

use std::borrow::Cow;

use bytes::Bytes;
use http::{header, HeaderMap};
use http_body_util::{BodyExt, Limited};
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::error::{short, ApiError, ErrorCode};
use crate::router::decode;

/// The raw query string; parameters are decoded as they are asked for.
pub struct Query<'a>(pub &'a str);

impl<'a> Query<'a> {
    /// The decoded `(name, value)` pairs.
    fn pairs(&self) -> impl Iterator<Item = Result<(Cow<'a, str>, Cow<'a, str>), ApiError>> {
        self.0.split('&').filter(|p| !p.is_empty()).map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            Ok((decode(k, "query")?, decode(v, "query")?))
        })
    }

    /// Refuses parameters the endpoint does not take (a typo like `limt`
    /// would otherwise silently give the default).
    pub fn only(&self, allowed: &[&str]) -> Result<(), ApiError> {
        for pair in self.pairs() {
            let (k, _) = pair?;
            if !allowed.contains(&k.as_ref()) {
                let name = short(&k);
                return Err(ApiError::bad_field(
                    ErrorCode::UnknownParameter,
                    name.clone(),
                    format!("unknown query parameter {name:?}"),
                ));
            }
        }
        Ok(())
    }

    /// The last value of text parameter `name`, if given.
    pub fn text(&self, name: &str) -> Result<Option<Cow<'a, str>>, ApiError> {
        let mut last = None;
        for pair in self.pairs() {
            let (k, v) = pair?;
            if k == name {
                last = Some(v);
            }
        }
        Ok(last)
    }

    /// An integer parameter within `range`, or `default` when absent.
    pub fn int(
        &self,
        name: &'static str,
        default: usize,
        range: std::ops::RangeInclusive<usize>,
    ) -> Result<usize, ApiError> {
        let mut last = None;
        for pair in self.pairs() {
            let (k, v) = pair?;
            if k == name {
                last = Some(v);
            }
        }
        let Some(raw) = last else {
            return Ok(default);
        };
        raw.parse::<usize>()
            .ok()
            .filter(|v| range.contains(v))
            .ok_or_else(|| {
                ApiError::bad_field(
                    ErrorCode::InvalidParameter,
                    name,
                    format!(
                        "{name} must be an integer from {} to {}",
                        range.start(),
                        range.end()
                    ),
                )
            })
    }
}

/// Refuses a body not declared `application/json` (415).
pub fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::unsupported_media_type());
    }
    Ok(())
}

/// Reads the whole body, refusing more than `limit` bytes (413) whether the
/// client declared its length or not.
pub async fn read_body<B>(headers: &HeaderMap, body: B, limit: usize) -> Result<Bytes, ApiError>
where
    B: hyper::body::Body<Data = Bytes>,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(ApiError::too_large(limit));
    }
    let collected = Limited::new(body, limit).collect().await.map_err(|e| {
        if e.is::<http_body_util::LengthLimitError>() {
            ApiError::too_large(limit)
        } else {
            ApiError::invalid_json("the request body could not be read")
        }
    })?;
    Ok(collected.to_bytes())
}

/// Parses a JSON object into `T` (a `deny_unknown_fields` struct whose
/// fields are all optional, so the caller names what is missing). Unknown
/// fields are 400 `unknown_field` naming the field; a repeated field is 400
/// naming it, since "last one wins" would let two readers of one body
/// disagree; anything that is not an object is 400 `invalid_json`.
pub fn json_object<T: DeserializeOwned>(body: &[u8], expected: &str) -> Result<T, ApiError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        // serde would also read a JSON array into a struct, by position.
        return Err(match serde_json::from_slice::<IgnoredAny>(body) {
            Ok(_) => ApiError::invalid_json("the body must be a JSON object"),
            Err(e) => ApiError::invalid_json(format!("the body is not valid JSON: {e}")),
        });
    }
    serde_json::from_slice(body).map_err(|e| {
        let text = e.to_string();
        let named = |prefix: &str| {
            let rest = text.strip_prefix(prefix)?;
            rest.split_once('`').map(|(name, _)| short(name))
        };
        if let Some(field) = named("unknown field `") {
            let message = format!("unknown field {field:?}; expected {expected}");
            ApiError::bad_field(ErrorCode::UnknownField, field, message)
        } else if let Some(field) = named("duplicate field `") {
            let message = format!("field {field:?} appears more than once");
            ApiError::bad_field(ErrorCode::InvalidJson, field, message)
        } else {
            ApiError::invalid_json(format!("the body is not valid JSON: {e}"))
        }
    })
}

/// A field that may be present with any JSON value, `null` included: absent
/// is `None`, `null` is `Some(Null)`, so "missing" and "wrong type" are told
/// apart. Use with `#[serde(default, deserialize_with = "present")]`.
pub fn present<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<serde_json::Value>, D::Error> {
    serde::Deserialize::deserialize(d).map(Some)
}

/// `Idempotency-Key`: 1 to 128 printable ASCII bytes.
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(raw) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let bytes = raw.as_bytes();
    let printable = bytes.iter().all(|b| (0x20..0x7f).contains(b));
    if bytes.is_empty() || bytes.len() > 128 || !printable {
        return Err(ApiError::bad_field(
            ErrorCode::InvalidIdempotencyKey,
            "Idempotency-Key",
            "Idempotency-Key must be 1 to 128 printable ASCII characters",
        ));
    }
    Ok(Some(String::from_utf8_lossy(bytes).into_owned()))
}
