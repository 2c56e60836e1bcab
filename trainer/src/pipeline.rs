//! What every training run does after fitting, the same for every trainer: find the
//! `production` champion, score it and the challenger on the held-out rows the champion never
//! trained on, let the [`gate`](crate::gate) decide, publish the challenger with the decision,
//! and move `production` if it won.
//!
//! A trainer supplies the model-specific part as a [`Challenger`]: which artifact kinds a
//! champion may have, the keys of its held-out rows, and how to score both models on a subset
//! of them. Everything else — which rows are shared ([`HeldOutRows`]), failing closed, the
//! compare-and-swap promotion — lives here once.

use std::sync::Arc;

use secrecy::SecretString;
use serde::Serialize;
use serde::de::DeserializeOwned;
use suite_models::artifact::{EncodedArtifact, ModelKind};
use suite_models::model_id::{AliasName, ModelName, ModelVersion};
use suite_settings::Env;
use suite_storage::registry::manifest::{
    GateDecision, GateOutcome, HeldOutRule, Manifest, NewVersion,
};
use suite_storage::registry::{Change, Registry};
use suite_storage::store::{ConditionalWrites, ObjectStore, StoreLocation};

use crate::Error;
use crate::gate::{ChampionScore, GatePolicy};
use crate::progress::Progress;
use crate::registry_client::{ModelRegistry, MoveOutcome, RegistryClient};
use crate::split::{HeldOutRows, RowKey};

/// What a training run needs from its environment.
#[derive(Clone)]
pub struct Context {
    /// Where champions are read and models published: the registry service, or the store.
    pub registry: ModelRegistry,
    /// Recorded as who published and who moved aliases when publishing straight into a store;
    /// through the registry service, the registry records the credential's identity instead.
    pub actor: String,
    pub progress: Progress,
}

/// How long a run waits for `REGISTRY_URL`'s `/readyz` before giving up (exit code 4): long
/// enough for a registry started beside the trainer to read its manifests, short enough that a
/// wrong URL fails within a minute. `0` skips the wait.
pub const DEFAULT_REGISTRY_WAIT_SECONDS: u64 = 60;

impl Context {
    /// Reads `REGISTRY_URL` and `REGISTRY_TOKEN` (publish through the registry service; the
    /// token's credential needs the `read`, `publish` and `promote` scopes), or
    /// else `MODEL_STORE` and the S3 variables (publish into the store, see
    /// [`require_one_writer`]), and `TRAINER_ACTOR`. Through the registry it first waits up to
    /// `REGISTRY_WAIT_SECONDS` for the registry's `/readyz`.
    ///
    /// # Errors
    /// Every bad variable, by name; [`Error::Usage`] for an S3 store that ignores conditional
    /// writes without `TRAINER_SOLE_WRITER=true`; store errors from probing it.
    pub async fn from_env(env: &mut Env) -> Result<Self, Error> {
        let actor = env
            .optional_string("TRAINER_ACTOR")
            .unwrap_or_else(default_actor);
        let registry = match env.optional_string("REGISTRY_URL") {
            Some(url) => {
                if !(url.starts_with("http://") || url.starts_with("https://")) {
                    env.problem("REGISTRY_URL", "must be an http:// or https:// URL");
                }
                let Some(token) = env.optional_string("REGISTRY_TOKEN") else {
                    return Err(Error::Usage(
                        "REGISTRY_TOKEN is required when REGISTRY_URL is set".into(),
                    ));
                };
                let wait = env.parse_or("REGISTRY_WAIT_SECONDS", DEFAULT_REGISTRY_WAIT_SECONDS);
                let client = RegistryClient::new(&url, SecretString::from(token));
                if wait > 0 {
                    client
                        .wait_ready(std::time::Duration::from_secs(wait))
                        .await?;
                }
                ModelRegistry::Api(client)
            }
            None => {
                let sole_writer = env.parse_or("TRAINER_SOLE_WRITER", false);
                let Some(location) = StoreLocation::from_env(env) else {
                    return Err(Error::Usage("MODEL_STORE is invalid".into()));
                };
                let store = ObjectStore::open(&location).await?;
                require_one_writer(&store, sole_writer).await?;
                ModelRegistry::Store(Registry::new(store))
            }
        };
        Ok(Self {
            registry,
            actor,
            progress: Progress::for_stderr(),
        })
    }
}

/// Publishing straight into a store is safe for many writers only when its create-new is
/// atomic; on a store that ignores `If-None-Match` (Garage) two trainers, or a trainer and the
/// registry service, could take the same version number or overwrite each other's alias
/// revisions. So the store is probed once per run, before any training, and a store that
/// ignores conditional writes is refused unless the operator says this trainer is its only
/// writer (`TRAINER_SOLE_WRITER=true`, which skips the probe). A local directory always
/// passes (`link(2)`), untried.
///
/// # Errors
/// [`Error::Usage`] (exit code 2: configuration) naming `REGISTRY_URL`; store errors (4).
pub async fn require_one_writer(store: &ObjectStore, sole_writer: bool) -> Result<(), Error> {
    if sole_writer {
        tracing::info!(store = %store.describe(), "TRAINER_SOLE_WRITER is set: publishing straight into the store without probing it.");
        return Ok(());
    }
    match store.probe_conditional_writes().await? {
        ConditionalWrites::Honoured => Ok(()),
        ConditionalWrites::Ignored => Err(Error::Usage(format!(
            "the model store {} ignores conditional writes (If-None-Match), so publishing \
             straight into it is safe only for its one writer: set REGISTRY_URL (and \
             REGISTRY_TOKEN) to publish through the registry service, or set \
             TRAINER_SOLE_WRITER=true if this trainer is the only process that ever writes \
             to the store (no registry service, no other trainer)",
            store.describe()
        ))),
    }
}

fn default_actor() -> String {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "localhost".into());
    format!("trainer@{host}")
}

/// The model-specific part of a run, implemented by each trainer's fitted model.
pub trait Challenger: Send + Sync + 'static {
    /// What a champion's artifact decodes into.
    type Champion: DeserializeOwned + Send + 'static;

    /// The artifact kinds a comparable champion may have.
    fn champion_kinds(&self) -> &'static [ModelKind];

    /// The split keys of the challenger's held-out rows, in order.
    fn held_out_keys(&self) -> &[RowKey];

    /// Scores the champion and the challenger on the held-out rows `rows` (indices into
    /// [`Challenger::held_out_keys`]): `(champion, challenger)`.
    ///
    /// # Errors
    /// Why the champion cannot be compared (other features, other feedback, one class only in
    /// the rows, a score that is not a number), in a sentence for the gate's record.
    fn compare(
        &self,
        manifest: &Manifest,
        champion: Self::Champion,
        rows: &[usize],
    ) -> Result<(f64, f64), String>;
}

/// A challenger ready to publish: its draft manifest, the rule that chose its held-out rows,
/// its artifact, its score on all its held-out rows, and the gate's policy. The pipeline fills
/// the draft's `gate` and `held_out`.
pub struct Candidate {
    pub draft: NewVersion,
    pub held_out: HeldOutRule,
    pub artifact: EncodedArtifact,
    pub score: f64,
    pub policy: GatePolicy,
}

/// What a training run published.
#[derive(Debug, Clone, Serialize)]
pub struct Publication {
    pub model: ModelName,
    pub version: ModelVersion,
    pub sha256: String,
    /// True when `production` now points to this version.
    pub promoted: bool,
    pub gate: GateDecision,
}

/// Moves `production` of `model` to `version`, only if it still points at `expected` (what it
/// was before publishing), as the run's actor with `reason`. A conflict means someone moved it
/// meanwhile: the caller leaves it alone.
///
/// # Errors
/// Registry errors other than the conflict.
pub(crate) async fn move_production(
    ctx: &Context,
    model: &ModelName,
    version: ModelVersion,
    expected: Option<ModelVersion>,
    reason: &str,
) -> Result<MoveOutcome, Error> {
    let change = Change {
        actor: &ctx.actor,
        reason: Some(reason),
    };
    ctx.registry
        .move_alias(model, &AliasName::production(), version, expected, &change)
        .await
}

/// Scores the champion, decides, publishes, promotes (see the module doc).
///
/// # Errors
/// Registry errors from publishing; [`Error::GateFailedClosed`] after publishing the challenger
/// as a candidate when the champion could not be compared. A lost alias race is not an error
/// (it is logged, and the result says not promoted).
pub async fn gate_and_publish<C: Challenger>(
    ctx: &Context,
    challenger: Arc<C>,
    candidate: Candidate,
) -> Result<Publication, Error> {
    let Candidate {
        mut draft,
        held_out,
        artifact,
        score,
        policy,
    } = candidate;
    let model = draft.model.clone();
    let (production, champion) = score_champion(&ctx.registry, &model, challenger, &held_out).await;
    let decision = policy.decide(score, &champion);
    draft.gate = Some(decision.clone());
    draft.held_out = Some(held_out);
    let manifest = ctx.registry.publish(draft, artifact).await?;
    let mut promoted = false;
    if decision.promoted {
        let reason = format!("quality gate: {}", decision.reason.as_deref().unwrap_or(""));
        match move_production(ctx, &model, manifest.version, production, &reason).await? {
            MoveOutcome::Moved => promoted = true,
            MoveOutcome::Conflict(why) => {
                tracing::warn!(reason = %why, "Production moved while training; leaving it alone.");
            }
        }
    }
    tracing::info!(
        %model,
        version = %manifest.version,
        promoted,
        outcome = ?decision.outcome,
        reason = decision.reason.as_deref().unwrap_or(""),
        "Published."
    );
    if decision.outcome == Some(GateOutcome::ChampionUnavailable) {
        return Err(Error::GateFailedClosed {
            model,
            version: manifest.version,
            reason: decision.reason.unwrap_or_default(),
        });
    }
    Ok(Publication {
        model: manifest.model,
        version: manifest.version,
        sha256: manifest.artifact.sha256.to_string(),
        promoted,
        gate: decision,
    })
}

/// The version `production` held (the promotion's compare-and-swap expectation) and the
/// comparison, or why there is none.
async fn score_champion<C: Challenger>(
    registry: &ModelRegistry,
    model: &ModelName,
    challenger: Arc<C>,
    held_out: &HeldOutRule,
) -> (Option<ModelVersion>, ChampionScore) {
    let unavailable = |version, reason: String| ChampionScore::Unavailable { version, reason };
    let version = match registry
        .resolve_alias(model, &AliasName::production())
        .await
    {
        Ok(Some(v)) => v,
        Ok(None) => {
            tracing::info!(%model, "No production model yet; the challenger is the first.");
            return (None, ChampionScore::None);
        }
        Err(e) => return (None, unavailable(None, suite_models::error_chain(&e))),
    };
    let fail = |reason: String| (Some(version), unavailable(Some(version), reason));
    let (manifest, champion) = match registry
        .load::<C::Champion>(model, version, challenger.champion_kinds())
        .await
    {
        Ok(loaded) => loaded,
        Err(e) => return fail(suite_models::error_chain(&e)),
    };
    let shared = match HeldOutRows::between(held_out, manifest.held_out.as_ref()) {
        Ok(shared) => shared,
        Err(reason) => return fail(reason),
    };
    let scoring = tokio::task::spawn_blocking(move || {
        let rows: Vec<usize> = challenger
            .held_out_keys()
            .iter()
            .enumerate()
            .filter(|(_, key)| shared.contains(key))
            .map(|(i, _)| i)
            .collect();
        if rows.is_empty() {
            return Err(
                "none of the challenger's held-out rows was held out from the \
                        champion too"
                    .to_owned(),
            );
        }
        let (champion, ours) = challenger.compare(&manifest, champion, &rows)?;
        if !(champion.is_finite() && ours.is_finite()) {
            return Err(format!(
                "the scores on the shared rows are not numbers (champion {champion}, \
                 challenger {ours})"
            ));
        }
        Ok((champion, ours, rows.len() as u64))
    })
    .await;
    match scoring {
        Ok(Ok((champion, challenger, rows))) => {
            tracing::info!(%model, %version, champion, challenger, rows, "Scored the champion on rows held out from both.");
            (
                Some(version),
                ChampionScore::Compared {
                    version,
                    champion,
                    challenger,
                    rows,
                },
            )
        }
        Ok(Err(reason)) => fail(reason),
        Err(e) => fail(format!("the scoring task failed: {e}")),
    }
}
