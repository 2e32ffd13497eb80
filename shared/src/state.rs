//! Typed JSON state on the conditional store: checkpoints, run state, leases, anything one
//! S3 object holds and several invocations may race to change.
//!
//! [`JsonState`] is a view of one bucket of a [`ConditionalStore`]: `load` gives the value and
//! the ETag it was read at ([`Versioned`]), `create` writes only if the key is free, `replace`
//! only if the object is still at that ETag. Both keep the read-back rule of
//! [`ConditionalStore`] (a write whose answer was lost after S3 acted is recognised as this
//! writer's own), which needs every write's bytes to be unique: this layer makes them so by
//! stamping each write with a random [`WRITE_TOKEN`] member, removed again on load. Callers
//! need not (and must not) carry a field of that name.
//!
//! The JSON stays the value's own (pretty-printed, its fields in their order, the token last),
//! so the objects remain readable by people and by other tools.

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::{SuiteError, SuiteResult};
use crate::store::{AlreadyExists, ConditionalStore, Conflict, Written};

/// The member each write carries so that no two writes have the same bytes.
pub const WRITE_TOKEN: &str = "write_token";

const JSON: &str = "application/json";

/// A value and the ETag of the object it was read from (the `If-Match` of its replace).
#[derive(Debug, Clone, PartialEq)]
pub struct Versioned<T> {
    pub value: T,
    pub etag: String,
}

#[derive(Serialize)]
struct Stamped<'a, T> {
    #[serde(flatten)]
    value: &'a T,
    write_token: &'a str,
}

/// The JSON of `value` with a fresh write token: the value must serialize as a JSON object
/// (a struct or a map).
pub fn encode<T: Serialize>(value: &T) -> SuiteResult<Bytes> {
    let token = format!("{:032x}", rand::random::<u128>());
    serde_json::to_vec_pretty(&Stamped {
        value,
        write_token: &token,
    })
    .map(Bytes::from)
    .map_err(|e| {
        SuiteError::Internal(format!(
            "{} as state JSON (it must serialize as an object): {e}",
            short_type_name::<T>()
        ))
    })
}

/// The value in `body` (the write token, if any, removed first).
pub fn decode<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    let mut v: serde_json::Value = serde_json::from_slice(body)?;
    if let Some(o) = v.as_object_mut() {
        o.remove(WRITE_TOKEN);
    }
    serde_json::from_value(v)
}

fn short_type_name<T>() -> &'static str {
    let full = std::any::type_name::<T>();
    let base = full.split('<').next().unwrap_or(full);
    base.rsplit("::").next().unwrap_or(base)
}

/// Typed JSON state in one bucket of a [`ConditionalStore`].
#[derive(Debug)]
pub struct JsonState<'a, S: ?Sized> {
    store: &'a S,
    bucket: &'a str,
}

impl<S: ?Sized> Clone for JsonState<'_, S> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<S: ?Sized> Copy for JsonState<'_, S> {}

impl<'a, S: ConditionalStore + ?Sized> JsonState<'a, S> {
    pub fn new(store: &'a S, bucket: &'a str) -> Self {
        JsonState { store, bucket }
    }

    pub fn bucket(&self) -> &'a str {
        self.bucket
    }

    /// The value and its ETag; `Ok(None)` when the key does not exist. An object that is not
    /// a `T` is a [`SuiteError::BadObject`] naming it.
    pub async fn load<T: DeserializeOwned>(&self, key: &str) -> SuiteResult<Option<Versioned<T>>> {
        let Some(t) = self.store.get_with_etag(self.bucket, key).await? else {
            return Ok(None);
        };
        let value = decode(&t.body).map_err(|e| {
            SuiteError::bad_object(
                self.bucket,
                key,
                format!("not a {}: {e}", short_type_name::<T>()),
            )
        })?;
        Ok(Some(Versioned {
            value,
            etag: t.etag,
        }))
    }

    /// Writes `value` only if the key is free; [`AlreadyExists`] when another writer's object
    /// is there (this writer's own, its answer lost after S3 acted, counts as written).
    pub async fn create<T: Serialize>(
        &self,
        key: &str,
        value: &T,
    ) -> SuiteResult<Result<Written, AlreadyExists>> {
        let body = encode(value)?;
        self.store
            .create_if_absent(self.bucket, key, body, JSON)
            .await
    }

    /// Writes `value` only if the object is still at `etag`; [`Conflict`] when another writer
    /// changed (or deleted) it first.
    pub async fn replace<T: Serialize>(
        &self,
        key: &str,
        value: &T,
        etag: &str,
    ) -> SuiteResult<Result<Written, Conflict>> {
        let body = encode(value)?;
        self.store
            .replace_if_match(self.bucket, key, body, JSON, etag)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Lease {
        holder: String,
        until: u64,
    }

    #[test]
    fn every_write_is_unique_and_loads_back_as_the_value() {
        let l = Lease {
            holder: "a".into(),
            until: 7,
        };
        let (b1, b2) = (encode(&l).unwrap(), encode(&l).unwrap());
        assert_ne!(b1, b2, "two writes of the same value must differ");
        let v: serde_json::Value = serde_json::from_slice(&b1).unwrap();
        assert_eq!(v["holder"], "a");
        assert_eq!(v[WRITE_TOKEN].as_str().map(str::len), Some(32));
        // The value's own fields first, in order; the token last.
        let text = std::str::from_utf8(&b1).unwrap();
        assert!(text.find("holder") < text.find("until"));
        assert!(text.find("until") < text.find(WRITE_TOKEN));
        // Even a type that refuses unknown fields loads (the token is removed first).
        assert_eq!(decode::<Lease>(&b1).unwrap(), l);
        // Objects written before the token existed load too.
        assert_eq!(
            decode::<Lease>(br#"{"holder": "a", "until": 7}"#).unwrap(),
            l
        );
    }

    #[test]
    fn a_value_that_is_not_an_object_is_refused_with_its_type() {
        let e = encode(&vec![1, 2]).unwrap_err();
        assert_eq!(e.class(), "InternalError");
        assert!(e.to_string().contains("Vec"), "{e}");
        assert_eq!(short_type_name::<Versioned<Lease>>(), "Versioned");
    }
}
