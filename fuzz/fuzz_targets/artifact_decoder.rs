//! The model artifact envelope on arbitrary bytes: `inspect_artifact_head` (what a streamed
//! upload checks from its first bytes) and `inspect_artifact`, then `decode_artifact_from` (the
//! streamed decode the services load with, which meets the bytes before their digest is known)
//! into both served model types, followed by what the services do at load time (validate and
//! compile, warm up). The digest and size given are the bytes' own, so the fuzzer gets past the
//! sha256 check and into the MessagePack decoding. Errors are fine; a panic is a finding, and
//! so is a validated fraud model scoring something that is not a probability, and so is the
//! whole-artifact `decode_artifact` (for bytes already in memory) disagreeing with the streamed
//! one on whether the bytes are a model.
#![no_main]

use libfuzzer_sys::fuzz_target;
use suite_models::als::{AlsModel, Filter, Search};
use suite_models::artifact::{
    ArtifactDigest, ModelKind, decode_artifact, decode_artifact_from, inspect_artifact,
    inspect_artifact_head,
};
use suite_models::forest::FraudModel;
use suite_models::manifest::ArtifactRef;

fuzz_target!(|bytes: &[u8]| {
    let _ = inspect_artifact_head(bytes);
    let _ = inspect_artifact(bytes);
    let digest = ArtifactDigest::of(bytes);
    let stored = |kind| ArtifactRef {
        key: "fuzz/artifacts/input.msgpack".into(),
        size: bytes.len() as u64,
        sha256: digest.clone(),
        kind,
        format_version: 1,
    };

    for kind in [ModelKind::FraudRandomForest, ModelKind::FraudDecisionTree] {
        let streamed = decode_artifact_from::<FraudModel>(bytes, &stored(kind), kind);
        let whole = decode_artifact::<FraudModel>(bytes, &digest, kind);
        assert_eq!(streamed.is_ok(), whole.is_ok(), "{streamed:?} / {whole:?}");
        if let Ok(model) = streamed
            && let Ok(model) = model.compile(None)
        {
            // As services/fraud/src/model.rs: a validated model scores any full row, and the
            // score is a probability (leaves are checked to lie in [0, 1], so their mean does
            // too; a NaN or out-of-range score means validation let a bad leaf through).
            let row = vec![0.0; model.n_features()];
            let p = model.predict_proba(&row);
            assert!((0.0..=1.0).contains(&p), "validated model scored {p}");
        }
    }

    let kind = ModelKind::RecommenderAls;
    let streamed = decode_artifact_from::<AlsModel>(bytes, &stored(kind), kind);
    let whole = decode_artifact::<AlsModel>(bytes, &digest, kind);
    assert_eq!(streamed.is_ok(), whole.is_ok(), "{streamed:?} / {whole:?}");
    if let Ok(model) = streamed
        && let Ok(serving) = model.prepare()
    {
        // As services/recommender/src/model.rs: a prepared model answers without panicking.
        let users = serving.model().n_users();
        let items = serving.model().n_items();
        if users > 0 {
            let _ = serving.recommend(0, 3, Filter::default());
        }
        if items > 0 {
            let _ = serving.similar_items(0, 3, Filter::default());
            let _ = serving.fold_in(&[(0, 1.0)]);
        }
        let _ = serving.popular(3, &[], Filter::default());
        // Ann mode walks the stored graph (or IVF lists): a validated index answers too.
        if let Ok(ann) = serving.with_search(Search::Ann {
            probe: 0,
            oversample: 2,
        }) && users > 0
        {
            let _ = ann.recommend(0, 3, Filter::default());
        }
    }
});
