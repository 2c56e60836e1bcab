//! Approximate search for catalogues of millions: an inverted-file (IVF) index for maximum inner
//! product, built once by the trainer and stored in the artifact, so serving loads it rather than
//! building it.
//!
//! **The transform.** Recommending is maximum inner product search, which k-means does not
//! serve directly. Each item `y` gets one extra coordinate `√(M² − |y|²)`, `M` the largest item
//! norm, so every item has norm `M`; a query `q` gets `0`. Then `|q̃ − ỹ|² = |q|² + M² − 2 q·y`:
//! the nearest item in the extended space is the best by inner product. The index is plain L2
//! k-means over the extended items (trained on a sample, then every item assigned to its nearest
//! centroid), and a query probes the lists whose centroids are nearest: largest
//! `q·c − |c̃|² / 2`.
//!
//! **Beside the graph.** IVF builds in minutes at 10M items (one assignment pass, parallel over
//! threads) and costs 8 bytes an item beside the codes; a probed list is a contiguous run of int8
//! codes (the `search` module's), read at streaming speed. The HNSW graph (the `hnsw` module)
//! answers several times faster at the same recall but takes far longer to build; the trainer
//! builds either (`--ann-kind`). No crate is used: IVF is k-means and a scan, a few hundred lines.
//!
//! **Serving.** [`AnnLists`] keeps the item codes in list order, each list starting on a tile of
//! the codes (padding slots between lists are never scored as items); a query scores the centroids,
//! scans the codes of the best `probe` lists for `n × oversample` candidates and rescores those in
//! f32, choosing exactly as the exact scan does. How much this misses is measured, not assumed:
//! the trainer picks the smallest `probe` that reaches a target recall@10 on a sample of users
//! ([`ServingAls::tune_probe`]) and records it, and the service measures recall again at load.

use serde::{Deserialize, Serialize};

use super::int8::{Int8Items, PADDING, TILE};
use super::rng::Rng;
use super::search::{ROW_ITEMS, count_bytes};
use super::select::Candidates;
use super::{Scored, ServingAls, TopN, dot};
use crate::Error;

/// Larger list counts are refused at load: √(4 · 10⁹) items would not need more.
pub const MAX_LISTS: usize = 1 << 16;

/// The index as stored in the artifact (`AlsModel::index`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IvfIndex {
    /// `lists × (rank + 1)` centroids in the extended space, row-major.
    pub centroids: Vec<f32>,
    /// CSR offsets into `list_items`, `lists + 1` long, from 0 to the item count.
    pub list_offsets: Vec<u32>,
    /// Item indices grouped by list: every item exactly once.
    pub list_items: Vec<u32>,
    /// Lists probed per query unless the service is told otherwise: the smallest count that
    /// reached the trainer's target recall.
    pub probe: u32,
}

/// How an index is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct IvfParams {
    pub lists: usize,
    /// Items k-means is trained on (a seeded sample; all items when fewer).
    pub train_items: usize,
    pub iterations: usize,
    pub seed: u64,
    /// Threads for assigning every item to its list.
    pub threads: usize,
}

impl IvfParams {
    /// The usual defaults: `√items` lists (about as many items per list as lists), k-means on
    /// 64 items a list, 10 iterations, every available core.
    pub fn for_items(items: usize) -> Self {
        let lists = ((items as f64).sqrt().round() as usize).clamp(1, MAX_LISTS);
        Self {
            lists,
            train_items: lists.saturating_mul(64),
            iterations: 10,
            seed: 42,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

impl IvfIndex {
    pub fn lists(&self) -> usize {
        self.list_offsets.len().saturating_sub(1)
    }

    /// Checks the index against a catalogue of `items` × rank `k`.
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] describing the first inconsistency.
    pub fn validate(&self, items: usize, k: usize) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::CorruptArtifact { reason });
        let lists = self.lists();
        if lists == 0 || lists > MAX_LISTS {
            return fail(format!("the index has {lists} lists, not 1..={MAX_LISTS}"));
        }
        if self.centroids.len() != lists * (k + 1) {
            return fail(format!(
                "index centroids have length {}, expected {lists} lists × {}",
                self.centroids.len(),
                k + 1
            ));
        }
        if self.centroids.iter().any(|v| !v.is_finite()) {
            return fail("an index centroid is not finite".into());
        }
        if self.list_offsets.first() != Some(&0)
            || self.list_offsets.windows(2).any(|w| w[0] > w[1])
            || self.list_offsets.last().map(|&l| l as usize) != Some(items)
            || self.list_items.len() != items
        {
            return fail(format!(
                "index list offsets must increase from 0 to {items}, with one entry per item"
            ));
        }
        let mut listed = vec![false; items];
        for &i in &self.list_items {
            match listed.get_mut(i as usize) {
                Some(seen @ false) => *seen = true,
                _ => return fail(format!("item {i} is listed twice or is out of range")),
            }
        }
        if self.probe == 0 || self.probe as usize > lists {
            return fail(format!("index probe {} is outside 1..={lists}", self.probe));
        }
        Ok(())
    }
}

/// Builds the index for `item_factors` (`items × k`), with `probe` 1 until
/// [`ServingAls::tune_probe`] picks one.
///
/// # Panics
/// If there are no items or `k` is 0.
pub fn build_ivf(item_factors: &[f32], k: usize, params: &IvfParams) -> IvfIndex {
    assert!(k > 0 && !item_factors.is_empty(), "nothing to index");
    let extended = extend(item_factors, k);
    let d = k + 1;
    let items = extended.len() / d;
    let lists = params.lists.clamp(1, items.min(MAX_LISTS));
    let mut rng = Rng(params.seed);
    let sample = sample_rows(&extended, d, params.train_items.max(lists), &mut rng);
    let centroids = kmeans(&sample, d, lists, params, &mut rng);
    let assigned = assign(&extended, &centroids, d, params.threads.max(1));
    let mut list_offsets = vec![0u32; lists + 1];
    for &l in &assigned {
        list_offsets[l as usize + 1] += 1;
    }
    for l in 0..lists {
        list_offsets[l + 1] += list_offsets[l];
    }
    let mut next: Vec<u32> = list_offsets[..lists].to_vec();
    let mut list_items = vec![0u32; items];
    for (i, &l) in assigned.iter().enumerate() {
        list_items[next[l as usize] as usize] = i as u32;
        next[l as usize] += 1;
    }
    IvfIndex {
        centroids,
        list_offsets,
        list_items,
        probe: 1,
    }
}

/// Items with the extra coordinate `√(M² − |y|²)`: every row has norm `M`.
fn extend(item_factors: &[f32], k: usize) -> Vec<f32> {
    let norms: Vec<f32> = item_factors.chunks_exact(k).map(|y| dot(y, y)).collect();
    let max = norms.iter().copied().fold(0.0f32, f32::max);
    let mut out = Vec::with_capacity(norms.len() * (k + 1));
    for (y, n2) in item_factors.chunks_exact(k).zip(&norms) {
        out.extend_from_slice(y);
        out.push((max - n2).max(0.0).sqrt());
    }
    out
}

/// `count` distinct rows (all of them when there are fewer), by a partial Fisher-Yates shuffle.
fn sample_rows(rows: &[f32], d: usize, count: usize, rng: &mut Rng) -> Vec<f32> {
    let n = rows.len() / d;
    if count >= n {
        return rows.to_vec();
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut out = Vec::with_capacity(count * d);
    for j in 0..count {
        let pick = j + (rng.next_u64() % (n - j) as u64) as usize;
        order.swap(j, pick);
        let r = order[j] as usize;
        out.extend_from_slice(&rows[r * d..(r + 1) * d]);
    }
    out
}

/// The nearest centroid of `row` by L2: the largest `row·c − |c|²/2`.
fn nearest(row: &[f32], centroids: &[f32], half_norms: &[f32], d: usize) -> u32 {
    let mut best = (f32::NEG_INFINITY, 0u32);
    for (l, (c, h)) in centroids.chunks_exact(d).zip(half_norms).enumerate() {
        let s = dot(row, c) - h;
        if s > best.0 {
            best = (s, l as u32);
        }
    }
    best.1
}

fn half_norms(centroids: &[f32], d: usize) -> Vec<f32> {
    centroids.chunks_exact(d).map(|c| dot(c, c) / 2.0).collect()
}

/// Lloyd's k-means over `sample`, started from `lists` distinct sample rows; a list left empty
/// restarts from a random sample row.
fn kmeans(sample: &[f32], d: usize, lists: usize, params: &IvfParams, rng: &mut Rng) -> Vec<f32> {
    let n = sample.len() / d;
    let mut centroids = sample_rows(sample, d, lists, rng);
    for _ in 0..params.iterations {
        let assigned = assign(sample, &centroids, d, params.threads.max(1));
        let mut sums = vec![0.0f64; lists * d];
        let mut counts = vec![0usize; lists];
        for (row, &l) in sample.chunks_exact(d).zip(&assigned) {
            let l = l as usize;
            counts[l] += 1;
            for (s, &v) in sums[l * d..(l + 1) * d].iter_mut().zip(row) {
                *s += f64::from(v);
            }
        }
        for l in 0..lists {
            let c = &mut centroids[l * d..(l + 1) * d];
            if counts[l] == 0 {
                let r = (rng.next_u64() % n as u64) as usize;
                c.copy_from_slice(&sample[r * d..(r + 1) * d]);
            } else {
                for (c, s) in c.iter_mut().zip(&sums[l * d..(l + 1) * d]) {
                    *c = (s / counts[l] as f64) as f32;
                }
            }
        }
    }
    centroids
}

/// Every row's nearest centroid, the rows split over `threads` scoped threads.
fn assign(rows: &[f32], centroids: &[f32], d: usize, threads: usize) -> Vec<u32> {
    let n = rows.len() / d;
    let half = half_norms(centroids, d);
    let mut out = vec![0u32; n];
    let per = n.div_ceil(threads).max(1);
    std::thread::scope(|scope| {
        for (chunk, out) in rows.chunks(per * d).zip(out.chunks_mut(per)) {
            let half = &half;
            scope.spawn(move || {
                for (row, o) in chunk.chunks_exact(d).zip(out) {
                    *o = nearest(row, centroids, half, d);
                }
            });
        }
    });
    out
}

/// The index as served: centroids for probing, and the item codes in list order.
#[derive(Debug, Clone)]
pub(super) struct AnnLists {
    /// `lists × k`: the centroids without the extra coordinate (a query's is 0).
    centroids: Vec<f32>,
    /// `−|c̃|² / 2` per list, so a list's score is `q·c + bias`.
    bias: Vec<f32>,
    /// Each list's first slot (a multiple of [`TILE`]) and its item count.
    lists: Vec<(u32, u32)>,
    /// Slot → item index ([`PADDING`] between lists).
    order: Vec<u32>,
    /// Item index → slot.
    position: Vec<u32>,
    /// Int8 codes by slot.
    codes: Int8Items,
}

impl AnnLists {
    /// Lays out a validated `index` for searching `item_factors`.
    pub(super) fn new(index: &IvfIndex, item_factors: &[f32], k: usize) -> Self {
        let d = k + 1;
        let mut centroids = Vec::with_capacity(index.lists() * k);
        let mut bias = Vec::with_capacity(index.lists());
        for c in index.centroids.chunks_exact(d) {
            centroids.extend_from_slice(&c[..k]);
            bias.push(-dot(c, c) / 2.0);
        }
        let mut lists = Vec::with_capacity(index.lists());
        let mut order = Vec::with_capacity(index.list_items.len() + TILE * index.lists());
        for w in index.list_offsets.windows(2) {
            let items = &index.list_items[w[0] as usize..w[1] as usize];
            lists.push((order.len() as u32, items.len() as u32));
            order.extend_from_slice(items);
            order.resize(order.len().next_multiple_of(TILE), PADDING);
        }
        let mut position = vec![0u32; index.list_items.len()];
        for (slot, &i) in order.iter().enumerate() {
            if i != PADDING {
                position[i as usize] = slot as u32;
            }
        }
        Self {
            centroids,
            bias,
            lists,
            codes: Int8Items::quantise_slots(item_factors, k, &order),
            order,
            position,
        }
    }

    pub(super) fn lists(&self) -> usize {
        self.bias.len()
    }

    /// Bytes held beside the f32 factors: codes, scales, both orders, centroids.
    pub(super) fn bytes(&self) -> usize {
        self.codes.bytes()
            + 4 * (self.order.len() + self.position.len())
            + 4 * (self.centroids.len() + self.bias.len() + 2 * self.lists.len())
    }

    /// The `probe` lists whose centroids are nearest to `q`, best first.
    fn probed(&self, q: &[f32], probe: usize) -> Vec<usize> {
        let k = q.len();
        let mut scored: Vec<(f32, usize)> = self
            .centroids
            .chunks_exact(k)
            .zip(&self.bias)
            .enumerate()
            .map(|(l, (c, b))| (dot(q, c) + b, l))
            .collect();
        count_bytes(4 * (self.centroids.len() + self.bias.len()));
        let probe = probe.clamp(1, scored.len());
        let by_score = |a: &(f32, usize), b: &(f32, usize)| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1));
        if probe < scored.len() {
            scored.select_nth_unstable_by(probe - 1, by_score);
            scored.truncate(probe);
        }
        scored.sort_unstable_by(by_score);
        scored.into_iter().map(|(_, l)| l).collect()
    }
}

impl ServingAls {
    /// The ann scan: the best `probe` lists' codes pick `n × oversample` candidates, rescored in
    /// f32; `excluded` is sorted.
    pub(super) fn scan_ann(
        &self,
        ann: &AnnLists,
        user_vector: &[f32],
        n: usize,
        probe: usize,
        oversample: usize,
        excluded: &[u32],
    ) -> Vec<Scored> {
        let k = self.model.k();
        let query = ann.codes.query(user_vector);
        let mut excluded_positions: Vec<u32> = excluded
            .iter()
            .filter_map(|&i| ann.position.get(i as usize).copied())
            .collect();
        excluded_positions.sort_unstable();
        let mut found = Candidates::new(n.saturating_mul(oversample.max(1)), 0.0);
        let mut row = [0.0f32; ROW_ITEMS];
        let mut scanned = 0usize;
        for l in ann.probed(user_vector, probe) {
            let (start, len) = (ann.lists[l].0 as usize, ann.lists[l].1 as usize);
            scanned += len.next_multiple_of(TILE);
            ann.codes
                .score_rows(&query, start..start + len, &mut row, |row, first| {
                    found.scan(row, first as u32, &[&excluded_positions]);
                });
        }
        count_bytes(scanned * ann.codes.bytes_per_slot());
        let candidates = found.into_items();
        count_bytes(candidates.len() * k * 4);
        let mut top = TopN::new(n);
        for p in candidates {
            let item = ann.order[p as usize];
            top.push(item, dot(user_vector, self.model.item_factors(item)));
        }
        top.into_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::clustered_model;
    use super::super::{AlsModel, Filter, Search};
    use super::*;

    fn model(users: usize, items: usize, rank: usize) -> AlsModel {
        clustered_model(users, items, rank)
    }

    fn params(lists: usize) -> IvfParams {
        IvfParams {
            lists,
            train_items: lists * 40,
            iterations: 8,
            seed: 3,
            threads: 2,
        }
    }

    fn indexed(m: AlsModel, lists: usize) -> AlsModel {
        let k = m.rank as usize;
        let index = build_ivf(&m.item_factors, k, &params(lists));
        AlsModel {
            index: Some(index),
            ..m
        }
    }

    #[test]
    fn the_extra_coordinate_gives_every_item_the_largest_norm() {
        let y = [3.0f32, 4.0, 0.0, 1.0, 0.0, 0.0];
        let e = extend(&y, 2);
        for row in e.chunks_exact(3) {
            assert!((dot(row, row) - 25.0).abs() < 1e-4, "{row:?}");
        }
        assert_eq!(e[2], 0.0);
    }

    #[test]
    fn every_item_is_listed_once_in_its_nearest_list() {
        let m = model(1, 3_000, 8);
        let index = build_ivf(&m.item_factors, 8, &params(40));
        index.validate(3_000, 8).unwrap();
        assert_eq!(index.lists(), 40);
        let e = extend(&m.item_factors, 8);
        let half = half_norms(&index.centroids, 9);
        for l in 0..40 {
            let (a, b) = (index.list_offsets[l], index.list_offsets[l + 1]);
            for &i in &index.list_items[a as usize..b as usize] {
                let row = &e[i as usize * 9..(i as usize + 1) * 9];
                assert_eq!(nearest(row, &index.centroids, &half, 9), l as u32);
            }
        }
        // k-means spreads the items: no list holds a third of them.
        let biggest = index.list_offsets.windows(2).map(|w| w[1] - w[0]).max();
        assert!(biggest < Some(1_000), "{biggest:?}");
    }

    #[test]
    fn damaged_indexes_are_refused() {
        let m = model(1, 500, 4);
        let good = build_ivf(&m.item_factors, 4, &params(10));
        let check = |f: &dyn Fn(&mut IvfIndex)| {
            let mut bad = good.clone();
            f(&mut bad);
            bad.validate(500, 4).unwrap_err().to_string()
        };
        assert!(check(&|i| i.list_items[7] = i.list_items[8]).contains("twice"));
        assert!(check(&|i| i.list_items[7] = 500).contains("out of range"));
        assert!(check(&|i| i.centroids.pop().map_or((), drop)).contains("centroids"));
        assert!(check(&|i| i.centroids[3] = f32::NAN).contains("finite"));
        assert!(check(&|i| i.list_offsets[10] = 499).contains("offsets"));
        assert!(check(&|i| i.probe = 11).contains("probe"));
        assert!(check(&|i| i.probe = 0).contains("probe"));
        // The model's own validation runs the index's.
        let damaged = AlsModel {
            index: Some(IvfIndex {
                probe: 0,
                ..good.clone()
            }),
            ..m.clone()
        };
        assert!(damaged.prepare().is_err());
        assert!(good.validate(501, 4).is_err(), "another catalogue");
    }

    #[test]
    fn ann_reaches_the_tuned_recall_and_scans_a_fraction_of_the_catalogue() {
        let (items, k, lists) = (12_000, 16, 100);
        let exact = indexed(model(300, items, k), lists).prepare().unwrap();
        let mut ann = exact
            .clone()
            .with_search(Search::Ann {
                probe: 0,
                oversample: 10,
            })
            .unwrap();
        let tuning: Vec<u32> = (0..300).step_by(2).collect();
        let (probe, recall) = ann.tune_probe(&tuning, 10, 0.95);
        assert!(recall >= 0.95, "recall {recall} at probe {probe}");
        assert!(probe <= lists / 4, "probe {probe} of {lists} lists");
        // Users the probe was not tuned on: recall holds up within sampling error.
        let others: Vec<u32> = (1..300).step_by(2).collect();
        let held_out = ann.recall_at(&others, 10);
        assert!(held_out >= 0.92, "recall on other users {held_out}");
        // Probing one list misses: the measurement can report less.
        let one = exact
            .clone()
            .with_search(Search::Ann {
                probe: 1,
                oversample: 10,
            })
            .unwrap();
        assert!(one.recall_at(&others, 10) < 0.9);
        // Bytes: the probed lists' codes, the centroids and the rescoring, far below f32.
        take_bytes_read();
        ann.recommend(7, 10, Filter::default());
        let read = take_bytes_read() as usize;
        assert!(read < items * k * 4 / 4, "{read} bytes");
        assert!(read > (k + 4) * items * probe / lists / 2, "{read} bytes");
        // Scores are the exact ones.
        for s in ann.recommend(7, 10, Filter::default()) {
            assert_eq!(s.score, exact.model().predict(7, s.item));
        }
    }

    #[test]
    fn ann_never_returns_seen_excluded_or_disallowed_items() {
        let m = indexed(model(40, 6_000, 16), 60)
            .prepare()
            .unwrap()
            .with_search(Search::Ann {
                probe: 20,
                oversample: 4,
            })
            .unwrap();
        for u in 0..40u32 {
            let best: Vec<u32> = m
                .recommend(u, 5, Filter::default())
                .iter()
                .map(|s| s.item)
                .collect();
            assert_eq!(best.len(), 5);
            let f = Filter {
                exclude: &best,
                allow: None,
            };
            let next = m.recommend(u, 20, f);
            assert_eq!(next.len(), 20);
            for s in &next {
                assert!(
                    !best.contains(&s.item),
                    "user {u}: excluded {} returned",
                    s.item
                );
                assert!(
                    m.model().seen(u).binary_search(&s.item).is_err(),
                    "user {u}: seen {} returned",
                    s.item
                );
            }
        }
    }

    #[test]
    fn ann_mode_needs_an_index_and_exact_mode_ignores_it() {
        let plain = model(20, 2_000, 8).prepare().unwrap();
        let err = plain
            .clone()
            .with_search(Search::Ann {
                probe: 0,
                oversample: 10,
            })
            .unwrap_err();
        assert!(err.to_string().contains("no ann index"), "{err}");
        let with_index = indexed(plain.model().clone(), 20).prepare().unwrap();
        for u in 0..20 {
            assert_eq!(
                with_index.recommend(u, 10, Filter::default()),
                plain.recommend(u, 10, Filter::default())
            );
        }
        // Probe 0 takes the index's own; a probe beyond the lists is all of them.
        let ann = with_index
            .clone()
            .with_search(Search::Ann {
                probe: 0,
                oversample: 10,
            })
            .unwrap();
        assert_eq!(
            ann.search(),
            Search::Ann {
                probe: 1,
                oversample: 10
            }
        );
        let all = with_index
            .with_search(Search::Ann {
                probe: 1_000,
                oversample: 10,
            })
            .unwrap();
        assert_eq!(
            all.search(),
            Search::Ann {
                probe: 20,
                oversample: 10
            }
        );
        let users: Vec<u32> = (0..20).collect();
        assert!(all.recall_at(&users, 10) >= 0.99);
    }

    use super::super::take_bytes_read;
}
