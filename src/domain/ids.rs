//! Identifiers. Note, client and mutation ids are UUIDv7 in canonical
//! lowercase form: they are made on the client, sort by creation time, and are
//! checked strictly wherever they enter the system.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use uuid::Uuid;

use super::DomainError;

fn parse_v7(kind: &'static str, text: &str) -> Result<Uuid, DomainError> {
    let bad = || DomainError::BadId {
        kind,
        got: text.chars().take(64).collect(),
    };
    // Only the canonical hyphenated lowercase form: one spelling per id, so ids
    // compare and index as plain strings everywhere.
    if text.len() != 36 || text.bytes().any(|b| b.is_ascii_uppercase()) {
        return Err(bad());
    }
    let uuid = Uuid::try_parse(text).map_err(|_| bad())?;
    if uuid.get_version_num() != 7 || uuid.hyphenated().to_string() != text {
        return Err(bad());
    }
    Ok(uuid)
}

/// Builds a UUIDv7 from its two inputs. The caller supplies the clock and the
/// randomness, which keeps this module pure.
fn build_v7(unix_ms: u64, random: [u8; 10]) -> Uuid {
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&unix_ms.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&random);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    Uuid::from_bytes(bytes)
}

macro_rules! uuid_v7_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(Uuid);

        impl $name {
            /// Makes a new id from the current time in milliseconds and ten random bytes.
            pub fn new(unix_ms: u64, random: [u8; 10]) -> Self {
                Self(build_v7(unix_ms, random))
            }

            /// Parses the canonical text form, refusing anything else.
            pub fn parse(text: &str) -> Result<Self, DomainError> {
                parse_v7($kind, text).map(Self)
            }

            /// Milliseconds since the Unix epoch at which the id was made.
            pub fn unix_ms(&self) -> u64 {
                let b = self.0.as_bytes();
                u64::from_be_bytes([0, 0, b[0], b[1], b[2], b[3], b[4], b[5]])
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0.hyphenated(), f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0.hyphenated())
            }
        }

        impl FromStr for $name {
            type Err = DomainError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(&self.0.hyphenated())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&text).map_err(serde::de::Error::custom)
            }
        }
    };
}

uuid_v7_id!(
    /// The id of a note, made by the client that created it.
    NoteId,
    "note id"
);

impl NoteId {
    /// A note id made of a freshly drawn mutation id: both are UUIDv7 drawn
    /// from the clock and randomness, so one fresh draw serves as either
    /// where a change must become a new note ([`crate::sync::replica::acknowledge`]).
    pub fn from_fresh(id: MutationId) -> Self {
        Self(id.0)
    }
}
uuid_v7_id!(
    /// The id of one browser profile's replica; mutation ids are unique per client.
    ClientId,
    "client id"
);
uuid_v7_id!(
    /// The id of one local change. The server applies each mutation id at most
    /// once, which makes retries after a timeout safe.
    MutationId,
    "mutation id"
);

/// A server revision of a note. `Revision::NEW` (0) means the server has never
/// seen the note; every accepted change on the server increments it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Revision(pub u64);

impl Revision {
    /// The revision of a note the server has not seen yet.
    pub const NEW: Revision = Revision(0);

    /// The revision that follows this one.
    pub fn next(self) -> Revision {
        Revision(self.0 + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn new_ids_are_valid_v7_and_round_trip() {
        let id = NoteId::new(1_700_000_000_123, [7; 10]);
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(NoteId::parse(&text), Ok(id));
        assert_eq!(id.unix_ms(), 1_700_000_000_123);
    }

    #[test]
    fn ids_sort_by_creation_time() {
        let older = NoteId::new(1_000, [0xff; 10]);
        let newer = NoteId::new(1_001, [0; 10]);
        assert!(older < newer);
        assert!(older.to_string() < newer.to_string());
    }

    #[test]
    fn rejects_other_spellings_and_versions() {
        let good = NoteId::new(42, [1; 10]).to_string();
        for bad in [
            good.to_uppercase(),
            good.replace('-', ""),
            format!("{{{good}}}"),
            format!(" {good}"),
            "67e55044-10b1-426f-9247-bb680e5fe0c8".to_string(), // v4
            String::new(),
            "../../etc/passwd".to_string(),
        ] {
            assert!(NoteId::parse(&bad).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn serde_refuses_bad_ids() {
        let err = serde_json::from_str::<NoteId>("\"not-an-id\"");
        assert!(err.is_err());
        let id = MutationId::new(5, [3; 10]);
        let json = serde_json::to_string(&id).expect("serialises");
        assert_eq!(serde_json::from_str::<MutationId>(&json).ok(), Some(id));
    }

    proptest! {
        #[test]
        fn any_time_and_randomness_make_a_parsable_id(ms in 0u64..(1u64 << 48), random in any::<[u8; 10]>()) {
            let id = ClientId::new(ms, random);
            prop_assert_eq!(ClientId::parse(&id.to_string()), Ok(id));
            prop_assert_eq!(id.unix_ms(), ms);
        }

        #[test]
        fn arbitrary_text_never_panics(text in ".{0,80}") {
            let _ = NoteId::parse(&text);
        }
    }
}
