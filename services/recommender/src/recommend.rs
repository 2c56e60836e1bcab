//! The recommendation use cases, free of HTTP: what to recommend to whom, and why.

use serde::Serialize;
use shared_lib::models::als::{Feedback, Filter, Scored, ServingAls};

use crate::clicks::Click;
use crate::error::Error;
use crate::ids::{Allow, Exclude, IdList, ItemId, UserId};
use crate::model::{ItemKeys, Recommender};

/// What to do for a user the model has never seen and who has no recent clicks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColdStart {
    /// The most popular items, marked as such.
    #[default]
    Popular,
    /// Nothing (Spark's `coldStartStrategy = "drop"`).
    Drop,
}

/// A click's default strength: a top rating for explicit models, one interaction for implicit.
const DEFAULT_EXPLICIT_CLICK: f32 = 5.0;
const DEFAULT_IMPLICIT_CLICK: f32 = 1.0;

/// How many items to answer with: 1 to the service's `MAX_N`, 10 when the request does not say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TopN(usize);

impl TopN {
    /// What a request without `n` gets.
    const DEFAULT: usize = 10;

    /// The request's `n` (or the default), bounded by `max_n`: a setting, so `n` is parsed here
    /// rather than by the deserializer.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when `n` is outside `1..=max_n`.
    pub fn new(requested: Option<usize>, max_n: usize) -> Result<Self, Error> {
        let n = requested.unwrap_or(Self::DEFAULT);
        if n == 0 || n > max_n {
            return Err(Error::InvalidRequest(format!(
                "n must be from 1 to {max_n}, not {n}"
            )));
        }
        Ok(Self(n))
    }

    pub fn get(self) -> usize {
        self.0
    }
}

/// The request's options, in ids as the storefront knows them.
#[derive(Debug, Clone)]
pub struct Options {
    pub n: TopN,
    /// Never recommend these (out of stock, in the basket). Unknown ids are ignored.
    pub exclude: IdList<Exclude>,
    /// Recommend only among these, when given. Unknown ids are ignored.
    pub allow: Option<IdList<Allow>>,
    pub cold_start: ColdStart,
}

/// How the list was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// The user's trained factors.
    Als,
    /// Factors solved from the user's training items plus recent clicks.
    FoldIn,
    /// Cold start: popular items.
    Popular,
    /// Cold start with `drop`: no items.
    None,
}

#[derive(Debug, Clone, Serialize)]
pub struct Item {
    pub item_id: String,
    pub score: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Recommendations {
    pub user_id: UserId,
    pub strategy: Strategy,
    pub cold_start: bool,
    pub items: Vec<Item>,
}

fn indices(model: &ServingAls, ids: &[ItemId]) -> Vec<u32> {
    ids.iter()
        .filter_map(|id| model.item_index(id.as_str()))
        .collect()
}

fn items(model: &ServingAls, scored: Vec<Scored>) -> Vec<Item> {
    scored
        .into_iter()
        .map(|s| Item {
            item_id: model.item_id(s.item).to_owned(),
            score: s.score,
        })
        .collect()
}

/// The request's `exclude` and `allow` ids as item indices; unknown ids are dropped.
struct Filters {
    exclude: Vec<u32>,
    allow: Option<Vec<u32>>,
}

impl Filters {
    fn new(model: &ServingAls, opts: &Options) -> Self {
        Self {
            exclude: indices(model, opts.exclude.as_slice()),
            allow: opts.allow.as_ref().map(|a| indices(model, a.as_slice())),
        }
    }

    fn filter(&self) -> Filter<'_> {
        Filter {
            exclude: &self.exclude,
            allow: self.allow.as_deref(),
        }
    }
}

fn answer(
    model: &ServingAls,
    user_id: &UserId,
    strategy: Strategy,
    scored: Vec<Scored>,
) -> Recommendations {
    Recommendations {
        user_id: user_id.clone(),
        cold_start: matches!(strategy, Strategy::Popular | Strategy::None),
        strategy,
        items: items(model, scored),
    }
}

/// Recommendations for many users, each with their recent clicks; the same answers as
/// a single user's request. Users the model knows and who have not clicked since are scored
/// together by the batched scan ([`ServingAls::recommend_many`]), the rest one by one.
pub fn recommend_many(
    recommender: &Recommender,
    users: &[(UserId, Vec<Click>)],
    opts: &Options,
) -> Vec<Recommendations> {
    let Recommender(model, keys, ..) = recommender;
    let filters = Filters::new(model, opts);
    let (positions, known): (Vec<usize>, Vec<u32>) = users
        .iter()
        .enumerate()
        .filter(|(_, (_, clicks))| clicks.is_empty())
        .filter_map(|(pos, (id, _))| Some((pos, model.user_index(id.as_str())?)))
        .unzip();
    let mut batched = model
        .recommend_many(&known, opts.n.get(), filters.filter())
        .into_iter();
    let mut positions = positions.into_iter().peekable();
    users
        .iter()
        .enumerate()
        .map(|(pos, (user_id, clicks))| {
            match positions.next_if_eq(&pos).and_then(|_| batched.next()) {
                Some(scored) => answer(model, user_id, Strategy::Als, scored),
                None => recommend_one(model, keys, user_id, clicks, opts, &filters),
            }
        })
        .collect()
}

/// One user's recommendations, given their recent clicks.
fn recommend_one(
    model: &ServingAls,
    keys: &ItemKeys,
    user_id: &UserId,
    clicks: &[Click],
    opts: &Options,
    filters: &Filters,
) -> Recommendations {
    let filter = filters.filter();
    let als = model.model();
    let default_weight = match als.feedback {
        Feedback::Explicit => DEFAULT_EXPLICIT_CLICK,
        Feedback::Implicit => DEFAULT_IMPLICIT_CLICK,
    };
    let clicked: Vec<(u32, f32)> = clicks
        .iter()
        .filter_map(|c| Some((keys.index(c.item)?, c.weight.unwrap_or(default_weight))))
        .collect();
    let user = model.user_index(user_id.as_str());
    let (strategy, scored) = match (user, clicked.is_empty()) {
        (Some(u), true) => (Strategy::Als, model.recommend(u, opts.n.get(), filter)),
        (user, false) => {
            // Training items are re-weighted from the model (their ratings are not stored), then
            // the clicks are added and the user's factors solved against the fixed items.
            let seen = user.map(|u| als.seen(u)).unwrap_or_default();
            let mut interactions: Vec<(u32, f32)> = seen
                .iter()
                .map(|&i| match als.feedback {
                    Feedback::Explicit => (i, user.map_or(0.0, |u| als.predict(u, i))),
                    Feedback::Implicit => (i, DEFAULT_IMPLICIT_CLICK),
                })
                .collect();
            interactions.extend_from_slice(&clicked);
            let vector = model.fold_in(&interactions);
            let mut excluded: Vec<u32> = seen.to_vec();
            excluded.extend(clicked.iter().map(|(i, _)| *i));
            (
                Strategy::FoldIn,
                model.recommend_vector(&vector, opts.n.get(), &excluded, filter),
            )
        }
        (None, true) => match opts.cold_start {
            ColdStart::Popular => (Strategy::Popular, model.popular(opts.n.get(), &[], filter)),
            ColdStart::Drop => (Strategy::None, Vec::new()),
        },
    };
    answer(model, user_id, strategy, scored)
}

/// The items nearest to `item_id` in factor space.
///
/// # Errors
/// [`Error::UnknownItem`].
pub fn similar(model: &ServingAls, item_id: &ItemId, opts: &Options) -> Result<Vec<Item>, Error> {
    let item = model
        .item_index(item_id.as_str())
        .ok_or_else(|| Error::UnknownItem(item_id.to_string()))?;
    let filters = Filters::new(model, opts);
    Ok(items(
        model,
        model.similar_items(item, opts.n.get(), filters.filter()),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn n_is_from_1_to_max_n_and_10_when_not_given() {
        assert_eq!(TopN::new(None, 100).unwrap().get(), 10);
        assert_eq!(TopN::new(Some(1), 100).unwrap().get(), 1);
        assert_eq!(TopN::new(Some(100), 100).unwrap().get(), 100);
        let refused = [
            (Some(0), 100, "n must be from 1 to 100, not 0"),
            (Some(101), 100, "n must be from 1 to 100, not 101"),
            // The default is bounded too: a service with MAX_N below 10 needs an explicit n.
            (None, 5, "n must be from 1 to 5, not 10"),
        ];
        for (requested, max_n, message) in refused {
            let error = TopN::new(requested, max_n).unwrap_err();
            assert_eq!(error.to_string(), message, "{requested:?} of {max_n}");
        }
    }
}
