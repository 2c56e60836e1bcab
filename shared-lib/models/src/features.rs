//! Turning request input into a row of model features: parse, don't validate.
//!
//! A [`FeatureRow`] holds exactly the model's features, in the model's order, all finite. Two
//! spellings are accepted, as the classic service's clients use positional ones:
//! - positional: `f1`, `f2`, … `fN` where N is the model schema's feature count;
//! - named: the schema's feature names (`txn_amount`, …).
//!
//! Beside features a request may carry `card_id` or `user_id`: the key that picks the A/B variant.

use std::borrow::Cow;
use std::collections::{BTreeSet, HashSet};
use std::fmt;

/// Request fields that are keys for A/B assignment, not features.
pub const KEY_FIELDS: [&str; 2] = ["card_id", "user_id"];

/// A complete, finite feature row in model order.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureRow(Vec<f64>);

impl FeatureRow {
    pub fn values(&self) -> &[f64] {
        &self.0
    }
}

/// What is wrong with a request's features; the message names the fields.
#[derive(Debug, Clone, PartialEq)]
pub enum FeatureError {
    Missing(Vec<String>),
    Unknown(Vec<String>),
    Duplicate(String),
    NotANumber { name: String, value: String },
    NotFinite { name: String },
    MixedForms,
    WrongCount { expected: usize, got: usize },
    NotARow,
    BadKey(String),
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing(names) => write!(f, "missing feature(s): {}", names.join(", ")),
            Self::Unknown(names) => write!(f, "unknown field(s): {}", names.join(", ")),
            Self::Duplicate(name) => write!(f, "field {name} is given more than once"),
            Self::NotANumber { name, value } => {
                let value: String = value.chars().take(40).collect();
                write!(f, "feature {name} is not a number: {value:?}")
            }
            Self::NotFinite { name } => write!(
                f,
                "feature {name} must be a finite number (not NaN or infinite)"
            ),
            Self::MixedForms => write!(
                f,
                "give features either positionally (f1, f2, ...) or by name, not both"
            ),
            Self::WrongCount { expected, got } => {
                write!(f, "expected {expected} features, got {got}")
            }
            Self::NotARow => write!(
                f,
                "a row must be an array of numbers or an object of named features"
            ),
            Self::BadKey(name) => write!(
                f,
                "{name} must be a string or a number of at most 128 characters"
            ),
        }
    }
}

impl std::error::Error for FeatureError {}

/// A query string's `name=value` pairs, percent-decoded. Each name and value borrows from the
/// query unless it had something to decode, so the common request allocates once, for the
/// list (a deserialising extractor allocated two strings a field).
pub fn query_pairs(query: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
    form_urlencoded::parse(query.as_bytes()).collect()
}

/// The A/B key of a query, if any (`card_id` first, then `user_id`).
pub fn key_in_query<K: AsRef<str>, V: AsRef<str>>(pairs: &[(K, V)]) -> Option<&str> {
    KEY_FIELDS.iter().find_map(|field| {
        pairs
            .iter()
            .find(|(k, _)| k.as_ref() == *field)
            .map(|(_, v)| v.as_ref())
    })
}

/// The A/B key of a JSON row, if any.
pub fn key_in_json(row: &serde_json::Value) -> Option<String> {
    let map = row.as_object()?;
    KEY_FIELDS.iter().find_map(|field| match map.get(*field)? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    })
}

/// Parses a query string's pairs into a row and an optional A/B key.
///
/// # Errors
/// A [`FeatureError`] naming every missing or unknown field, or the first bad value.
pub fn row_from_query<K: AsRef<str>, V: AsRef<str>>(
    pairs: &[(K, V)],
    names: &[String],
) -> Result<(FeatureRow, Option<String>), FeatureError> {
    if let Some(k) = first_duplicate(pairs) {
        return Err(FeatureError::Duplicate(k.to_owned()));
    }
    let mut given: Given<'_, &str> = pairs
        .iter()
        .map(|(k, v)| (k.as_ref(), Some(v.as_ref())))
        .collect();
    let key = take_key(&mut given, |v| Some((*v).to_owned()))?;
    let row = assemble(given, names, |raw: &str| {
        raw.trim().parse::<f64>().map_err(|_| raw.to_owned())
    })?;
    Ok((row, key))
}

/// The first field given again after an earlier one of the same name.
fn first_duplicate<K: AsRef<str>, V>(pairs: &[(K, V)]) -> Option<&str> {
    // A request has a handful of fields: comparing with the earlier ones beats hashing them.
    // Past a few dozen (a hostile query), a set keeps it linear.
    const SCAN_LIMIT: usize = 32;
    if pairs.len() <= SCAN_LIMIT {
        pairs
            .iter()
            .enumerate()
            .find(|(i, (k, _))| {
                pairs[..*i]
                    .iter()
                    .any(|(earlier, _)| earlier.as_ref() == k.as_ref())
            })
            .map(|(_, (k, _))| k.as_ref())
    } else {
        let mut seen = HashSet::with_capacity(pairs.len());
        pairs
            .iter()
            .find(|(k, _)| !seen.insert(k.as_ref()))
            .map(|(k, _)| k.as_ref())
    }
}

/// Parses one JSON row: an array of numbers in model order, or an object of named (or
/// positional) features, optionally with a `card_id`/`user_id`.
///
/// # Errors
/// A [`FeatureError`].
pub fn row_from_json(
    value: &serde_json::Value,
    names: &[String],
) -> Result<(FeatureRow, Option<String>), FeatureError> {
    match value {
        serde_json::Value::Array(items) => {
            if items.len() != names.len() {
                return Err(FeatureError::WrongCount {
                    expected: names.len(),
                    got: items.len(),
                });
            }
            let values = items
                .iter()
                .enumerate()
                .map(|(i, v)| json_number(&names[i], v))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((FeatureRow(values), None))
        }
        serde_json::Value::Object(map) => {
            let mut given: Given<'_, &serde_json::Value> =
                map.iter().map(|(k, v)| (k.as_str(), Some(v))).collect();
            let key = take_key(&mut given, |v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })?;
            let number = |v: &serde_json::Value| v.as_f64().ok_or_else(|| v.to_string());
            Ok((assemble(given, names, number)?, key))
        }
        _ => Err(FeatureError::NotARow),
    }
}

fn json_number(name: &str, value: &serde_json::Value) -> Result<f64, FeatureError> {
    value.as_f64().ok_or_else(|| FeatureError::NotANumber {
        name: name.to_owned(),
        value: value.to_string(),
    })
}

/// A request's fields by name, each taken (`None`) once used. The names are distinct (a query's
/// duplicates are refused first; a JSON object has none), and few, so a scan finds one faster
/// than a hash map would.
type Given<'a, V> = Vec<(&'a str, Option<V>)>;

/// Takes the value of the first field whose name `wanted` accepts, if not taken yet.
fn take<V>(given: &mut Given<'_, V>, wanted: impl Fn(&str) -> bool) -> Option<V> {
    given
        .iter_mut()
        .find(|(k, v)| v.is_some() && wanted(k))
        .and_then(|(_, v)| v.take())
}

fn take_key<V>(
    given: &mut Given<'_, V>,
    as_text: impl Fn(&V) -> Option<String>,
) -> Result<Option<String>, FeatureError> {
    let mut key = None;
    for field in KEY_FIELDS {
        if let Some(v) = take(given, |k| k == field) {
            let text = as_text(&v).filter(|t| !t.is_empty() && t.len() <= 128);
            key = Some(text.ok_or_else(|| FeatureError::BadKey(field.to_owned()))?);
        }
    }
    Ok(key)
}

/// The 1-based position of `name` if it is the positional name of one of `count` features
/// (`f1` … `fN`, spelt exactly so: no sign, no leading zero).
fn positional_index(name: &str, count: usize) -> Option<usize> {
    let digits = name.strip_prefix('f')?;
    if digits.is_empty() || digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits
        .parse::<usize>()
        .ok()
        .filter(|i| (1..=count).contains(i))
}

fn is_positional(name: &str, count: usize) -> bool {
    positional_index(name, count).is_some()
}

/// Builds the row in model order from named or positional fields.
fn assemble<V>(
    mut given: Given<'_, V>,
    names: &[String],
    parse: impl Fn(V) -> Result<f64, String>,
) -> Result<FeatureRow, FeatureError> {
    let count = names.len();
    let is_name = |k: &str| names.iter().any(|n| n == k);
    let mut fields = given.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| *k);
    let uses_positional = fields
        .clone()
        .any(|k| is_positional(k, count) && !is_name(k));
    let uses_named = fields.any(|k| is_name(k) && !is_positional(k, count));
    if uses_positional && uses_named {
        return Err(FeatureError::MixedForms);
    }
    let mut values = Vec::with_capacity(count);
    let mut missing = Vec::new();
    for (i, feature) in names.iter().enumerate() {
        // Positional names are matched by their number: formatting `f{i}` for every feature
        // of every request cost more than the rest of the row.
        let raw = if uses_positional {
            take(&mut given, |k| positional_index(k, count) == Some(i + 1))
        } else {
            take(&mut given, |k| k == feature)
        };
        let name = || {
            if uses_positional {
                format!("f{}", i + 1)
            } else {
                feature.clone()
            }
        };
        match raw {
            Some(raw) => {
                let value = parse(raw).map_err(|value| FeatureError::NotANumber {
                    name: name(),
                    value,
                })?;
                if !value.is_finite() {
                    return Err(FeatureError::NotFinite { name: name() });
                }
                values.push(value);
            }
            None => missing.push(name()),
        }
    }
    let unknown: BTreeSet<String> = given
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| (*k).chars().take(64).collect())
        .collect();
    if !unknown.is_empty() {
        return Err(FeatureError::Unknown(unknown.into_iter().collect()));
    }
    if !missing.is_empty() {
        return Err(FeatureError::Missing(missing));
    }
    Ok(FeatureRow(values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> Vec<String> {
        ["txn_amount", "amount_spent_past_mo", "txns_same_merchant"]
            .map(String::from)
            .to_vec()
    }

    fn query(s: &str) -> Vec<(Cow<'_, str>, Cow<'_, str>)> {
        query_pairs(s)
    }

    #[test]
    fn query_pairs_are_decoded_and_borrowed_unless_decoding_changed_them() {
        let pairs = query_pairs("f1=0.5&card%5Fid=a+b%21&&f2=&f3");
        let got: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (&**k, &**v)).collect();
        assert_eq!(
            got,
            [("f1", "0.5"), ("card_id", "a b!"), ("f2", ""), ("f3", "")]
        );
        assert!(matches!(pairs[0], (Cow::Borrowed(_), Cow::Borrowed(_))));
        assert!(matches!(pairs[1], (Cow::Owned(_), Cow::Owned(_))));
    }

    #[test]
    fn positional_and_named_forms_give_the_same_row() {
        let (a, _) = row_from_query(&query("f1=0.3&f2=0.4&f3=0.3"), &names()).unwrap();
        let (b, key) = row_from_query(
            &query("txns_same_merchant=0.3&txn_amount=0.3&amount_spent_past_mo=0.4&card_id=c9"),
            &names(),
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.values(), [0.3, 0.4, 0.3]);
        assert_eq!(key.as_deref(), Some("c9"));
    }

    #[test]
    fn every_bad_query_is_named() {
        let cases = [
            ("f1=0.3&f2=0.4", "missing feature(s): f3"),
            (
                "",
                "missing feature(s): txn_amount, amount_spent_past_mo, txns_same_merchant",
            ),
            ("f1=1&f2=2&f3=3&f4=4", "unknown field(s): f4"),
            ("f1=1&f2=2&f3=3&color=red", "unknown field(s): color"),
            ("f1=abc&f2=2&f3=3", "feature f1 is not a number: \"abc\""),
            ("f1=NaN&f2=2&f3=3", "feature f1 must be a finite number"),
            ("f1=inf&f2=2&f3=3", "feature f1 must be a finite number"),
            (
                "f1=-Infinity&f2=2&f3=3",
                "feature f1 must be a finite number",
            ),
            ("f1=1&f1=2&f2=2&f3=3", "field f1 is given more than once"),
            ("f1=1&amount_spent_past_mo=2&f3=3", "not both"),
            ("f1=1&f2=2&f3=3&card_id=", "card_id must be"),
        ];
        for (q, expected) in cases {
            let err = row_from_query(&query(q), &names()).unwrap_err().to_string();
            assert!(err.contains(expected), "{q}: {err}");
        }
    }

    #[test]
    fn only_the_exact_positional_spellings_are_positional() {
        for (name, positional) in [
            ("f1", true),
            ("f3", true),
            ("f4", false),
            ("f0", false),
            ("f01", false),
            ("f", false),
            ("f+1", false),
            ("g1", false),
            ("f18446744073709551616", false),
        ] {
            assert_eq!(is_positional(name, 3), positional, "{name}");
        }
    }

    #[test]
    fn the_first_repeated_field_is_named_however_long_the_query() {
        let mut q = (0..100).map(|i| format!("x{i}=1")).collect::<Vec<_>>();
        q.push("x7=2".to_owned());
        q.push("x3=2".to_owned());
        let text = q.join("&");
        let long = query(&text);
        assert_eq!(first_duplicate(&long), Some("x7"));
        assert_eq!(first_duplicate(&long[90..]), None);
        let short = query("a=1&b=2&b=3&a=4");
        assert_eq!(first_duplicate(&short), Some("b"));
    }

    #[test]
    fn json_rows_accept_arrays_and_objects() {
        let v = serde_json::json!([1.0, 2, 3.5]);
        assert_eq!(
            row_from_json(&v, &names()).unwrap().0.values(),
            [1.0, 2.0, 3.5]
        );
        let v = serde_json::json!({"txn_amount": 1, "amount_spent_past_mo": 2, "txns_same_merchant": 3, "user_id": 42});
        let (row, key) = row_from_json(&v, &names()).unwrap();
        assert_eq!(row.values(), [1.0, 2.0, 3.0]);
        assert_eq!(key.as_deref(), Some("42"));
        for (bad, expected) in [
            (serde_json::json!([1, 2]), "expected 3 features, got 2"),
            (
                serde_json::json!([1, "2", 3]),
                "amount_spent_past_mo is not a number",
            ),
            (serde_json::json!("row"), "a row must be"),
            (
                serde_json::json!({"f1": 1, "f2": 2, "f3": null}),
                "f3 is not a number",
            ),
            (
                serde_json::json!({"f1": 1, "f2": 2, "f3": 3, "card_id": [1]}),
                "card_id must be",
            ),
        ] {
            let err = row_from_json(&bad, &names()).unwrap_err().to_string();
            assert!(err.contains(expected), "{bad}: {err}");
        }
    }
}
