//! `GET /v1/users/{user_id}/recommendations` and `POST /v1/recommendations` (a user subset).

use std::collections::BTreeSet;
use std::sync::Arc;

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use shared_lib::http::ServedBy;
use shared_lib::models::als::{AnnIndex, take_bytes_read};
use shared_lib::serving::{Loaded, Variant};

use super::{AppState, ListQuery};
use crate::clicks::Click;
use crate::error::Error;
use crate::ids::{Allow, Exclude, IdList, UserId};
use crate::model::Recommender;
use crate::recommend::{ColdStart, Options, Recommendations, TopN, recommend_many};

pub fn configure(cfg: &mut web::ServiceConfig, max_body_bytes: usize) {
    cfg.route(
        "/v1/users/{user_id}/recommendations",
        web::get().to(for_user),
    )
    .service(
        web::resource("/v1/recommendations")
            .app_data(shared_lib::http::json_config(max_body_bytes))
            .route(web::post().to(for_users)),
    );
}

#[derive(Debug, Serialize)]
struct Answer {
    model: String,
    version: u32,
    variant: Variant,
    /// False when the click store could not be read in time: the answer comes from the model
    /// alone, without the user's recent clicks.
    clicks_available: bool,
    #[serde(flatten)]
    recommendations: Recommendations,
}

/// Most users scored one by one (a fold-in and a catalogue scan each: users with clicks) in one
/// piece of scoring work, i.e. under one permit.
const CHUNK_SCANS: usize = 16;
/// Most users in one piece of scoring work; the batched scan works in blocks of 256.
const CHUNK_USERS: usize = 256;

/// A variant's users: who they are, and their recent clicks.
type Group = Vec<(UserId, Vec<Click>)>;

/// Routes each user (A/B is per user), then scores each variant's users on the blocking pool in
/// chunks of at most [`CHUNK_USERS`] users, of whom at most [`CHUNK_SCANS`] need a scan of their
/// own. Each chunk takes one scoring permit and gives it back before the next one is asked for,
/// so a batch of 1,000 users holds at most one permit at a time and single-user requests are
/// served between its chunks; a batch that cannot get a permit in time is refused (503) whole.
/// The shadow, if any, scores the same users afterwards in the shadow runner, off the request's
/// path, and counts one comparison per group: agree when every user's top item is the same.
async fn answers(
    state: &web::Data<AppState>,
    users: Vec<UserId>,
    options: Options,
) -> Result<Vec<Answer>, Error> {
    // Every user's clicks in one read (one Redis round trip), before any routing or scoring.
    let recent = state.clicks.recent(&users).await;
    let mut clicks: Vec<Option<Vec<Click>>> = recent.clicks.into_iter().map(Some).collect();
    let mut groups: Vec<(Arc<Loaded<Recommender>>, Variant, Vec<usize>)> = Vec::new();
    for (pos, user_id) in users.iter().enumerate() {
        let (loaded, variant) = state.slots.route(user_id.as_str()).ok_or(Error::NotReady)?;
        match groups
            .iter_mut()
            .find(|(l, v, _)| Arc::ptr_eq(l, &loaded) && *v == variant)
        {
            Some((_, _, positions)) => positions.push(pos),
            None => groups.push((loaded, variant, vec![pos])),
        }
    }
    let options = Arc::new(options);
    let mut answers: Vec<Option<Answer>> = users.iter().map(|_| None).collect();
    for (loaded, variant, positions) in groups {
        let group: Group = positions
            .iter()
            .map(|&p| {
                let user_clicks = clicks.get_mut(p).and_then(Option::take);
                (users[p].clone(), user_clicks.unwrap_or_default())
            })
            .collect();
        let (recommendations, group) = score_in_chunks(state, &loaded, group, &options).await?;
        record_drift(state, &loaded, variant, &recommendations);
        if let Some(shadow) = state.slots.shadow() {
            let ours: Vec<Option<String>> = recommendations.iter().map(top_item).collect();
            let options = options.clone();
            state.shadow.submit(move || {
                let theirs = recommend_many(&shadow.model, &group, &options);
                Ok(theirs.iter().map(top_item).eq(ours))
            });
        }
        for (pos, recommendations) in positions.into_iter().zip(recommendations) {
            answers[pos] = Some(Answer {
                model: state.slots.model().to_string(),
                version: loaded.manifest.version.get(),
                variant,
                clicks_available: recent.available,
                recommendations,
            });
        }
    }
    Ok(answers.into_iter().flatten().collect())
}

/// Scores `group` chunk by chunk, each under a scoring permit; gives the group back (for the
/// shadow) without copies.
async fn score_in_chunks(
    state: &AppState,
    loaded: &Arc<Loaded<Recommender>>,
    group: Group,
    options: &Arc<Options>,
) -> Result<(Vec<Recommendations>, Group), Error> {
    let mut recommendations = Vec::with_capacity(group.len());
    let mut scored = Group::with_capacity(group.len());
    for chunk in chunks(group) {
        let permit = state.scoring.acquire().await?;
        // The count is per thread: reset, score, read what this chunk's scans read.
        let score = |scoring: &Loaded<Recommender>, chunk: Group, options: &Options| {
            take_bytes_read();
            let ours = recommend_many(&scoring.model, &chunk, options);
            (ours, chunk, take_bytes_read())
        };
        let (ours, chunk, bytes) = if chunk.len() == 1 && walks_a_graph(&loaded.model) {
            score(loaded, chunk, options)
        } else {
            let (scoring, options) = (loaded.clone(), options.clone());
            web::block(move || score(&scoring, chunk, &options))
                .await
                .map_err(|e| Error::Scoring(e.to_string()))?
        };
        drop(permit);
        state.factor_bytes.inc_by(bytes);
        recommendations.extend(ours);
        scored.extend(chunk);
    }
    Ok((recommendations, scored))
}

/// True when one user's answer is a graph walk (ann mode on an HNSW graph): it reads a few
/// thousand rows, about 0.1-0.3 ms at 1M items, less than the hand-off to the blocking pool
/// and back costs a request at c=1, so it runs on the worker. Scans of the catalogue (exact,
/// int8, IVF lists, tens of milliseconds at 1M items) and batches go to the blocking pool.
fn walks_a_graph(model: &Recommender) -> bool {
    model.0.ann_index() == Some(AnnIndex::Hnsw)
}

/// Splits a group, in order, into chunks of at most [`CHUNK_USERS`] users with at most
/// [`CHUNK_SCANS`] users who have clicks.
fn chunks(group: Group) -> Vec<Group> {
    let mut chunks = vec![Group::new()];
    let mut scans = 0;
    for (user, clicks) in group {
        let scan = usize::from(!clicks.is_empty());
        let full = chunks
            .last()
            .is_some_and(|c| c.len() == CHUNK_USERS || scans + scan > CHUNK_SCANS);
        if full {
            chunks.push(Group::new());
            scans = 0;
        }
        scans += scan;
        if let Some(last) = chunks.last_mut() {
            last.push((user, clicks));
        }
    }
    chunks
}

/// Adds the answers to the version's drift windows and sets the gauges (`crate::drift`).
fn record_drift(
    state: &AppState,
    loaded: &Loaded<Recommender>,
    variant: Variant,
    recommendations: &[Recommendations],
) {
    let observed = loaded.model.3.observe(recommendations);
    let version = loaded.manifest.version.to_string();
    let labels = (
        state.slots.model().as_str(),
        version.as_str(),
        variant.as_str(),
    );
    state.drift.record(state.slots.metrics(), labels, &observed);
}

fn top_item(recommendations: &Recommendations) -> Option<String> {
    recommendations.items.first().map(|i| i.item_id.clone())
}

fn record_served(state: &AppState, answers: &[&Answer]) {
    let versions: BTreeSet<String> = answers.iter().map(|a| a.version.to_string()).collect();
    let variants: BTreeSet<&str> = answers.iter().map(|a| a.variant.as_str()).collect();
    ServedBy {
        model: state.slots.model_label(),
        version: versions.into_iter().collect::<Vec<_>>().join(",").into(),
        variant: variants.into_iter().collect::<Vec<_>>().join(",").into(),
    }
    .record();
}

async fn for_user(
    path: web::Path<UserId>,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let user_id = path.into_inner();
    if query.user_id.is_some() {
        return Err(Error::InvalidRequest(
            "user_id is the path, not a query parameter".into(),
        ));
    }
    let options = query.into_inner().options(state.max_n)?;
    let answer = answers(&state, vec![user_id], options)
        .await?
        .pop()
        .ok_or(Error::NotReady)?;
    record_served(&state, &[&answer]);
    Ok(HttpResponse::Ok().json(answer))
}

/// Serialised as a struct, not through `serde_json::Value`, so scores print exactly as in the
/// single-user answer (a `Value` widens f32 to f64 digits).
#[derive(Debug, Serialize)]
struct SubsetAnswer {
    model: String,
    results: Vec<Answer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SubsetRequest {
    users: Vec<UserId>,
    n: Option<usize>,
    #[serde(default)]
    exclude: IdList<Exclude>,
    allow: Option<IdList<Allow>>,
    #[serde(default)]
    cold_start: ColdStart,
}

/// `recommendForUserSubset`: the same answer per user as the GET, for many users in one call.
async fn for_users(
    body: web::Json<SubsetRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, Error> {
    let body = body.into_inner();
    if body.users.is_empty() {
        return Err(Error::InvalidRequest("users must not be empty".into()));
    }
    if body.users.len() > state.max_batch_users {
        return Err(Error::TooManyUsers {
            count: body.users.len(),
            limit: state.max_batch_users,
        });
    }
    let options = Options {
        n: TopN::new(body.n, state.max_n)?,
        exclude: body.exclude,
        allow: body.allow,
        cold_start: body.cold_start,
    };
    let answers = answers(&state, body.users, options).await?;
    record_served(&state, &answers.iter().collect::<Vec<_>>());
    Ok(HttpResponse::Ok().json(SubsetAnswer {
        model: state.slots.model().to_string(),
        results: answers,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clicks::ItemKey;

    fn group(users: usize, clicked: impl Fn(usize) -> bool) -> Group {
        (0..users)
            .map(|i| {
                let clicks = if clicked(i) {
                    vec![Click {
                        item: ItemKey::of("x"),
                        weight: None,
                    }]
                } else {
                    Vec::new()
                };
                (format!("u{i}").parse().unwrap(), clicks)
            })
            .collect()
    }

    fn sizes(chunks: &[Group]) -> Vec<usize> {
        chunks.iter().map(Vec::len).collect()
    }

    #[test]
    fn a_batch_is_cut_into_chunks_bounded_in_users_and_in_scans() {
        assert_eq!(sizes(&chunks(group(1, |_| true))), [1]);
        assert_eq!(sizes(&chunks(group(600, |_| false))), [256, 256, 88]);
        assert_eq!(sizes(&chunks(group(40, |_| true))), [16, 16, 8]);
        // Unclicked users ride along until the scan budget or the user budget is spent.
        let mixed = chunks(group(300, |i| i % 10 == 0));
        assert_eq!(sizes(&mixed), [160, 140]);
        let users: Vec<String> = mixed
            .into_iter()
            .flatten()
            .map(|(u, _)| u.to_string())
            .collect();
        let expected: Vec<String> = (0..300).map(|i| format!("u{i}")).collect();
        assert_eq!(users, expected, "order is kept");
    }
}
