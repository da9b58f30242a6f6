//! Sign-in names and passwords as a person types them: checked the same way
//! in the browser's forms and at the server's boundary.
//!
//! Invariants: a [`UserName`] is 3 to 32 characters from `[a-z0-9._-]`,
//! starting with a letter or digit, lower-cased (names are case-insensitive);
//! a [`Password`] is 8 to 256 characters. The upper bound keeps hashing cost
//! bounded whatever a request carries.

use std::fmt;

use serde::{Deserialize, Serialize};
use thiserror::Error;

/// Why a name or password was refused; the message is for the person.
#[derive(Debug, Clone, PartialEq, Eq, Error, Serialize, Deserialize)]
pub enum AccountInputError {
    #[error("a name is 3 to 32 characters: letters, digits, '.', '_' or '-', starting with a letter or digit")]
    BadName,
    #[error("a password is 8 to 256 characters")]
    BadPassword,
}

/// A normalised sign-in name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserName(String);

impl UserName {
    pub const MIN_LEN: usize = 3;
    pub const MAX_LEN: usize = 32;

    /// Trims and lower-cases `text`, then checks it.
    pub fn parse(text: &str) -> Result<Self, AccountInputError> {
        let name = text.trim().to_lowercase();
        let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || ".-_".contains(c);
        let starts_well = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let len = name.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len)
            || !starts_well
            || !name.chars().all(allowed)
        {
            return Err(AccountInputError::BadName);
        }
        Ok(Self(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A password within the length limits. Its `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub const MIN_LEN: usize = 8;
    pub const MAX_LEN: usize = 256;

    pub fn parse(text: &str) -> Result<Self, AccountInputError> {
        let len = text.chars().count();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(AccountInputError::BadPassword);
        }
        Ok(Self(text.to_string()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(…)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_normalised_and_checked() {
        assert_eq!(
            UserName::parse("  Ann.Lee ").expect("ok").as_str(),
            "ann.lee"
        );
        for bad in [
            "",
            "ab",
            "-ann",
            ".ann",
            "ann lee",
            "änn",
            "a/b",
            &"x".repeat(33),
        ] {
            assert_eq!(
                UserName::parse(bad),
                Err(AccountInputError::BadName),
                "{bad:?}"
            );
        }
        assert!(UserName::parse(&"x".repeat(32)).is_ok());
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        assert_eq!(
            Password::parse("short"),
            Err(AccountInputError::BadPassword)
        );
        assert_eq!(
            Password::parse(&"p".repeat(257)),
            Err(AccountInputError::BadPassword)
        );
        let p = Password::parse("correct horse").expect("ok");
        assert_eq!(p.expose(), "correct horse");
        assert!(!format!("{p:?}").contains("horse"));
    }
}
