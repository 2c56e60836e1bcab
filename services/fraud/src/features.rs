//! Turning request input into a row of model features: parse, don't validate.
//!
//! A [`FeatureRow`] holds exactly the model's features, in the model's order, all finite. Two
//! spellings are accepted, as the classic service's clients use positional ones:
//! - positional: `f1`, `f2`, … `fN` where N is the model schema's feature count;
//! - named: the schema's feature names (`txn_amount`, …).
//!
//! Beside features a request may carry `card_id` or `user_id`: the key that picks the A/B variant.

use std::collections::{BTreeSet, HashMap};
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

/// The A/B key of a query, if any (`card_id` first, then `user_id`).
pub fn key_in_query(pairs: &[(String, String)]) -> Option<&str> {
    KEY_FIELDS.iter().find_map(|field| {
        pairs
            .iter()
            .find(|(k, _)| k == field)
            .map(|(_, v)| v.as_str())
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

/// The positional name of feature `i` (0-based): `f1`, `f2`, …
fn positional(i: usize) -> String {
    format!("f{}", i + 1)
}

/// Parses a query string's pairs into a row and an optional A/B key.
///
/// # Errors
/// A [`FeatureError`] naming every missing or unknown field, or the first bad value.
pub fn row_from_query(
    pairs: &[(String, String)],
    names: &[String],
) -> Result<(FeatureRow, Option<String>), FeatureError> {
    let mut given: HashMap<&str, &str> = HashMap::with_capacity(pairs.len());
    for (k, v) in pairs {
        if given.insert(k.as_str(), v.as_str()).is_some() {
            return Err(FeatureError::Duplicate(k.clone()));
        }
    }
    let key = take_key(&mut given, |v| Some((*v).to_owned()))?;
    let row = assemble(given, names, |name, raw: &str| {
        raw.trim()
            .parse::<f64>()
            .map_err(|_| FeatureError::NotANumber {
                name: name.to_owned(),
                value: raw.to_owned(),
            })
    })?;
    Ok((row, key))
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
            let mut given: HashMap<&str, &serde_json::Value> =
                map.iter().map(|(k, v)| (k.as_str(), v)).collect();
            let key = take_key(&mut given, |v| match v {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            })?;
            Ok((assemble(given, names, json_number)?, key))
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

fn take_key<V>(
    given: &mut HashMap<&str, V>,
    as_text: impl Fn(&V) -> Option<String>,
) -> Result<Option<String>, FeatureError> {
    let mut key = None;
    for field in KEY_FIELDS {
        if let Some(v) = given.remove(field) {
            let text = as_text(&v).filter(|t| !t.is_empty() && t.len() <= 128);
            key = Some(text.ok_or_else(|| FeatureError::BadKey(field.to_owned()))?);
        }
    }
    Ok(key)
}

/// Builds the row in model order from named or positional fields.
fn assemble<V>(
    mut given: HashMap<&str, V>,
    names: &[String],
    parse: impl Fn(&str, V) -> Result<f64, FeatureError>,
) -> Result<FeatureRow, FeatureError> {
    let positional_names: Vec<String> = (0..names.len()).map(positional).collect();
    let uses_positional = positional_names
        .iter()
        .any(|p| given.contains_key(p.as_str()) && !names.contains(p));
    let uses_named = names
        .iter()
        .any(|n| given.contains_key(n.as_str()) && !positional_names.contains(n));
    if uses_positional && uses_named {
        return Err(FeatureError::MixedForms);
    }
    let wanted = if uses_positional {
        &positional_names
    } else {
        names
    };
    let mut values = Vec::with_capacity(names.len());
    let mut missing = Vec::new();
    for name in wanted {
        match given.remove(name.as_str()) {
            Some(raw) => {
                let value = parse(name, raw)?;
                if !value.is_finite() {
                    return Err(FeatureError::NotFinite { name: name.clone() });
                }
                values.push(value);
            }
            None => missing.push(name.clone()),
        }
    }
    if !given.is_empty() {
        let unknown: BTreeSet<String> = given
            .keys()
            .map(|k| (*k).chars().take(64).collect())
            .collect();
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

    fn query(s: &str) -> Vec<(String, String)> {
        s.split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (k.to_owned(), v.to_owned())
            })
            .collect()
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
