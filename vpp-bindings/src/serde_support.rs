//! Helpers the generated `serde::Deserialize` impls call: fixed arrays of any length, and
//! unions given as a one-entry map `{member: value}` (the shape VPP's Python client takes).
//! Lets tests and tools state messages as JSON; the wire codec never uses serde.

use serde::de::{Deserialize, Deserializer, Error};

/// Deserializes `[T; N]` from a sequence of exactly N elements (serde stops at 32).
pub fn deserialize_array<'de, D, T, const N: usize>(d: D) -> Result<[T; N], D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let v: Vec<T> = Vec::deserialize(d)?;
    let len = v.len();
    v.try_into()
        .map_err(|_| D::Error::custom(format!("expected an array of {N} elements, got {len}")))
}

/// The single `(member, value)` entry of a union given as a map.
pub fn single_entry<'de, D>(d: D) -> Result<(String, serde_json::Value), D::Error>
where
    D: Deserializer<'de>,
{
    let m: serde_json::Map<String, serde_json::Value> = serde_json::Map::deserialize(d)?;
    if m.len() != 1 {
        return Err(D::Error::custom(format!(
            "a union is given as one {{member: value}} entry, got {} entries",
            m.len()
        )));
    }
    m.into_iter()
        .next()
        .ok_or_else(|| D::Error::custom("empty union map"))
}

/// Deserializes a union member's value.
pub fn member<T, E>(v: serde_json::Value) -> Result<T, E>
where
    T: serde::de::DeserializeOwned,
    E: Error,
{
    serde_json::from_value(v).map_err(E::custom)
}
