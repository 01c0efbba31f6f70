//! What an analyst asked for, beneath every stage: the command line builds
//! it, planning, the gates, the cache key and the result read it.

use crate::calendar::{Grain, Period};

/// What an analyst asked for.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Request {
    pub period: Period,
    /// The day a snapshot metric is taken at (end of day in the reporting zone).
    pub as_of: Option<chrono::NaiveDate>,
    /// Convert a snapshot's `as_of` money at this day's rates instead of the
    /// as-of day's (constant currency, as a cohort's T0 is valued at T's rates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rates_as_of: Option<chrono::NaiveDate>,
    #[serde(
        serialize_with = "serialize_grain",
        deserialize_with = "deserialize_grain"
    )]
    pub grain: Option<Grain>,
    pub by: Vec<String>,
}

fn deserialize_grain<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Grain>, D::Error> {
    use serde::Deserialize;
    Option::<String>::deserialize(d)?
        .map(|name| Grain::parse(&name).map_err(serde::de::Error::custom))
        .transpose()
}

fn serialize_grain<S: serde::Serializer>(g: &Option<Grain>, s: S) -> Result<S::Ok, S::Error> {
    match g {
        Some(g) => s.serialize_str(g.name()),
        None => s.serialize_none(),
    }
}
