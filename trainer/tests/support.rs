//! What the trainer's test modules share.

#![allow(clippy::unwrap_used)] // Tests: a failed unwrap is a failed test.

use shared_lib::models::als::{AlsModel, Search, ServingAls};

/// `model` served in ann mode, as `RECOMMEND_SEARCH=ann` serves it: the probe stored with its
/// index (`probe: 0`), candidates oversampled 10 times.
pub fn served_in_ann_mode(model: AlsModel) -> ServingAls {
    model
        .prepare()
        .unwrap()
        .with_search(Search::Ann {
            probe: 0,
            oversample: 10,
        })
        .unwrap()
}
