//! Manifests and registration drafts as JSON from the store or a client: parse, validate, and
//! serialise back (a stored manifest must always be writable and readable again).
#![no_main]

use libfuzzer_sys::fuzz_target;
use suite_models::manifest::{Manifest, NewVersion};

fuzz_target!(|bytes: &[u8]| {
    if let Ok(draft) = serde_json::from_slice::<NewVersion>(bytes) {
        let valid = draft.validate().is_ok();
        let json = serde_json::to_vec(&draft).expect("a parsed draft serialises");
        let again: NewVersion = serde_json::from_slice(&json).expect("a serialised draft parses");
        assert_eq!(
            again.validate().is_ok(),
            valid,
            "validation changed across a round trip"
        );
    }
    if let Ok(manifest) = serde_json::from_slice::<Manifest>(bytes) {
        // A manifest carries every NewVersion field; validate those the same way.
        let draft = NewVersion {
            model: manifest.model.clone(),
            run_id: manifest.run_id,
            algorithm: manifest.algorithm.clone(),
            parameters: manifest.parameters.clone(),
            feature_schema: manifest.feature_schema.clone(),
            training_data: manifest.training_data.clone(),
            metrics: manifest.metrics.clone(),
            trainer_version: manifest.trainer_version.clone(),
            created_by: manifest.created_by.clone(),
            gate: manifest.gate.clone(),
            held_out: manifest.held_out.clone(),
            drift: manifest.drift.clone(),
        };
        let _ = draft.validate();
        let json = serde_json::to_vec(&manifest).expect("a parsed manifest serialises");
        let _: Manifest = serde_json::from_slice(&json).expect("a serialised manifest parses");
    }
});
