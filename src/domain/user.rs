//! The id of a user account: the key under which the server keeps a person's
//! notes, and the prefix of every key the stores write for them.
//!
//! Invariant: a [`UserId`] is 1 to 64 characters from `[a-z0-9_-]`. Nothing
//! else is ever constructed or deserialised, so a user id is safe to embed in
//! store keys (no separators, no path characters) and compares as plain text.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;

/// Why a user id was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("a user id is 1 to {max} characters from a-z, 0-9, '_' and '-', got {got:?}")]
pub struct InvalidUserId {
    /// The start of the refused text, for the message.
    pub got: String,
    /// The longest user id.
    pub max: usize,
}

/// A validated user id.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UserId(String);

impl UserId {
    /// The longest user id, in characters (all of them ASCII).
    pub const MAX_LEN: usize = 64;

    /// Parses a user id, refusing anything outside the strict format.
    pub fn parse(text: &str) -> Result<Self, InvalidUserId> {
        let allowed =
            |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-';
        if text.is_empty() || text.len() > Self::MAX_LEN || !text.bytes().all(allowed) {
            return Err(InvalidUserId {
                got: text.chars().take(Self::MAX_LEN + 8).collect(),
                max: Self::MAX_LEN,
            });
        }
        Ok(Self(text.to_string()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UserId({})", self.0)
    }
}

impl FromStr for UserId {
    type Err = InvalidUserId;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl Serialize for UserId {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for UserId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_the_strict_format() {
        for good in ["a", "local", "user_1", "x-y-z", "0", &"a".repeat(64)] {
            let id = UserId::parse(good).expect("valid");
            assert_eq!(id.as_str(), good);
            assert_eq!(id.to_string(), good);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "Alice",
            "a b",
            "a/b",
            "a::b",
            "../etc",
            "é",
            " a",
            "a\n",
            &"a".repeat(65),
        ] {
            let err = UserId::parse(bad).expect_err(bad);
            assert!(err.to_string().contains("a-z"), "{err}");
        }
    }

    #[test]
    fn serde_round_trips_and_refuses_bad_input() {
        let id = UserId::parse("alice").expect("valid");
        let json = serde_json::to_string(&id).expect("serialises");
        assert_eq!(json, "\"alice\"");
        assert_eq!(serde_json::from_str::<UserId>(&json).ok(), Some(id));
        assert!(serde_json::from_str::<UserId>("\"Bob\"").is_err());
        assert!(serde_json::from_str::<UserId>("\"\"").is_err());
        assert!(serde_json::from_str::<UserId>("42").is_err());
    }

    proptest! {
        #[test]
        fn valid_ids_round_trip(text in "[a-z0-9_-]{1,64}") {
            let id = UserId::parse(&text).expect("valid");
            prop_assert_eq!(id.as_str(), text.as_str());
        }

        #[test]
        fn arbitrary_text_never_panics_and_parses_only_when_valid(text in ".{0,80}") {
            let valid = !text.is_empty()
                && text.len() <= 64
                && text.bytes().all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-'));
            prop_assert_eq!(UserId::parse(&text).is_ok(), valid);
        }
    }
}
