//! How a catalogue is searched: the exact f32 scan, or an int8 scan that picks candidates for an
//! exact f32 rescoring, and what each costs in recall and in bytes read.
//!
//! A user's scan reads every item's factors once for `rank` multiply-adds, so it is memory-bound:
//! at 1M items × rank 64 it streams 256 MB of f32 per request. The int8 scan keeps a second copy
//! of the item factors as int8 codes with one f32 scale per item (`rank + 4` bytes an item, about
//! a quarter), scores every item from the codes against an int8 copy of the user vector (exact
//! integer sums; the layout and kernels are in the `int8` module), keeps the best
//! `n × oversample`, and rescores those from the f32 factors with [`dot`], choosing among them
//! exactly as the exact scan chooses (scores descending, ties to the lower index). Answers differ from the exact scan's only
//! when an item of the exact top `n` falls outside the candidates; [`ServingAls::recall_at`]
//! measures how often.
//!
//! The scale is per item: `max |y| / 127`. One item's outlier cannot coarsen another item's codes,
//! so no clipping at a quantile is needed (with a per-dimension scale it would be).
//!
//! Bytes of factors read by the scans are counted per thread ([`take_bytes_read`]), so a service
//! can report what a request read, counted by the code rather than estimated.

use std::cell::Cell;

use serde::Serialize;

use super::ann::{Ann, AnnIndex};
use super::int8::Int8Items;
use super::ivf::AnnLists;
use super::select::Candidates;
use super::{Scored, ServingAls, TopN, dot};
use crate::Error;

/// How [`ServingAls::recommend_vector`] scans the whole catalogue. Allow-lists, similar items and
/// cold start are the same in every mode (they read few items, or need the exact cosine).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case", tag = "mode")]
pub enum Search {
    /// Every item scored from its f32 factors: today's answers, bit for bit.
    #[default]
    Exact,
    /// Candidates from the int8 codes, `n × oversample` of them, rescored in f32.
    Int8 { oversample: usize },
    /// The model's approximate-search index. With a graph (the `hnsw` module): a search keeping
    /// the `probe` best items met (HNSW's `ef`), scored in f32. With IVF lists (the `ivf`
    /// module): candidates from the int8 codes of the `probe` lists nearest to the user,
    /// `n × oversample` of them, rescored in f32. `probe` 0 asks for the index's own, recorded by
    /// the trainer.
    Ann { probe: usize, oversample: usize },
}

impl Search {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Exact => "exact",
            Self::Int8 { .. } => "int8",
            Self::Ann { .. } => "ann",
        }
    }
}

/// Items scored per row, exact or approximate: the row stays in L1 between scoring and
/// selection. A multiple of the int8 codes' tile.
pub(super) const ROW_ITEMS: usize = 256;
const _: () = assert!(ROW_ITEMS.is_multiple_of(super::int8::TILE));

thread_local! {
    static BYTES_READ: Cell<u64> = const { Cell::new(0) };
}

/// Adds to this thread's count of factor bytes read.
pub(super) fn count_bytes(bytes: usize) {
    BYTES_READ.with(|b| b.set(b.get().saturating_add(bytes as u64)));
}

/// The bytes of factors (f32 factors, int8 codes and scales) this thread's scans have read since
/// the last call, and resets the count. Call it before and after a request's scoring, on the
/// thread that scores, to get what that request read.
pub fn take_bytes_read() -> u64 {
    BYTES_READ.with(|b| b.replace(0))
}

impl ServingAls {
    /// The same model searched with `search`. Int8 builds the codes (one pass over the item
    /// factors, `rank + 4` bytes an item); ann searches the model's graph when it has one, else
    /// lays out its IVF index (the codes in list order, 8 bytes an item more). A `probe` of 0
    /// becomes the index's own; one beyond the lists (or [`MAX_EF`](super::MAX_EF)) is capped
    /// there.
    ///
    /// # Errors
    /// [`Error::NotServable`] for ann mode on a model without an index.
    pub fn with_search(mut self, search: Search) -> Result<Self, Error> {
        let k = self.model.k();
        self.int8 = None;
        self.ann = None;
        self.search = match search {
            Search::Exact => search,
            Search::Int8 { .. } => {
                self.int8 = Some(Int8Items::quantise(&self.model.item_factors, k));
                search
            }
            Search::Ann { probe, oversample } => {
                let (ann, recorded) = match (&self.model.graph, &self.model.index) {
                    (Some(graph), _) => (Ann::Graph, graph.ef as usize),
                    (None, Some(index)) => (
                        Ann::Lists(AnnLists::new(index, &self.model.item_factors, k)),
                        index.probe as usize,
                    ),
                    (None, None) => {
                        return Err(Error::NotServable {
                            reason: "ann search needs an index and the model has no ann index \
                                     (train with --ann-index)"
                                .into(),
                        });
                    }
                };
                let probe = match probe {
                    0 => recorded,
                    p => p.min(ann.max_probe()),
                };
                self.ann = Some(ann);
                Search::Ann { probe, oversample }
            }
        };
        Ok(self)
    }

    pub fn search(&self) -> Search {
        self.search
    }

    /// In ann mode, the kind of index searched.
    pub fn ann_index(&self) -> Option<AnnIndex> {
        self.ann.as_ref().map(Ann::kind)
    }

    /// Bytes of item factors held for searching: the f32 factors, plus the int8 codes and
    /// scales in int8 mode, plus the lists or the graph in ann mode.
    pub fn item_factor_bytes(&self) -> usize {
        let ann = match &self.ann {
            Some(Ann::Lists(lists)) => lists.bytes(),
            Some(Ann::Graph) => self.model.graph.as_ref().map_or(0, |g| g.bytes()),
            None => 0,
        };
        4 * self.model.item_factors.len() + self.int8.as_ref().map_or(0, Int8Items::bytes) + ann
    }

    /// The whole catalogue for one user vector in the configured mode; `excluded` is sorted.
    pub(super) fn scan(&self, user_vector: &[f32], n: usize, excluded: &[u32]) -> Vec<Scored> {
        match (self.search, &self.int8, &self.ann, &self.model.graph) {
            (Search::Int8 { oversample }, Some(int8), _, _) => {
                self.scan_int8(int8, user_vector, n, oversample, excluded)
            }
            (Search::Ann { probe, oversample }, _, Some(Ann::Lists(lists)), _) => {
                self.scan_ann(lists, user_vector, n, probe, oversample, excluded)
            }
            (Search::Ann { probe, .. }, _, Some(Ann::Graph), Some(graph)) => {
                graph.search(&self.model.item_factors, user_vector, n, probe, excluded)
            }
            _ => self.scan_all(user_vector, n, excluded),
        }
    }

    fn scan_int8(
        &self,
        int8: &Int8Items,
        user_vector: &[f32],
        n: usize,
        oversample: usize,
        excluded: &[u32],
    ) -> Vec<Scored> {
        let model = &self.model;
        let k = model.k();
        let query = int8.query(user_vector);
        let mut found = Candidates::new(n.saturating_mul(oversample.max(1)), 0.0);
        let mut row = [0.0f32; ROW_ITEMS];
        int8.score_rows(&query, 0..model.n_items(), &mut row, |row, first| {
            found.scan(row, first as u32, &[excluded]);
        });
        count_bytes(int8.bytes());
        let candidates = found.into_items();
        count_bytes(candidates.len() * k * 4);
        let mut top = TopN::new(n);
        for item in candidates {
            top.push(item, dot(user_vector, model.item_factors(item)));
        }
        top.into_sorted()
    }

    /// Recall@`n` of this mode's answers against the exact scan's, averaged over `users` (known
    /// user indices, their training items excluded as in [`ServingAls::recommend`]); 1 in exact
    /// mode. Users with no exact answer are skipped; 1 when none has one.
    ///
    /// # Panics
    /// If a user index is out of range.
    pub fn recall_at(&self, users: &[u32], n: usize) -> f64 {
        self.recall_against(&self.exact_answers(users, n))
    }

    /// The exact scan's top `n` for each of `users` (training items excluded), for
    /// [`ServingAls::recall_against`]: computed once when many settings are compared.
    pub(super) fn exact_answers(&self, users: &[u32], n: usize) -> Vec<(u32, Vec<u32>)> {
        let answers = users
            .iter()
            .map(|&u| {
                let x = self.model.user_factors(u);
                let exact = self.scan_all(x, n, self.model.seen(u));
                (u, exact.iter().map(|s| s.item).collect())
            })
            .collect();
        take_bytes_read();
        answers
    }

    /// Recall of this mode's answers against `exact` (from [`ServingAls::exact_answers`]).
    pub(super) fn recall_against(&self, exact: &[(u32, Vec<u32>)]) -> f64 {
        let mut sum = 0.0;
        let mut counted = 0usize;
        for (u, exact) in exact {
            if exact.is_empty() {
                continue;
            }
            let got = self.scan(
                self.model.user_factors(*u),
                exact.len(),
                self.model.seen(*u),
            );
            let hits = got.iter().filter(|g| exact.contains(&g.item)).count();
            sum += hits as f64 / exact.len() as f64;
            counted += 1;
        }
        // The measurement is not a request: its reads are not counted.
        take_bytes_read();
        if counted == 0 {
            1.0
        } else {
            sum / counted as f64
        }
    }

    /// `count` users spread evenly over the index range, the fixed sample recall is measured on.
    pub fn recall_sample(&self, count: usize) -> Vec<u32> {
        let users = self.model.n_users();
        let count = count.min(users);
        (0..count).map(|j| (j * users / count) as u32).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::{Shape, random_model};
    use super::super::{AlsModel, Filter};
    use super::*;

    fn shape(users: usize, items: usize, rank: usize) -> AlsModel {
        random_model(&Shape {
            users,
            items,
            rank,
            seed: 11,
            seen_min: 0,
            seen_max: 30,
        })
    }

    fn items(scored: &[Scored]) -> Vec<u32> {
        scored.iter().map(|s| s.item).collect()
    }

    #[test]
    fn int8_answers_match_the_exact_ones_with_recall_of_at_least_0_99() {
        let exact = shape(200, 20_000, 32).prepare().unwrap();
        let int8 = exact
            .clone()
            .with_search(Search::Int8 { oversample: 10 })
            .unwrap();
        let users: Vec<u32> = (0..200).collect();
        let recall = int8.recall_at(&users, 10);
        assert!(recall >= 0.99, "recall {recall}");
        let same = users
            .iter()
            .filter(|&&u| {
                items(&int8.recommend(u, 10, Filter::default()))
                    == items(&exact.recommend(u, 10, Filter::default()))
            })
            .count();
        assert!(same >= 180, "{same} of 200 users get the exact list");
        // Rescored in f32: the scores are the exact ones, not the codes'.
        let got = int8.recommend(3, 10, Filter::default());
        for s in &got {
            assert_eq!(s.score, exact.model().predict(3, s.item));
        }
        assert_eq!(exact.recall_at(&users, 10), 1.0);
    }

    #[test]
    fn without_oversampling_the_codes_alone_choose_and_recall_drops() {
        // Guards the measurement: it must be able to report less than 1.
        let exact = shape(100, 20_000, 32).prepare().unwrap();
        let int8 = exact.with_search(Search::Int8 { oversample: 1 }).unwrap();
        let users: Vec<u32> = (0..100).collect();
        assert!(int8.recall_at(&users, 10) < 0.99);
    }

    #[test]
    fn int8_mode_never_returns_seen_excluded_or_disallowed_items() {
        let m = shape(50, 5_000, 16)
            .prepare()
            .unwrap()
            .with_search(Search::Int8 { oversample: 4 })
            .unwrap();
        for u in 0..50u32 {
            let best = items(&m.recommend(u, 5, Filter::default()));
            // Excluding the best five moves on to others.
            let f = Filter {
                exclude: &best,
                allow: None,
            };
            let next = items(&m.recommend(u, 20, f));
            assert_eq!(next.len(), 20);
            for i in &next {
                assert!(!best.contains(i), "user {u}: excluded {i} returned");
                assert!(
                    m.model().seen(u).binary_search(i).is_err(),
                    "user {u}: seen {i} returned"
                );
            }
            let allow = [next[3], 4_999, next[0], 77_777];
            let f = Filter {
                exclude: &[],
                allow: Some(&allow),
            };
            for i in items(&m.recommend(u, 10, f)) {
                assert!(allow.contains(&i), "user {u}: {i} not allowed");
            }
        }
        let x = m.model().user_factors(0).to_vec();
        let seen = [items(&m.recommend(0, 1, Filter::default()))[0]];
        let got = items(&m.recommend_vector(&x, 10, &seen, Filter::default()));
        assert!(
            !got.contains(&seen[0]),
            "the vector's seen items are skipped"
        );
    }

    #[test]
    fn the_scans_count_the_bytes_they_read() {
        let (items_n, k) = (3_000usize, 16usize);
        let exact = shape(5, items_n, k).prepare().unwrap();
        let int8 = exact
            .clone()
            .with_search(Search::Int8 { oversample: 2 })
            .unwrap();
        take_bytes_read();
        exact.recommend(0, 10, Filter::default());
        assert_eq!(take_bytes_read(), (items_n * k * 4) as u64);
        int8.recommend(0, 10, Filter::default());
        let read = take_bytes_read();
        // The codes come in tiles of 16 items: 3,000 items take 3,008 slots.
        let slots = items_n.next_multiple_of(16);
        let codes = (slots * (k + 4)) as u64;
        assert!(
            read >= codes + (20 * k * 4) as u64 && read < codes + (200 * k * 4) as u64,
            "{read}"
        );
        assert_eq!(take_bytes_read(), 0, "taking resets the count");
        assert_eq!(int8.item_factor_bytes(), items_n * k * 4 + slots * (k + 4));
    }
}
