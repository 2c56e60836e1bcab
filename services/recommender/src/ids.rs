//! User and item ids, and lists of item ids, parsed once where a request enters.
//!
//! Paths, query strings and JSON bodies deserialise straight into these types (serde
//! `try_from`), so a handler never holds an id that has not been checked, and an error names
//! the parameter the bad id came in.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Longest user or item id accepted, in bytes; it bounds the click store's memory.
pub const MAX_ID_LEN: usize = 128;
/// Most ids in an `exclude` or `allow` list.
pub const MAX_LIST: usize = 1000;

/// `value` if it is an id: 1 to [`MAX_ID_LEN`] bytes, no control characters; else the error
/// naming `field`, the parameter it came in.
fn parse_id(field: &str, value: String) -> Result<String, Error> {
    if value.is_empty() || value.len() > MAX_ID_LEN || value.chars().any(char::is_control) {
        return Err(Error::InvalidRequest(format!(
            "{field} must have 1-{MAX_ID_LEN} printable characters"
        )));
    }
    Ok(value)
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
        #[serde(try_from = "String")]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;

            /// # Errors
            /// [`Error::InvalidRequest`] for an empty, overlong or control-character id.
            fn try_from(value: String) -> Result<Self, Error> {
                parse_id($field, value).map(Self)
            }
        }

        impl FromStr for $name {
            type Err = Error;

            fn from_str(s: &str) -> Result<Self, Error> {
                Self::try_from(s.to_owned())
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

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }
    };
}

id_type!(
    /// A user id as the storefront knows it (`user_id` in paths, queries and bodies).
    UserId,
    "user_id"
);
id_type!(
    /// An item id as the storefront knows it (`item_id` in paths and bodies).
    ItemId,
    "item_id"
);

/// The request parameter a list of item ids arrives in; its name is in the list's errors.
pub trait ListField {
    const NAME: &'static str;
}

/// `exclude`: items never to recommend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exclude {}

impl ListField for Exclude {
    const NAME: &'static str = "exclude";
}

/// `allow`: the only items to recommend from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Allow {}

impl ListField for Allow {
    const NAME: &'static str = "allow";
}

/// At most [`MAX_LIST`] item ids, from parameter `F`: a JSON array in a body, a
/// comma-separated string in a query ([`comma_separated`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdList<F> {
    ids: Vec<ItemId>,
    field: PhantomData<F>,
}

impl<F> Default for IdList<F> {
    fn default() -> Self {
        Self {
            ids: Vec::new(),
            field: PhantomData,
        }
    }
}

impl<F: ListField> IdList<F> {
    /// # Errors
    /// [`Error::InvalidRequest`] naming `F` for more than [`MAX_LIST`] ids or a malformed one.
    pub fn parse(ids: Vec<String>) -> Result<Self, Error> {
        if ids.len() > MAX_LIST {
            return Err(Error::InvalidRequest(format!(
                "{} has {} ids; the limit is {MAX_LIST}",
                F::NAME,
                ids.len()
            )));
        }
        let ids = ids
            .into_iter()
            .map(|id| parse_id(F::NAME, id).map(ItemId))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            ids,
            field: PhantomData,
        })
    }

    /// Parses `a1, a2,,a3`: ids are trimmed and empty ones skipped.
    ///
    /// # Errors
    /// As [`IdList::parse`].
    pub fn parse_comma_separated(raw: &str) -> Result<Self, Error> {
        Self::parse(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
        )
    }
}

impl<F> IdList<F> {
    pub fn as_slice(&self) -> &[ItemId] {
        &self.ids
    }
}

impl<'de, F: ListField> Deserialize<'de> for IdList<F> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Self::parse(Vec::deserialize(deserializer)?).map_err(serde::de::Error::custom)
    }
}

/// `#[serde(default, deserialize_with = "comma_separated")]` for an optional query parameter
/// holding a comma-separated [`IdList`].
///
/// # Errors
/// As [`IdList::parse`], through the deserializer's error.
pub fn comma_separated<'de, D, F>(deserializer: D) -> Result<Option<IdList<F>>, D::Error>
where
    D: Deserializer<'de>,
    F: ListField,
{
    let raw = String::deserialize(deserializer)?;
    IdList::parse_comma_separated(&raw)
        .map(Some)
        .map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn message(error: Error) -> String {
        error.to_string()
    }

    #[test]
    fn an_id_has_1_to_128_printable_characters() {
        assert_eq!("alice".parse::<UserId>().unwrap().as_str(), "alice");
        assert_eq!("a b/é".parse::<ItemId>().unwrap().to_string(), "a b/é");
        assert!(UserId::try_from("u".repeat(MAX_ID_LEN)).is_ok());
        let refused = [
            String::new(),
            "u".repeat(MAX_ID_LEN + 1),
            // 65 two-byte characters: the bound is in bytes.
            "é".repeat(65),
            "a\nb".to_owned(),
            "a\u{7f}".to_owned(),
            "\t".to_owned(),
        ];
        for value in refused {
            let error = message(UserId::try_from(value.clone()).unwrap_err());
            assert_eq!(
                error, "user_id must have 1-128 printable characters",
                "{value:?}"
            );
            let error = message(ItemId::try_from(value.clone()).unwrap_err());
            assert!(error.starts_with("item_id must have"), "{value:?}: {error}");
        }
    }

    #[test]
    fn json_deserialises_only_valid_ids_and_serialises_them_as_strings() {
        let user: UserId = serde_json::from_str(r#""alice""#).unwrap();
        assert_eq!(serde_json::to_string(&user).unwrap(), r#""alice""#);
        let error = serde_json::from_str::<UserId>(r#""""#).unwrap_err();
        assert!(
            error.to_string().starts_with("user_id must have"),
            "{error}"
        );
        let error = serde_json::from_str::<Vec<ItemId>>(r#"["a", "b\u0000"]"#).unwrap_err();
        assert!(
            error.to_string().starts_with("item_id must have"),
            "{error}"
        );
    }

    #[test]
    fn a_list_holds_at_most_1000_valid_ids_and_names_its_parameter() {
        let ids = |n: usize| (0..n).map(|i| format!("i{i}")).collect::<Vec<_>>();
        assert_eq!(
            IdList::<Exclude>::parse(ids(MAX_LIST))
                .unwrap()
                .as_slice()
                .len(),
            1000
        );
        let error = message(IdList::<Exclude>::parse(ids(MAX_LIST + 1)).unwrap_err());
        assert_eq!(error, "exclude has 1001 ids; the limit is 1000");
        let error = message(IdList::<Allow>::parse(vec!["a".into(), String::new()]).unwrap_err());
        assert_eq!(error, "allow must have 1-128 printable characters");
        let error = message(IdList::<Allow>::parse(vec!["x".repeat(129)]).unwrap_err());
        assert_eq!(error, "allow must have 1-128 printable characters");
        let error = message(IdList::<Exclude>::parse(vec!["a\rb".into()]).unwrap_err());
        assert_eq!(error, "exclude must have 1-128 printable characters");
    }

    #[test]
    fn a_comma_separated_list_is_trimmed_and_skips_empty_ids() {
        let list = IdList::<Exclude>::parse_comma_separated(" a1, a2,,a3 ,").unwrap();
        let ids: Vec<&str> = list.as_slice().iter().map(ItemId::as_str).collect();
        assert_eq!(ids, ["a1", "a2", "a3"]);
        assert!(
            IdList::<Allow>::parse_comma_separated("")
                .unwrap()
                .as_slice()
                .is_empty()
        );
        let many = vec!["i"; MAX_LIST + 1].join(",");
        let error = message(IdList::<Allow>::parse_comma_separated(&many).unwrap_err());
        assert_eq!(error, "allow has 1001 ids; the limit is 1000");
    }

    #[test]
    fn a_json_list_is_an_array_of_ids() {
        let list: IdList<Exclude> = serde_json::from_str(r#"["a1", "a2"]"#).unwrap();
        assert_eq!(list.as_slice().len(), 2);
        let error = serde_json::from_str::<IdList<Exclude>>(r#"["a1", ""]"#).unwrap_err();
        assert!(
            error.to_string().starts_with("exclude must have"),
            "{error}"
        );
        // A JSON body takes an array, not the query's comma-separated string.
        assert!(serde_json::from_str::<IdList<Exclude>>(r#""a1,a2""#).is_err());
    }

    proptest! {
        #[test]
        fn an_id_is_accepted_exactly_when_the_rule_holds_and_kept_unchanged(
            value in "\\PC{0,70}|[\\x00-\\x7f]{0,140}"
        ) {
            let valid = !value.is_empty()
                && value.len() <= MAX_ID_LEN
                && !value.chars().any(char::is_control);
            match UserId::try_from(value.clone()) {
                Ok(id) => {
                    prop_assert!(valid);
                    prop_assert_eq!(id.as_str(), value.as_str());
                    let json = serde_json::to_string(&id).unwrap();
                    prop_assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
                }
                Err(_) => prop_assert!(!valid),
            }
        }
    }
}
