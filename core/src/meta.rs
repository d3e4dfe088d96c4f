//! Member metadata: a small JSON object kept per member and board beside
//! the member's scores, and served verbatim in every entry.
//!
//! A [`Meta`] is validated once, at the edge ([`Meta::parse`],
//! [`Meta::from_input`]), and from then on is canonical JSON text: compact,
//! object keys sorted (serde_json's map order), at most [`MAX_META_BYTES`].
//! It is held as an `Arc<RawValue>`, so a shard list, a snapshot, the
//! merged TOP-K and every pre-serialised body share one allocation and
//! embed the text as it is, with no re-serialisation per read.
//!
//! Canonical text makes the idempotency digest independent of how a
//! client spaced or ordered its keys ([`crate::store::request_digest_with_meta`]).

use std::fmt;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::types::{InputCode, InvalidInput};

/// Longest meta, in bytes of its canonical (compact, keys sorted) JSON.
pub const MAX_META_BYTES: usize = 512;

/// A member's metadata: a JSON object of at most [`MAX_META_BYTES`]
/// bytes, as canonical text. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Meta(Arc<RawValue>);

impl Meta {
    /// Validates `text` as the `meta` field: a JSON object without repeated
    /// keys (at any depth), at most [`MAX_META_BYTES`] once canonical.
    pub fn parse(text: &str) -> Result<Self, InvalidInput> {
        let input: MetaInput = serde_json::from_str(text)
            .map_err(|e| invalid(format!("meta must be a JSON object: {e}")))?;
        Self::from_input(input)
    }

    /// Validates a `meta` field read from a request body with
    /// [`MetaInput`] (which keeps repeated keys apart from a last-one-wins
    /// map): null, arrays, strings, numbers and booleans are refused, as
    /// is a repeated key or more than [`MAX_META_BYTES`] bytes.
    pub fn from_input(input: MetaInput) -> Result<Self, InvalidInput> {
        if let Some(key) = input.duplicate {
            return Err(invalid(format!("meta repeats the key {key:?}")));
        }
        Self::from_value(&input.value)
    }

    /// Validates an already parsed value (one whose repeated keys, if any,
    /// were already merged by serde_json): a JSON object of at most
    /// [`MAX_META_BYTES`] bytes once canonical.
    pub fn from_value(value: &Value) -> Result<Self, InvalidInput> {
        if !value.is_object() {
            return Err(invalid(
                "meta must be a JSON object (omit it to keep the current one)",
            ));
        }
        let text = serde_json::to_string(value).map_err(|e| invalid(e.to_string()))?;
        if text.len() > MAX_META_BYTES {
            return Err(invalid(format!(
                "meta must be at most {MAX_META_BYTES} bytes as compact JSON (it is {})",
                text.len()
            )));
        }
        let raw = RawValue::from_string(text).map_err(|e| invalid(e.to_string()))?;
        Ok(Self(Arc::from(raw)))
    }

    /// Text a store or a snapshot kept, written by [`Meta::as_str`]:
    /// checked to be a JSON object within the size limit (so a corrupt
    /// record can never put broken JSON into an answer), not
    /// re-canonicalised.
    pub fn from_stored(text: &str) -> Result<Self, InvalidInput> {
        let object = text.starts_with('{') && text.ends_with('}');
        if !object || text.len() > MAX_META_BYTES {
            return Err(invalid("stored meta is not a JSON object within 512 bytes"));
        }
        let raw = RawValue::from_string(text.to_owned())
            .map_err(|e| invalid(format!("stored meta is not JSON: {e}")))?;
        Ok(Self(Arc::from(raw)))
    }

    /// The canonical JSON text.
    pub fn as_str(&self) -> &str {
        self.0.get()
    }

    /// The text as a JSON value to serialise verbatim.
    pub fn raw(&self) -> &RawValue {
        &self.0
    }
}

impl PartialEq for Meta {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl fmt::Debug for Meta {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Meta {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

fn invalid(message: impl Into<String>) -> InvalidInput {
    InvalidInput::new(InputCode::InvalidMeta, "meta", message)
}

/// A `meta` field as a request body holds it: any JSON value (`null`
/// included, so that it is refused rather than read as absent), and the
/// first key found repeated in any of its objects. Deserialise a body
/// field into it with `#[serde(default, deserialize_with = "...")]` and
/// hand it to [`Meta::from_input`].
#[derive(Debug, Clone, PartialEq)]
pub struct MetaInput {
    /// The value, repeated keys merged (the last wins).
    pub value: Value,
    /// The first repeated key, if any.
    pub duplicate: Option<String>,
}

impl<'de> Deserialize<'de> for MetaInput {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(Strict)
    }
}

/// Builds a [`Value`] noting the first repeated object key.
struct Strict;

impl<'de> Visitor<'de> for Strict {
    type Value = MetaInput;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<MetaInput, E> {
        Ok(plain(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<MetaInput, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<MetaInput, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<MetaInput, E> {
        Ok(plain(Value::from(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<MetaInput, E> {
        Ok(plain(Value::String(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<MetaInput, E> {
        Ok(plain(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<MetaInput, E> {
        Ok(plain(Value::Null))
    }

    fn visit_none<E>(self) -> Result<MetaInput, E> {
        Ok(plain(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<MetaInput, D::Error> {
        d.deserialize_any(Strict)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<MetaInput, A::Error> {
        let mut items = Vec::new();
        let mut duplicate = None;
        while let Some(item) = seq.next_element::<MetaInput>()? {
            duplicate = duplicate.or(item.duplicate);
            items.push(item.value);
        }
        Ok(MetaInput {
            value: Value::Array(items),
            duplicate,
        })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<MetaInput, A::Error> {
        let mut object = Map::new();
        let mut duplicate = None;
        while let Some(key) = map.next_key::<String>()? {
            let item: MetaInput = map.next_value()?;
            duplicate = duplicate.or(item.duplicate);
            if object.insert(key.clone(), item.value).is_some() && duplicate.is_none() {
                duplicate = Some(key);
            }
        }
        Ok(MetaInput {
            value: Value::Object(object),
            duplicate,
        })
    }
}

fn plain(value: Value) -> MetaInput {
    MetaInput {
        value,
        duplicate: None,
    }
}

/// Deserialises a body field that may carry any JSON value as
/// `Some(MetaInput)`, `null` included: use with
/// `#[serde(default, deserialize_with = "standings_core::meta::field")]`
/// so that an absent field is `None` (keep the member's meta) and `null`
/// reaches [`Meta::from_input`] (and is refused).
pub fn field<'de, D: Deserializer<'de>>(d: D) -> Result<Option<MetaInput>, D::Error> {
    MetaInput::deserialize(d).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_objects_only() {
        let m = Meta::parse(r#"{ "b": 1, "a": {"y": [1, 2], "x": "é"} }"#).unwrap();
        assert_eq!(m.as_str(), r#"{"a":{"x":"é","y":[1,2]},"b":1}"#);
        assert_eq!(Meta::parse("{}").unwrap().as_str(), "{}");
        for bad in ["[1]", "\"s\"", "1", "null", "true", "{", ""] {
            let e = Meta::parse(bad).unwrap_err();
            assert_eq!((e.code, e.field), (InputCode::InvalidMeta, "meta"), "{bad}");
        }
    }

    #[test]
    fn size_limit_is_on_the_canonical_text() {
        // {"k":"..."} is 8 bytes around the string.
        let fits = format!(r#"{{"k":"{}"}}"#, "x".repeat(MAX_META_BYTES - 8));
        assert_eq!(Meta::parse(&fits).unwrap().as_str().len(), MAX_META_BYTES);
        let over = format!(r#"{{"k":"{}"}}"#, "x".repeat(MAX_META_BYTES - 7));
        assert_eq!(over.len(), 513);
        assert_eq!(Meta::parse(&over).unwrap_err().field, "meta");
        // Whitespace does not count.
        let spaced = format!(r#"{{   "k" :  "{}"   }}"#, "x".repeat(MAX_META_BYTES - 8));
        assert!(Meta::parse(&spaced).is_ok());
    }

    #[test]
    fn repeated_keys_are_refused_at_any_depth() {
        for bad in [
            r#"{"a":1,"a":2}"#,
            r#"{"o":{"x":1,"x":1}}"#,
            r#"{"l":[{"x":1,"x":2}]}"#,
        ] {
            let e = Meta::parse(bad).unwrap_err();
            assert!(e.message.contains("repeats the key"), "{bad}: {e}");
        }
    }

    #[test]
    fn stored_text_is_checked() {
        let m = Meta::parse(r#"{"a":1}"#).unwrap();
        assert_eq!(Meta::from_stored(m.as_str()).unwrap(), m);
        for bad in ["[1]", "{broken}", "", "1"] {
            assert!(Meta::from_stored(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn serialises_verbatim() {
        let m = Meta::parse(r#"{"n":"名","v":1.5}"#).unwrap();
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"n":"名","v":1.5}"#);
    }
}
