//! Identifiers of models: a model's name, a version number, an alias name.
//!
//! They become parts of object-store keys and of URLs, so each is checked once, when it is
//! parsed, and cannot hold a value that would escape its place in the storage layout.

use std::fmt;
use std::num::NonZeroU32;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Longest model or alias name; keeps keys and metric labels short.
const MAX_NAME_LEN: usize = 64;

/// Checks the shared grammar of model and alias names: lowercase ASCII letters, digits, `-`
/// and `_`, starting with a letter. The same rule as Kubernetes label values, minus dots and
/// upper case, so a name is safe in a key, a URL path, an env value and a metric label.
fn check_name(kind: &'static str, value: &str) -> Result<(), Error> {
    let reason = if value.is_empty() {
        Some("must not be empty")
    } else if value.len() > MAX_NAME_LEN {
        Some("must be at most 64 characters")
    } else if !value.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lowercase letter")
    } else if !value
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
    {
        Some("may contain only a-z, 0-9, '-' and '_'")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName {
            kind,
            value: value.chars().take(80).collect(),
            reason,
        }),
        None => Ok(()),
    }
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Parses a name.
            ///
            /// # Errors
            /// [`Error::InvalidName`] naming the rule the value breaks.
            pub fn parse(value: &str) -> Result<Self, Error> {
                check_name($kind, value)?;
                Ok(Self(value.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(value: String) -> Result<Self, Error> {
                check_name($kind, &value)?;
                Ok(Self(value))
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

name_type!(
    /// A registered model's name, e.g. `fraud` or `recommender`.
    ModelName,
    "model name"
);
name_type!(
    /// A movable pointer to one version of a model, e.g. `production` or `staging`.
    AliasName,
    "alias name"
);

impl AliasName {
    /// The alias servers follow by default and the trainer's quality gate moves.
    pub fn production() -> Self {
        Self("production".to_owned())
    }
}

/// A model version: a positive integer allocated by the registry, 1 for the first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub struct ModelVersion(NonZeroU32);

impl ModelVersion {
    pub const FIRST: ModelVersion = ModelVersion(NonZeroU32::MIN);

    /// # Errors
    /// [`Error::InvalidVersion`] for 0.
    pub fn new(value: u32) -> Result<Self, Error> {
        NonZeroU32::new(value)
            .map(Self)
            .ok_or_else(|| Error::InvalidVersion {
                value: value.to_string(),
            })
    }

    pub fn get(self) -> u32 {
        self.0.get()
    }

    /// The version after this one, or `None` past `u32::MAX`.
    pub fn next(self) -> Option<Self> {
        self.0.checked_add(1).map(Self)
    }
}

impl TryFrom<u32> for ModelVersion {
    type Error = Error;
    fn try_from(value: u32) -> Result<Self, Error> {
        Self::new(value)
    }
}

impl From<ModelVersion> for u32 {
    fn from(value: ModelVersion) -> u32 {
        value.get()
    }
}

impl FromStr for ModelVersion {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let invalid = || Error::InvalidVersion {
            value: s.chars().take(40).collect(),
        };
        // Only plain decimal digits: "+1", " 1" and "01x" are mistakes, not versions.
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid());
        }
        let value: u32 = s.parse().map_err(|_| invalid())?;
        Self::new(value).map_err(|_| invalid())
    }
}

impl fmt::Display for ModelVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn names_follow_the_label_grammar() {
        let cases = [
            ("fraud", true, "plain"),
            ("fraud-v2_eu", true, "dash, underscore, digit"),
            ("", false, "empty"),
            ("Fraud", false, "upper case"),
            ("1fraud", false, "leading digit"),
            ("../etc", false, "path traversal"),
            ("a/b", false, "slash"),
            ("a b", false, "space"),
        ];
        for (value, ok, why) in cases {
            assert_eq!(ModelName::parse(value).is_ok(), ok, "{why}: {value:?}");
            assert_eq!(AliasName::parse(value).is_ok(), ok, "{why}: {value:?}");
        }
        assert!(ModelName::parse(&"a".repeat(65)).is_err(), "too long");
        assert!(ModelName::parse(&"a".repeat(64)).is_ok(), "longest allowed");
    }

    #[test]
    fn invalid_name_error_names_the_rule() {
        let err = ModelName::parse("Fraud").unwrap_err().to_string();
        assert!(err.contains("model name"), "{err}");
        assert!(err.contains("lowercase"), "{err}");
    }

    #[test]
    fn versions_are_positive_plain_decimals() {
        assert_eq!("7".parse::<ModelVersion>().unwrap().get(), 7);
        for bad in ["0", "", "-1", "+1", " 1", "1.0", "abc", "99999999999"] {
            assert!(bad.parse::<ModelVersion>().is_err(), "{bad:?}");
        }
        assert!(serde_json::from_str::<ModelVersion>("0").is_err());
        assert_eq!(ModelVersion::new(u32::MAX).unwrap().next(), None);
    }

    proptest! {
        #[test]
        fn name_round_trips_through_json(name in "[a-z][a-z0-9_-]{0,63}") {
            let parsed = ModelName::parse(&name).unwrap();
            let json = serde_json::to_string(&parsed).unwrap();
            prop_assert_eq!(serde_json::from_str::<ModelName>(&json).unwrap(), parsed);
        }

        #[test]
        fn version_round_trips_through_display(v in 1u32..) {
            let version = ModelVersion::new(v).unwrap();
            prop_assert_eq!(version.to_string().parse::<ModelVersion>().unwrap(), version);
        }
    }
}
