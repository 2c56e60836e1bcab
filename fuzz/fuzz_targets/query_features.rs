//! The fraud service's request parsing (`suite_models::features`): query-string pairs
//! (`GET /classify`) and JSON rows (`POST /v1/classify`) against an arbitrary feature schema.
//! A returned row must have exactly the schema's length and only finite values.
#![no_main]

use libfuzzer_sys::{arbitrary, fuzz_target};

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    /// The model's feature names; the real schema when the flag is set.
    real_schema: bool,
    names: Vec<String>,
    pairs: Vec<(String, String)>,
    json: String,
}

const REAL: [&str; 3] = ["txn_amount", "amount_spent_past_mo", "txns_same_merchant"];

fuzz_target!(|input: Input| {
    let names: Vec<String> = if input.real_schema {
        REAL.iter().map(|s| (*s).to_owned()).collect()
    } else {
        input.names
    };
    let _ = suite_models::features::key_in_query(&input.pairs);
    if let Ok((row, key)) = suite_models::features::row_from_query(&input.pairs, &names) {
        check(row.values(), &names, key.as_deref());
    }
    if let Ok(value) = serde_json::from_str::<serde_json::Value>(&input.json) {
        let _ = suite_models::features::key_in_json(&value);
        if let Ok((row, key)) = suite_models::features::row_from_json(&value, &names) {
            check(row.values(), &names, key.as_deref());
        }
    }
});

fn check(values: &[f64], names: &[String], key: Option<&str>) {
    assert_eq!(
        values.len(),
        names.len(),
        "row length differs from the schema"
    );
    assert!(
        values.iter().all(|v| v.is_finite()),
        "non-finite feature in {values:?}"
    );
    if let Some(key) = key {
        assert!(!key.is_empty() && key.len() <= 128, "bad A/B key {key:?}");
    }
}
