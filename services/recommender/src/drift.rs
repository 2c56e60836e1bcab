//! Drift as a number for the recommender (issue #17): the PSI of the top item's score and the
//! share of cold-start answers over the last [`DRIFT_WINDOW`] answers of a loaded version.
//!
//! - **Top-item score.** The trainer records in the manifest's `drift` the distribution of the
//!   score the model gives its #1 item for each held-out user it knows (no features). Each
//!   answer served from the model (strategy `als` or `fold_in`, with at least one item) adds
//!   its first item's score to the version's [`DriftTracker`]; every [`PSI_EVERY`] such
//!   answers, once [`PSI_MIN_ROWS`] are in the window, `model_score_psi{model,version,variant}`
//!   is set, the same family as the fraud service's.
//! - **Cold-start share.** Every answer, one per user (a batch of 100 users counts 100), adds a
//!   0 (served from the model) or 1 (cold start: `popular` or `none`) to a one-byte-a-row
//!   [`DriftWindow`] of two bins, and `recommender_cold_start_share{model,version}` is set to
//!   the window's share of 1s after each request. There is no reference in the manifest: the
//!   expected share depends on the traffic (new visitors), not on the model; the trainer's
//!   held-out users are mostly users it trained on, so their cold share is close to 0 and would
//!   make a poor baseline. So the share is shown on the dashboard beside the PSI, not alerted on.
//!
//! Cost per request: one lock of each window (uncontended) and O(1) counter updates per user;
//! memory fixed at load, about 20 KB a version.

use std::sync::{Mutex, PoisonError};

use prometheus::{GaugeVec, Opts, Registry};
use shared_lib::http::register_metric;
use shared_lib::serving::ServingMetrics;

use shared_lib::models::drift::{
    DRIFT_WINDOW, DriftProfile, DriftReading, DriftTracker, DriftWindow,
};
#[cfg(doc)]
use shared_lib::models::drift::{PSI_EVERY, PSI_MIN_ROWS};

use crate::recommend::Recommendations;

/// A loaded version's drift state; it lives and dies with the version.
#[derive(Debug)]
pub struct Drift {
    /// The top item's score against the manifest's profile, when it has one.
    scores: Option<DriftTracker>,
    /// Cold start (bin 1) or not (bin 0) of the last [`DRIFT_WINDOW`] answers.
    answers: Mutex<DriftWindow>,
}

/// What one request's answers changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Observed {
    /// The top-item score PSI, when this request completed a [`PSI_EVERY`] period.
    pub reading: Option<DriftReading>,
    /// The share of cold-start answers in the window (0-1).
    pub cold_start_share: f64,
}

impl Drift {
    /// The state for a version whose manifest has `profile` (if any).
    pub fn new(profile: Option<&DriftProfile>) -> Self {
        Self::with_window(profile, DRIFT_WINDOW)
    }

    /// [`Drift::new`] over a window of `capacity` answers.
    pub fn with_window(profile: Option<&DriftProfile>, capacity: usize) -> Self {
        Self {
            scores: profile.map(|p| DriftTracker::with_window(p, &[], capacity)),
            answers: Mutex::new(DriftWindow::new(&[2], capacity)),
        }
    }

    /// Records one request's answers (one per user).
    pub fn observe(&self, answers: &[Recommendations]) -> Observed {
        let mut reading = None;
        if let Some(scores) = &self.scores {
            for answer in answers.iter().filter(|a| !a.cold_start) {
                if let Some(top) = answer.items.first()
                    && let Some(r) = scores.observe(f64::from(top.score), &[])
                {
                    reading = Some(r);
                }
            }
        }
        let mut window = self.answers.lock().unwrap_or_else(PoisonError::into_inner);
        for answer in answers {
            window.push_with(|_| u8::from(answer.cold_start));
        }
        let cold = window.counts(0).get(1).copied().unwrap_or(0);
        let cold_start_share = if window.is_empty() {
            0.0
        } else {
            f64::from(cold) / window.len() as f64
        };
        Observed {
            reading,
            cold_start_share,
        }
    }

    /// Answers in the cold-start window.
    pub fn answers(&self) -> usize {
        self.answers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

/// `recommender_cold_start_share{model,version}`, beside the shared `model_score_psi`.
#[derive(Clone)]
pub struct DriftGauges {
    cold_start_share: GaugeVec,
}

impl DriftGauges {
    /// Registers the gauge in the service's registry.
    ///
    /// # Errors
    /// On a duplicate registration (a bug).
    pub fn register(registry: &Registry) -> Result<Self, shared_lib::Error> {
        let cold_start_share = register_metric(
            registry,
            GaugeVec::new(
                Opts::new(
                    "recommender_cold_start_share",
                    "Share of cold-start answers (popular or none) in the last 10,000 answers \
                     of a version (0-1).",
                ),
                &["model", "version"],
            ),
        )?;
        Ok(Self { cold_start_share })
    }

    /// Sets the gauges from one request's [`Observed`] for `{model, version}` served as
    /// `variant`.
    pub fn record(
        &self,
        metrics: &ServingMetrics,
        (model, version, variant): (&str, &str, &str),
        observed: &Observed,
    ) {
        self.cold_start_share
            .with_label_values(&[model, version])
            .set(observed.cold_start_share);
        if let Some(reading) = &observed.reading {
            metrics.record_drift(model, version, variant, reading);
        }
    }
}

#[cfg(test)]
#[allow(clippy::print_stdout)] // The observed PSIs go to the test's output.
mod tests {
    use shared_lib::models::als::synthetic::{Shape, random_model};
    use shared_lib::models::drift::{Binned, DRIFT_BINS, DriftProfile};

    use super::*;
    use crate::clicks::Click;
    use crate::ids::{IdList, UserId};
    use crate::model::{ItemKeys, Recommender};
    use crate::recommend::{ColdStart, Options, TopN, recommend_many};

    const USERS: usize = 40_000;

    /// A model of [`USERS`] users; the held-out users are `u0..u10000`.
    fn recommender() -> Recommender {
        let serving = random_model(&Shape {
            users: USERS,
            items: 200,
            rank: 8,
            seed: 7,
            seen_min: 0,
            seen_max: 3,
        })
        .prepare()
        .unwrap();
        let keys = ItemKeys::new(&serving);
        let report = crate::model::measure_search(&serving);
        Recommender(serving, keys, report, Drift::new(None))
    }

    fn answers(
        recommender: &Recommender,
        users: impl Iterator<Item = usize>,
    ) -> Vec<Recommendations> {
        let users: Vec<(UserId, Vec<Click>)> = users
            .map(|u| (format!("u{u}").parse().unwrap(), Vec::new()))
            .collect();
        let opts = Options {
            n: TopN::new(Some(5), 5).unwrap(),
            exclude: IdList::default(),
            allow: None,
            cold_start: ColdStart::default(),
        };
        recommend_many(recommender, &users, &opts)
    }

    fn top_score(answer: &Recommendations) -> f64 {
        f64::from(answer.items[0].score)
    }

    /// What the trainer records: the top item's score of each held-out user.
    fn profile(recommender: &Recommender) -> DriftProfile {
        let scores: Vec<f64> = answers(recommender, 0..10_000)
            .iter()
            .map(top_score)
            .collect();
        DriftProfile {
            rows: scores.len() as u64,
            score: Binned::from_sample(&scores, DRIFT_BINS).unwrap(),
            features: Default::default(),
        }
    }

    /// The last PSI a run of answers (in requests of 100 users) produced, and after how many
    /// answers it first passed `threshold`.
    fn serve(drift: &Drift, answers: &[Recommendations], threshold: f64) -> (f64, Option<usize>) {
        let (mut last, mut crossed) = (f64::NAN, None);
        for (i, request) in answers.chunks(100).enumerate() {
            if let Some(reading) = drift.observe(request).reading {
                last = reading.score;
                if reading.score > threshold && crossed.is_none() {
                    crossed = Some((i + 1) * 100);
                }
            }
        }
        (last, crossed)
    }

    #[test]
    fn training_like_traffic_keeps_the_top_score_psi_under_0_05_and_a_shift_passes_0_25() {
        let recommender = recommender();
        let profile = profile(&recommender);
        let drift = Drift::new(Some(&profile));
        // Act 1: a full window of other users of the same population.
        let like_training = answers(&recommender, 10_000..10_000 + DRIFT_WINDOW);
        let (psi, _) = serve(&drift, &like_training, f64::INFINITY);
        println!("{DRIFT_WINDOW} training-like answers: top-score PSI {psi:.4}");
        assert!(psi < 0.05, "training-like PSI {psi}");

        // Act 2: the traffic moves to users whose top score is above the reference's 30th
        // percentile (a population change: only engaged users come).
        let p30 = profile.score.edges[2];
        let shifted: Vec<Recommendations> = answers(&recommender, 20_000..USERS)
            .into_iter()
            .filter(|a| top_score(a) > p30)
            .take(DRIFT_WINDOW)
            .collect();
        assert_eq!(shifted.len(), DRIFT_WINDOW);
        let (psi, crossed) = serve(&drift, &shifted, 0.25);
        let crossed = crossed.expect("the shifted traffic passes 0.25");
        println!(
            "shifted traffic: top-score PSI over 0.25 after {crossed} of {DRIFT_WINDOW} answers; {psi:.3} once the window is all shifted"
        );
        assert!(
            crossed <= DRIFT_WINDOW && psi > 0.25,
            "{crossed} answers, PSI {psi}"
        );
    }

    #[test]
    fn the_cold_start_share_is_the_windows_share_of_cold_answers() {
        let recommender = recommender();
        let drift = Drift::with_window(None, 1000);
        let known = answers(&recommender, 0..900);
        let cold = answers(&recommender, USERS..USERS + 100);
        assert!(cold.iter().all(|a| a.cold_start));
        assert_eq!(drift.observe(&known).cold_start_share, 0.0);
        let observed = drift.observe(&cold);
        assert!(
            (observed.cold_start_share - 0.1).abs() < 1e-12,
            "{observed:?}"
        );
        assert_eq!(observed.reading, None, "no profile, no PSI");
        // The oldest answers leave the window: 500 more cold ones make 600 of 1,000.
        let observed = drift.observe(&answers(&recommender, USERS..USERS + 500));
        assert!(
            (observed.cold_start_share - 0.6).abs() < 1e-12,
            "{observed:?}"
        );
        assert_eq!(drift.answers(), 1000);
    }
}
