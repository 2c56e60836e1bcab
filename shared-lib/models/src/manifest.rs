//! The manifest: everything known about one published model version, as one JSON document.
//!
//! It is written once, last, after the artifact it names; a version exists exactly when its
//! manifest does. A [`NewVersion`] is what a publisher supplies; the registry adds the version
//! number, the artifact reference and the timestamp.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::Error;
use crate::artifact::{ArtifactDigest, ArtifactHead, ModelKind};
use crate::drift::DriftProfile;
use crate::model_id::{ModelName, ModelVersion};
use crate::object_key::ObjectKey;

/// The type of one input feature.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FeatureType {
    Float,
    Integer,
}

/// One input feature: its name, type and the range seen in training (for validation and drift).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureSpec {
    pub name: String,
    #[serde(rename = "type")]
    pub dtype: FeatureType,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

/// The model's inputs, in the order the model expects them. Empty for models keyed by ids
/// (the recommender) rather than by feature vectors.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeatureSchema {
    pub features: Vec<FeatureSpec>,
}

impl FeatureSchema {
    fn validate(&self) -> Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for f in &self.features {
            if f.name.is_empty()
                || f.name.len() > 64
                || !f
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!(
                    "feature name {:?} must have 1-64 characters of A-Z, a-z, 0-9 and '_'",
                    f.name
                ));
            }
            if !seen.insert(f.name.as_str()) {
                return Err(format!("feature {:?} is listed twice", f.name));
            }
            for bound in [f.min, f.max].into_iter().flatten() {
                if !bound.is_finite() {
                    return Err(format!("feature {:?} has a non-finite bound", f.name));
                }
            }
            if let (Some(min), Some(max)) = (f.min, f.max)
                && min > max
            {
                return Err(format!(
                    "feature {:?} has min {min} above max {max}",
                    f.name
                ));
            }
        }
        Ok(())
    }
}

/// Identifies the training data: its digest, size and where it came from.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataFingerprint {
    /// sha256 of the training input as read.
    pub sha256: String,
    pub rows: u64,
    pub source: String,
}

/// Where the artifact is and how to check it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRef {
    pub key: String,
    pub size: u64,
    pub sha256: ArtifactDigest,
    pub kind: ModelKind,
    pub format_version: u32,
}

impl ArtifactRef {
    /// The reference to the artifact stored at `key`, of sha256 `sha256`, whose envelope
    /// (checked against the whole artifact: its length is the one declared) says `head`.
    pub fn new(key: &ObjectKey, sha256: ArtifactDigest, head: ArtifactHead) -> Self {
        Self {
            key: key.to_string(),
            size: head.declared_size,
            sha256,
            kind: head.kind,
            format_version: head.format_version,
        }
    }
}

/// Which rows a training run held out: a pure function of each row, so a later gate can tell
/// which of its own held-out rows this version never trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum HeldOutRule {
    /// A row is held out when the seeded hash of its key, as a fraction of the hash range, is
    /// below `test_fraction`. The key is the `key_column`'s text, or the row's whole content
    /// when there is no key column.
    Hash {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        key_column: Option<String>,
        test_fraction: f64,
        hash_seed: u64,
        /// The hash function, spelled out so it can never change silently.
        hash: String,
    },
    /// The newest rows are held out: those with a timestamp at or after `cutoff` (Unix time).
    Time { cutoff: i64, test_fraction: f64 },
    /// A separate test file, identified by its sha256; the training file is used whole.
    File { source: String, sha256: String },
}

/// Why the gate decided as it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcome {
    /// No `production` version yet, and the challenger meets the floor.
    FirstModel,
    /// Beats the champion by the margin on rows neither trained on, and meets the floor.
    BeatsChampion,
    /// Does not beat the champion by the margin.
    NotBetter,
    /// Below the absolute floor, whatever the champion.
    BelowFloor,
    /// The champion could not be found, loaded or scored on rows it never saw: any doubt means
    /// no promotion (the run exits non-zero).
    ChampionUnavailable,
}

/// The quality gate's verdict: the challenger against the champion on the same held-out data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GateDecision {
    /// The metric compared, e.g. `roc_auc` or `rmse`.
    pub metric: String,
    /// True when a larger value of the metric is better.
    pub higher_is_better: bool,
    pub champion_version: Option<ModelVersion>,
    /// The champion's score on the rows held out from both models.
    pub champion_score: Option<f64>,
    /// The challenger's score on the rows the decision used: the rows held out from both when
    /// there is a champion, else all its held-out rows.
    pub challenger_score: f64,
    pub min_improvement: f64,
    pub promoted: bool,
    /// The bound even a first model must meet (at least, or at most for lower-is-better).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub floor: Option<f64>,
    /// How many held-out rows both models were scored on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compared_rows: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<GateOutcome>,
    /// The decision in words, for people reading the history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a publisher supplies for a new version.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewVersion {
    pub model: ModelName,
    pub run_id: Uuid,
    pub algorithm: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    #[serde(default)]
    pub feature_schema: FeatureSchema,
    #[serde(default)]
    pub training_data: DataFingerprint,
    #[serde(default)]
    pub metrics: BTreeMap<String, f64>,
    pub trainer_version: String,
    /// Who publishes, e.g. `trainer@cronjob-28911` or a person's name.
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateDecision>,
    /// Which rows of `training_data` were held out from training.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOutRule>,
    /// The held-out rows' score and feature distributions, for drift (PSI) in the servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftProfile>,
}

impl NewVersion {
    /// # Errors
    /// [`Error::InvalidManifest`] naming the first bad field.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |reason: String| Error::InvalidManifest { reason };
        check_text("algorithm", &self.algorithm).map_err(invalid)?;
        check_text("trainer_version", &self.trainer_version).map_err(invalid)?;
        check_actor(&self.created_by).map_err(|r| invalid(format!("created_by {r}")))?;
        self.feature_schema.validate().map_err(invalid)?;
        if let Some(drift) = &self.drift {
            drift
                .validate()
                .map_err(|e| invalid(format!("drift {e}")))?;
        }
        for (name, value) in &self.metrics {
            check_text("metric name", name).map_err(invalid)?;
            if !value.is_finite() {
                return Err(invalid(format!("metric {name:?} is not a finite number")));
            }
        }
        Ok(())
    }
}

/// A published version's manifest, as stored at `models/<model>/versions/<n>/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub model: ModelName,
    pub version: ModelVersion,
    pub run_id: Uuid,
    pub algorithm: String,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub feature_schema: FeatureSchema,
    pub training_data: DataFingerprint,
    pub metrics: BTreeMap<String, f64>,
    pub artifact: ArtifactRef,
    pub trainer_version: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<GateDecision>,
    /// Which rows of `training_data` were held out from training; absent in manifests written
    /// before the rule was recorded (the gate then cannot compare against them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held_out: Option<HeldOutRule>,
    /// The held-out rows' distributions, for drift; absent for versions trained before it was
    /// recorded and for imported models without held-out data.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift: Option<DriftProfile>,
}

impl Manifest {
    /// The manifest a registry writes for `draft`, once it has given it `version` and stored its
    /// artifact.
    pub fn new(draft: NewVersion, version: ModelVersion, artifact: ArtifactRef) -> Self {
        Self {
            model: draft.model,
            version,
            run_id: draft.run_id,
            algorithm: draft.algorithm,
            parameters: draft.parameters,
            feature_schema: draft.feature_schema,
            training_data: draft.training_data,
            metrics: draft.metrics,
            artifact,
            trainer_version: draft.trainer_version,
            created_at: Utc::now(),
            created_by: draft.created_by,
            gate: draft.gate,
            held_out: draft.held_out,
            drift: draft.drift,
        }
    }
}

fn check_text(field: &str, value: &str) -> Result<(), String> {
    if value.trim().is_empty() || value.len() > 128 || value.chars().any(char::is_control) {
        Err(format!(
            "{field} {value:?} must have 1-128 printable characters"
        ))
    } else {
        Ok(())
    }
}

/// Checks a "who" field: 1-128 printable characters.
pub fn check_actor(actor: &str) -> Result<(), String> {
    check_text("actor", actor).map(|_| ())
}

/// Checks a "why" field: at most 1000 printable characters (newlines allowed).
pub fn check_reason(reason: &str) -> Result<(), String> {
    if reason.len() > 1000 || reason.chars().any(|c| c.is_control() && c != '\n') {
        Err("reason must have at most 1000 printable characters".to_owned())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn draft() -> NewVersion {
        NewVersion {
            model: ModelName::parse("fraud").unwrap(),
            run_id: Uuid::new_v4(),
            algorithm: "random_forest".into(),
            parameters: BTreeMap::from([("n_trees".into(), serde_json::json!(100))]),
            feature_schema: FeatureSchema {
                features: vec![FeatureSpec {
                    name: "txn_amount".into(),
                    dtype: FeatureType::Float,
                    min: Some(0.0),
                    max: Some(10_000.0),
                }],
            },
            training_data: DataFingerprint::default(),
            metrics: BTreeMap::from([("roc_auc".into(), 0.97)]),
            trainer_version: "0.1.0".into(),
            created_by: "test".into(),
            gate: None,
            held_out: None,
            drift: None,
        }
    }

    #[test]
    fn a_complete_draft_is_valid() {
        draft().validate().unwrap();
    }

    #[test]
    fn invalid_drafts_name_the_field() {
        type Mutation = Box<dyn Fn(&mut NewVersion)>;
        let cases: Vec<(&str, Mutation)> = vec![
            ("algorithm", Box::new(|d| d.algorithm = " ".into())),
            ("created_by", Box::new(|d| d.created_by = "a\u{7}b".into())),
            (
                "roc_auc",
                Box::new(|d| {
                    d.metrics.insert("roc_auc".into(), f64::NAN);
                }),
            ),
            (
                "listed twice",
                Box::new(|d| {
                    let f = d.feature_schema.features[0].clone();
                    d.feature_schema.features.push(f);
                }),
            ),
            (
                "above max",
                Box::new(|d| d.feature_schema.features[0].min = Some(1e9)),
            ),
            (
                "feature name",
                Box::new(|d| d.feature_schema.features[0].name = "a b".into()),
            ),
        ];
        for (needle, mutate) in cases {
            let mut d = draft();
            mutate(&mut d);
            let err = d.validate().unwrap_err().to_string();
            assert!(err.contains(needle), "expected {needle:?} in {err}");
        }
    }
}
