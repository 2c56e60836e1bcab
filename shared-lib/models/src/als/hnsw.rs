//! Approximate search by graph: a hierarchical navigable small world (HNSW, Malkov and Yashunin
//! 2016) over the item factors, with the inner product as the similarity, built once by the
//! trainer and stored in the artifact, so serving loads it rather than building it.
//!
//! **Why a graph beside IVF.** An IVF probe reads whole lists: at 1M items and recall 0.95 a
//! request scanned about 4 MB of codes, and faiss's HNSW answered several times faster at the same
//! recall. A graph search reads a few thousand item rows, chosen by walking from a node to its
//! neighbours that score better. The price is the build: every item is inserted by a search of
//! the graph built so far, and the graph (`degree` neighbours an item on the bottom layer, 128
//! bytes at degree 32) is stored beside the factors.
//!
//! **The similarity.** Like faiss's `IndexHNSWFlat` with `METRIC_INNER_PRODUCT`, the graph is
//! built and searched with the inner product itself. The extra-coordinate transform to L2 that the
//! IVF index uses gave faiss's HNSW a far lower recall on popularity-skewed factors
//! (`bench/recommender/faiss_peer.py`): every item then sits at the same distance from the query's
//! side of the space, and the walk loses its direction.
//!
//! **The build runs on every core without locks**, in batches (prefix doubling, as ParlayANN
//! builds its graphs): each item of a batch searches the graph as it stood before the batch, in
//! parallel and read-only, for its neighbours on each of its layers (chosen with the paper's
//! diversity heuristic, the room left filled with the best it passed over); then the batch's
//! links are written, and each neighbour gains a link back, in parallel over disjoint ranges of
//! nodes. Bottom-layer lists hold half as many again while building and are pruned by the
//! heuristic when that fills, so a full list costs one pruning per several links back; at the end
//! each is pruned to `degree`. Batches grow with the graph (an eighth of it, at most
//! [`MAX_BATCH`] items), so an item misses only the few inserted beside it, and those link to it
//! back. Items go in largest norm first.
//!
//! **What it cannot find.** With inner product a few items end up with no link in, and a walk
//! never reaches them; now and then one is some user's best (13 of the 2,000 items 200 users want
//! in this module's test, 5,000 items at rank 8). Linking them in by taking a reached
//! neighbour's least similar link cost more recall than it gained (at 1M items, recall@10 at
//! `ef` 20 fell from 0.93 to 0.84: those links are the heuristic's long, diverse ones), so the
//! measured recall includes these misses.
//!
//! **Serving** searches with the user's f32 factors (`dot`, as the exact scan scores), so the
//! scores it returns are the exact ones; a search keeps the `ef` best items it has met
//! (`RECOMMEND_PROBE`, or the `ef` the trainer tuned to a target recall), and at least `n` plus the
//! items the request excludes, so exclusions never leave an answer short.

use std::collections::{BinaryHeap, HashMap};

use serde::{Deserialize, Serialize};

use super::rng::Rng;
use super::search::count_bytes;
use super::{Entry, Scored, TopN, dot};
use crate::Error;

/// Marks an unused slot of a neighbour list.
pub const NO_NODE: u32 = u32::MAX;

/// Larger neighbour lists are refused at load.
pub const MAX_DEGREE: usize = 256;

/// Larger search breadths are refused at load and capped at search.
pub const MAX_EF: usize = 1 << 16;

/// Layers above the bottom one are capped here (a graph of 10M items at upper degree 16 has 6).
const MAX_LEVEL: usize = 16;

/// The most items one build batch inserts side by side.
pub const MAX_BATCH: usize = 2048;

/// The graph as stored in the artifact (`AlsModel::graph`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswIndex {
    /// Neighbour list length on the bottom layer.
    pub degree: u32,
    /// Neighbour list length on the layers above.
    pub upper_degree: u32,
    /// `items × degree`: each item's neighbours on the bottom layer, `NO_NODE` (`u32::MAX`)
    /// after the last.
    pub base: Vec<u32>,
    /// The layers above the bottom one, lowest first.
    pub layers: Vec<HnswLayer>,
    /// Where every search starts: a node of the top layer (any item when there is none).
    pub entry: u32,
    /// Search breadth unless the service is told otherwise: the smallest that reached the
    /// trainer's target recall.
    pub ef: u32,
}

/// One layer above the bottom: its nodes and their neighbour lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HnswLayer {
    /// Item indices, strictly increasing.
    pub nodes: Vec<u32>,
    /// `nodes × upper_degree`, in the order of `nodes`, `NO_NODE` (`u32::MAX`) after the last.
    pub neighbours: Vec<u32>,
}

/// How a graph is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct HnswParams {
    /// Neighbours per item on the bottom layer (faiss and hnswlib: `2 M`).
    pub degree: usize,
    /// Neighbours per item on the layers above (`M`); also sets how many items reach each layer.
    pub upper_degree: usize,
    /// Breadth of the search that finds an item's neighbours when it is inserted.
    pub ef_construction: usize,
    pub seed: u64,
    /// Threads searching and linking each batch.
    pub threads: usize,
}

impl HnswParams {
    /// The defaults: degree 32 at the bottom (`M` 16 above), `efConstruction` 64, every core.
    pub fn new() -> Self {
        Self::with_degree(32)
    }

    /// The defaults with `degree` neighbours at the bottom and half as many above (at least 2),
    /// as faiss and hnswlib pair `2 M` with `M`.
    pub fn with_degree(degree: usize) -> Self {
        Self {
            degree,
            upper_degree: (degree / 2).max(2),
            ef_construction: 64,
            seed: 42,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

impl Default for HnswParams {
    fn default() -> Self {
        Self::new()
    }
}

impl HnswIndex {
    /// Neighbours of `node` on `layer` (0 the bottom); empty for a node not on that layer.
    fn neighbours(&self, layer: usize, node: u32) -> &[u32] {
        let list = if layer == 0 {
            let d = self.degree as usize;
            self.base.get(node as usize * d..(node as usize + 1) * d)
        } else {
            let l = &self.layers[layer - 1];
            let d = self.upper_degree as usize;
            l.nodes
                .binary_search(&node)
                .ok()
                .and_then(|p| l.neighbours.get(p * d..(p + 1) * d))
        };
        let list = list.unwrap_or(&[]);
        &list[..list
            .iter()
            .position(|&n| n == NO_NODE)
            .unwrap_or(list.len())]
    }

    /// Checks the graph against a catalogue of `items`.
    ///
    /// # Errors
    /// [`Error::CorruptArtifact`] describing the first inconsistency.
    pub fn validate(&self, items: usize) -> Result<(), Error> {
        let fail = |reason: String| Err(Error::CorruptArtifact { reason });
        let (d, ud) = (self.degree as usize, self.upper_degree as usize);
        if !(1..=MAX_DEGREE).contains(&d) || !(1..=MAX_DEGREE).contains(&ud) {
            return fail(format!(
                "graph degrees {d} and {ud} must be from 1 to {MAX_DEGREE}"
            ));
        }
        if items == 0 || self.base.len() != items * d {
            return fail(format!(
                "the graph's bottom layer has {} slots, expected {items} items × {d}",
                self.base.len()
            ));
        }
        if let Some(n) = self
            .base
            .iter()
            .find(|&&n| n != NO_NODE && n as usize >= items)
        {
            return fail(format!("graph neighbour {n} is out of range"));
        }
        if self.layers.len() > MAX_LEVEL {
            return fail(format!("the graph has {} layers", self.layers.len() + 1));
        }
        for (l, layer) in self.layers.iter().enumerate() {
            if layer.nodes.is_empty()
                || layer.nodes.windows(2).any(|w| w[0] >= w[1])
                || layer.nodes.last().is_some_and(|&n| n as usize >= items)
            {
                return fail(format!(
                    "graph layer {} must list its nodes once each, increasing, within the items",
                    l + 1
                ));
            }
            if layer.neighbours.len() != layer.nodes.len() * ud {
                return fail(format!(
                    "graph layer {} has {} neighbour slots for {} nodes × {ud}",
                    l + 1,
                    layer.neighbours.len(),
                    layer.nodes.len()
                ));
            }
            if let Some(n) = layer
                .neighbours
                .iter()
                .find(|&&n| n != NO_NODE && layer.nodes.binary_search(&n).is_err())
            {
                return fail(format!("graph layer {}: neighbour {n} is not on it", l + 1));
            }
        }
        let entry_ok = match self.layers.last() {
            Some(top) => top.nodes.binary_search(&self.entry).is_ok(),
            None => (self.entry as usize) < items,
        };
        if !entry_ok {
            return fail(format!(
                "graph entry {} is not on the top layer",
                self.entry
            ));
        }
        if self.ef == 0 || self.ef as usize > MAX_EF {
            return fail(format!("graph ef {} is outside 1..={MAX_EF}", self.ef));
        }
        Ok(())
    }

    /// The best items for `query` by inner product with `factors` (`items × k`), best first:
    /// at most `ef` of them (at least `n + excluded.len()`, capped at [`MAX_EF`]), never the
    /// `excluded` ones (sorted), then the best `n`. Scores are `dot(query, y)`.
    pub(super) fn search(
        &self,
        factors: &[f32],
        query: &[f32],
        n: usize,
        ef: usize,
        excluded: &[u32],
    ) -> Vec<Scored> {
        let k = query.len();
        let query = Query {
            rows: Rows { factors, k },
            vector: query,
        };
        let ef = ef.max(n.saturating_add(excluded.len())).clamp(1, MAX_EF);
        let mut entry = Entry {
            score: query.score(self.entry),
            item: self.entry,
        };
        let mut read = 1usize;
        for layer in (1..=self.layers.len()).rev() {
            entry = greedy(entry, |v| self.neighbours(layer, v), &query, &mut read);
        }
        let found = VISITED.with(|visited| {
            let mut visited = visited.borrow_mut();
            search_layer(
                &[entry],
                ef,
                |v| self.neighbours(0, v),
                &query,
                &mut visited,
                &mut read,
            )
        });
        count_bytes(read * k * 4);
        let mut top = TopN::new(n);
        for near in found {
            if excluded.binary_search(&near.item).is_err() {
                top.push(near.item, near.score);
            }
        }
        top.into_sorted()
    }

    /// Bytes the graph holds.
    pub(super) fn bytes(&self) -> usize {
        4 * (self.base.len()
            + self
                .layers
                .iter()
                .map(|l| l.nodes.len() + l.neighbours.len())
                .sum::<usize>())
    }
}

/// Nodes met by one search: an open-addressing set reused by the thread's searches, so a search
/// costs memory for what it visits (a few thousand nodes), not for the catalogue.
struct Visited {
    slots: Vec<u32>,
    len: usize,
}

impl Visited {
    fn clear(&mut self) {
        if self.len > 0 {
            self.slots.fill(NO_NODE);
            self.len = 0;
        }
    }

    /// True when `node` was not in the set.
    fn insert(&mut self, node: u32) -> bool {
        if 2 * (self.len + 1) > self.slots.len() {
            let grown = vec![NO_NODE; (2 * self.slots.len()).max(1024)];
            let old = std::mem::replace(&mut self.slots, grown);
            self.len = 0;
            for n in old.into_iter().filter(|&n| n != NO_NODE) {
                self.insert(n);
            }
        }
        let mask = self.slots.len() - 1;
        let mut at = (node.wrapping_mul(0x9E37_79B9) as usize) & mask;
        loop {
            match self.slots[at] {
                NO_NODE => {
                    self.slots[at] = node;
                    self.len += 1;
                    return true;
                }
                n if n == node => return false,
                _ => at = (at + 1) & mask,
            }
        }
    }
}

thread_local! {
    static VISITED: std::cell::RefCell<Visited> = const {
        std::cell::RefCell::new(Visited { slots: Vec::new(), len: 0 })
    };
}

/// The item factors, row-major `items × k`: the rows every score in the graph reads, searching
/// and building alike. `Copy`, so a building thread takes it without borrowing the graph.
#[derive(Clone, Copy)]
struct Rows<'a> {
    factors: &'a [f32],
    k: usize,
}

impl<'a> Rows<'a> {
    fn row(self, i: u32) -> &'a [f32] {
        &self.factors[i as usize * self.k..(i as usize + 1) * self.k]
    }

    /// The similarity of two items: the inner product of their rows.
    fn sim(self, a: u32, b: u32) -> f32 {
        dot(self.row(a), self.row(b))
    }
}

/// A vector scored by inner product against the item rows: a user's factors while serving, an
/// item's own row while building.
struct Query<'a> {
    rows: Rows<'a>,
    vector: &'a [f32],
}

impl Query<'_> {
    fn score(&self, i: u32) -> f32 {
        dot(self.vector, self.rows.row(i))
    }

    /// Reads one value from every 64-byte cache line of each of `items`' rows, before they are
    /// scored. A walk's rows are scattered over the catalogue, mostly outside the caches at 1M
    /// items, and scoring them in turn leaves a few rows' loads in flight at a time; these
    /// reads are independent, so all the rows' misses are in flight together. At 1M items
    /// (bench_model `--ann-sweep`, one thread, 1,000 queries timed with and without it in
    /// turn, three times each) `ef` 32 took 77-80 µs a query against 125 µs, `ef` 48 93-97
    /// against 145-191. Safe code has no prefetch instruction (`_mm_prefetch` needs `unsafe`
    /// outside `#[target_feature]` code); a read is one.
    fn prefetch(&self, items: impl IntoIterator<Item = u32>) {
        const PER_LINE: usize = 64 / std::mem::size_of::<f32>();
        for i in items {
            let row = self.rows.row(i);
            let mut sum = row.last().copied().unwrap_or(0.0);
            for x in row.iter().step_by(PER_LINE) {
                sum += x;
            }
            std::hint::black_box(sum);
        }
    }
}

/// Walks from `entry` to a better-scoring neighbour while there is one (the upper layers).
fn greedy<'g>(
    mut entry: Entry,
    neighbours: impl Fn(u32) -> &'g [u32],
    query: &Query<'_>,
    read: &mut usize,
) -> Entry {
    loop {
        let mut moved = false;
        let list = neighbours(entry.item);
        query.prefetch(list.iter().copied());
        for &v in list {
            let near = Entry {
                score: query.score(v),
                item: v,
            };
            *read += 1;
            if near > entry {
                entry = near;
                moved = true;
            }
        }
        if !moved {
            return entry;
        }
    }
}

/// The paper's `SEARCH-LAYER`: the `ef` best nodes reachable from `entries` on one layer, best
/// first, expanding the best unexpanded node until none can improve the `ef` found.
fn search_layer<'g>(
    entries: &[Entry],
    ef: usize,
    neighbours: impl Fn(u32) -> &'g [u32],
    query: &Query<'_>,
    visited: &mut Visited,
    read: &mut usize,
) -> Vec<Entry> {
    visited.clear();
    let mut frontier: BinaryHeap<Entry> = BinaryHeap::with_capacity(ef * 2);
    // The found set as a min-heap: its worst is on top.
    let mut found: BinaryHeap<std::cmp::Reverse<Entry>> = BinaryHeap::with_capacity(ef + 1);
    for &e in entries {
        if visited.insert(e.item) {
            frontier.push(e);
            found.push(std::cmp::Reverse(e));
        }
    }
    while found.len() > ef {
        found.pop();
    }
    // A node's unvisited neighbours are scored in a loop of their own, their rows read first
    // ([`Query::prefetch`]): independent loads the CPU overlaps, not one per heap update.
    let mut fresh: Vec<Entry> = Vec::new();
    while let Some(c) = frontier.pop() {
        if found.len() >= ef && found.peek().is_some_and(|w| c < w.0) {
            break;
        }
        fresh.clear();
        fresh.extend(
            neighbours(c.item)
                .iter()
                .filter(|&&v| visited.insert(v))
                .map(|&v| Entry {
                    score: 0.0,
                    item: v,
                }),
        );
        query.prefetch(fresh.iter().map(|near| near.item));
        for near in &mut fresh {
            near.score = query.score(near.item);
        }
        *read += fresh.len();
        for &near in &fresh {
            if found.len() < ef || found.peek().is_some_and(|w| near > w.0) {
                frontier.push(near);
                found.push(std::cmp::Reverse(near));
                if found.len() > ef {
                    found.pop();
                }
            }
        }
    }
    let mut out: Vec<Entry> = found.into_iter().map(|r| r.0).collect();
    out.sort_unstable_by(|a, b| b.cmp(a));
    out
}

/// The paper's neighbour-selection heuristic: from `candidates` (best first by similarity to
/// the node being linked), keep a candidate only when it is more similar to that node than to
/// every one already kept, so the links point in different directions; at most `max`. The
/// room left is filled with the best of the candidates it passed over (the paper's
/// `keepPrunedConnections`): with inner product the heuristic alone leaves lists short and
/// small-norm items unreachable, and at 1M items recall@10 at `ef` 40 went from 0.90 to 0.96.
fn select(candidates: &[Entry], max: usize, sim: impl Fn(u32, u32) -> f32) -> Vec<u32> {
    let mut kept: Vec<u32> = Vec::with_capacity(max);
    let mut pruned: Vec<u32> = Vec::new();
    for c in candidates {
        if kept.len() == max {
            break;
        }
        if kept.iter().all(|&s| sim(c.item, s) < c.score) {
            kept.push(c.item);
        } else {
            pruned.push(c.item);
        }
    }
    let room = max - kept.len();
    kept.extend(pruned.into_iter().take(room));
    kept
}

/// The graph while it is built: the bottom layer flat, the few upper-layer nodes in maps.
struct Building<'a> {
    rows: Rows<'a>,
    degree: usize,
    upper_degree: usize,
    /// Slots per node on the bottom layer while building: `degree` and half as many again, so
    /// a full list is pruned once per several links back rather than on every one.
    stride: usize,
    base: Vec<u32>,
    upper: Vec<HashMap<u32, Vec<u32>>>,
    entry: u32,
}

/// What one inserted item found: its neighbours on each of its layers, bottom first.
type Links = Vec<Vec<u32>>;

impl Building<'_> {
    fn neighbours(&self, layer: usize, node: u32) -> &[u32] {
        let list: &[u32] = if layer == 0 {
            &self.base[node as usize * self.stride..(node as usize + 1) * self.stride]
        } else {
            self.upper[layer - 1].get(&node).map_or(&[], Vec::as_slice)
        };
        &list[..list
            .iter()
            .position(|&n| n == NO_NODE)
            .unwrap_or(list.len())]
    }

    /// Searches the graph for `node`'s neighbours on each of its `level + 1` layers.
    fn links(&self, node: u32, level: usize, ef: usize, visited: &mut Visited) -> Links {
        let query = Query {
            rows: self.rows,
            vector: self.rows.row(node),
        };
        let mut read = 0;
        let mut entry = Entry {
            score: query.score(self.entry),
            item: self.entry,
        };
        let top = self.upper.len();
        for layer in (level + 1..=top).rev() {
            entry = greedy(entry, |v| self.neighbours(layer, v), &query, &mut read);
        }
        let mut entries = vec![entry];
        let mut links = vec![Vec::new(); level + 1];
        for layer in (0..=level.min(top)).rev() {
            let found = search_layer(
                &entries,
                ef,
                |v| self.neighbours(layer, v),
                &query,
                visited,
                &mut read,
            );
            let max = if layer == 0 {
                self.degree
            } else {
                self.upper_degree
            };
            links[layer] = select(&found, max, |a, b| self.rows.sim(a, b));
            entries = found;
        }
        links
    }
}

/// The heuristic's choice of at most `keep` of `members` as `node`'s neighbours: scored by
/// similarity to `node`, best first, then [`select`].
fn prune(
    node: u32,
    members: impl Iterator<Item = u32>,
    keep: usize,
    sim: impl Fn(u32, u32) -> f32,
) -> Vec<u32> {
    let mut candidates: Vec<Entry> = members
        .map(|v| Entry {
            score: sim(node, v),
            item: v,
        })
        .collect();
    candidates.sort_unstable_by(|a, b| b.cmp(a));
    select(&candidates, keep, sim)
}

/// `list` (a node's current neighbours, [`NO_NODE`]-padded) with `added` linked in: appended while
/// there is room, else the heuristic's choice of `keep` among all of them.
fn link_back(
    list: &mut [u32],
    node: u32,
    added: impl Iterator<Item = u32>,
    keep: usize,
    sim: impl Fn(u32, u32) -> f32,
) {
    let mut all: Vec<u32> = list.iter().copied().filter(|&n| n != NO_NODE).collect();
    all.extend(added.filter(|&n| n != node));
    all.sort_unstable();
    all.dedup();
    if all.len() <= list.len() {
        list.fill(NO_NODE);
        list[..all.len()].copy_from_slice(&all);
        return;
    }
    let kept = prune(node, all.into_iter(), keep.min(list.len()), &sim);
    list.fill(NO_NODE);
    list[..kept.len()].copy_from_slice(&kept);
}

/// Builds the graph for `item_factors` (`items × k`), with `ef` 1 until
/// [`super::ServingAls::tune_probe`] picks one.
///
/// # Panics
/// If there are no items, `k` is 0, or a degree is 0 or above [`MAX_DEGREE`].
pub fn build_hnsw(item_factors: &[f32], k: usize, params: &HnswParams) -> HnswIndex {
    assert!(k > 0 && !item_factors.is_empty(), "nothing to index");
    assert!(
        (1..=MAX_DEGREE).contains(&params.degree)
            && (1..=MAX_DEGREE).contains(&params.upper_degree),
        "degrees out of range"
    );
    let n = item_factors.len() / k;
    let mut rng = Rng(params.seed);
    // Each layer up holds about one item in `upper_degree`.
    let scale = 1.0 / (params.upper_degree.max(2) as f64).ln();
    let levels: Vec<u8> = (0..n)
        .map(|_| {
            let u = 1.0 - rng.unit();
            ((-u.ln() * scale) as usize).min(MAX_LEVEL) as u8
        })
        .collect();
    // Largest norm first: with inner product the long vectors are the ones searches end at,
    // and a graph grown from them routes better. At 200k items (the benchmark's factors,
    // popularity-skewed norms) recall@10 at ef 20 was 0.96 inserting by norm and 0.90 in a
    // random order (faiss's: highest layer first, shuffled within).
    let norms: Vec<f32> = item_factors.chunks_exact(k).map(|y| dot(y, y)).collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.sort_by(|&a, &b| {
        norms[b as usize]
            .total_cmp(&norms[a as usize])
            .then(a.cmp(&b))
    });
    let slack = params.degree / 2;
    let mut g = Building {
        rows: Rows {
            factors: item_factors,
            k,
        },
        degree: params.degree,
        upper_degree: params.upper_degree,
        stride: params.degree + slack,
        base: vec![NO_NODE; n * (params.degree + slack)],
        upper: Vec::new(),
        entry: order[0],
    };
    g.raise(order[0], levels[order[0] as usize] as usize);
    let threads = params.threads.max(1);
    let ef = params.ef_construction.max(1);
    let mut done = 1usize;
    while done < n {
        let end = (done + (done / 8).clamp(1, MAX_BATCH)).min(n);
        let batch = &order[done..end];
        let per = batch.len().div_ceil(threads);
        let links: Vec<Links> = std::thread::scope(|scope| {
            let g = &g;
            let levels = &levels;
            let handles: Vec<_> = batch
                .chunks(per)
                .map(|chunk| {
                    scope.spawn(move || {
                        let mut visited = Visited {
                            slots: Vec::new(),
                            len: 0,
                        };
                        chunk
                            .iter()
                            .map(|&v| g.links(v, levels[v as usize] as usize, ef, &mut visited))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("a build thread panicked"))
                .collect()
        });
        g.insert(batch, &links, &levels, threads);
        done = end;
    }
    let layers = g
        .upper
        .iter()
        .map(|layer| {
            let mut nodes: Vec<u32> = layer.keys().copied().collect();
            nodes.sort_unstable();
            let mut neighbours = vec![NO_NODE; nodes.len() * params.upper_degree];
            for (slot, node) in neighbours.chunks_exact_mut(params.upper_degree).zip(&nodes) {
                let list = &layer[node];
                slot[..list.len()].copy_from_slice(list);
            }
            HnswLayer { nodes, neighbours }
        })
        .collect();
    let base = g.trimmed_base(threads);
    HnswIndex {
        degree: params.degree as u32,
        upper_degree: params.upper_degree as u32,
        base,
        layers,
        entry: g.entry,
        ef: 1,
    }
}

impl Building<'_> {
    /// Puts `node` on layers 1..=`level` (with no links yet); a node above the top becomes the
    /// entry.
    fn raise(&mut self, node: u32, level: usize) {
        if level > self.upper.len() {
            self.upper.resize_with(level, HashMap::new);
            self.entry = node;
        }
        for layer in &mut self.upper[..level] {
            layer.insert(node, Vec::new());
        }
    }

    /// The bottom layer as stored: lists longer than `degree` pruned by the heuristic, `degree`
    /// slots a node.
    fn trimmed_base(&self, threads: usize) -> Vec<u32> {
        let (stride, degree) = (self.stride, self.degree);
        let n = self.base.len() / stride;
        let mut out = vec![NO_NODE; n * degree];
        let per = n.div_ceil(threads.max(1)).max(1);
        std::thread::scope(|scope| {
            for (c, part) in out.chunks_mut(per * degree).enumerate() {
                scope.spawn(move || {
                    for (j, slot) in part.chunks_exact_mut(degree).enumerate() {
                        let node = (c * per + j) as u32;
                        let list = &self.base[node as usize * stride..][..stride];
                        let len = list.iter().position(|&v| v == NO_NODE).unwrap_or(stride);
                        if len <= degree {
                            slot[..len].copy_from_slice(&list[..len]);
                            continue;
                        }
                        let members = list[..len].iter().copied();
                        let kept = prune(node, members, degree, |a, b| self.rows.sim(a, b));
                        slot[..kept.len()].copy_from_slice(&kept);
                    }
                });
            }
        });
        out
    }

    /// Writes a batch's links and links each neighbour back.
    fn insert(&mut self, batch: &[u32], links: &[Links], levels: &[u8], threads: usize) {
        let mut back: Vec<(u32, u32)> = Vec::new();
        for (&v, links) in batch.iter().zip(links) {
            let list = &mut self.base[v as usize * self.stride..(v as usize + 1) * self.stride];
            list[..links[0].len()].copy_from_slice(&links[0]);
            back.extend(links[0].iter().map(|&u| (u, v)));
        }
        // The upper layers hold few nodes: linked one by one.
        for (&v, links) in batch.iter().zip(links) {
            self.raise(v, levels[v as usize] as usize);
            for (layer, list) in links.iter().enumerate().skip(1) {
                self.upper[layer - 1].insert(v, list.clone());
                for &u in list {
                    let mut theirs = self.upper[layer - 1].get(&u).cloned().unwrap_or_default();
                    theirs.resize(self.upper_degree, NO_NODE);
                    let sim = |a, b| self.rows.sim(a, b);
                    link_back(&mut theirs, u, std::iter::once(v), self.upper_degree, sim);
                    theirs.retain(|&n| n != NO_NODE);
                    self.upper[layer - 1].insert(u, theirs);
                }
            }
        }
        // The bottom layer: each thread links back into its own range of nodes.
        back.sort_unstable();
        let n = self.base.len() / self.stride;
        let per = n.div_ceil(threads);
        let (rows, degree, stride) = (self.rows, self.degree, self.stride);
        std::thread::scope(|scope| {
            let mut rest = back.as_slice();
            for (c, part) in self.base.chunks_mut(per * stride).enumerate() {
                let end = ((c + 1) * per) as u32;
                let split = rest.partition_point(|&(u, _)| u < end);
                let (mine, others) = rest.split_at(split);
                rest = others;
                if mine.is_empty() {
                    continue;
                }
                scope.spawn(move || {
                    let sim = |a, b| rows.sim(a, b);
                    let first = c * per;
                    for group in mine.chunk_by(|a, b| a.0 == b.0) {
                        let u = group[0].0;
                        let at = (u as usize - first) * stride;
                        link_back(
                            &mut part[at..at + stride],
                            u,
                            group.iter().map(|&(_, v)| v),
                            degree,
                            sim,
                        );
                    }
                });
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::clustered_model;
    use super::super::{
        AlsModel, AnnIndex, AnnParams, Filter, Search, take_bytes_read, with_ann_index,
    };
    use super::*;

    fn model(users: usize, items: usize, rank: usize) -> AlsModel {
        clustered_model(users, items, rank)
    }

    fn params() -> HnswParams {
        HnswParams {
            degree: 16,
            upper_degree: 8,
            ef_construction: 40,
            seed: 3,
            threads: 2,
        }
    }

    fn graphed(m: AlsModel) -> AlsModel {
        let graph = build_hnsw(&m.item_factors, m.rank as usize, &params());
        AlsModel {
            graph: Some(graph),
            ..m
        }
    }

    #[test]
    fn the_built_graph_is_valid_layered_and_reaches_every_item_a_user_wants() {
        let m = model(200, 5_000, 8);
        let g = build_hnsw(&m.item_factors, 8, &params());
        g.validate(5_000).unwrap();
        assert!(
            !g.layers.is_empty(),
            "5,000 items at upper degree 8 reach layer 1"
        );
        // Each layer up holds fewer nodes, about one in eight.
        let sizes: Vec<usize> = g.layers.iter().map(|l| l.nodes.len()).collect();
        assert!(sizes.windows(2).all(|w| w[0] >= w[1]), "{sizes:?}");
        assert!((300..1_000).contains(&sizes[0]), "{sizes:?}");
        // With inner product, items of small norm may be no one's best and unreachable; of the
        // items users want, all but a few (13 of 2,000 here) are reachable from the entry.
        let mut reached = vec![false; 5_000];
        let mut stack = vec![g.entry];
        reached[g.entry as usize] = true;
        while let Some(v) = stack.pop() {
            for &w in g.neighbours(0, v) {
                if !std::mem::replace(&mut reached[w as usize], true) {
                    stack.push(w);
                }
            }
        }
        let exact = m.clone().prepare().unwrap();
        let mut missing = 0;
        for u in 0..200 {
            for s in exact.recommend(u, 10, Filter::default()) {
                missing += usize::from(!reached[s.item as usize]);
            }
        }
        let total = reached.iter().filter(|&&r| r).count();
        assert!(
            missing <= 20,
            "{missing} of 2,000 wanted unreachable; {total} reached"
        );
        assert!(total > 2_500, "{total} reached");
        // Lists are full (the heuristic's room is filled) and never hold the node itself.
        for v in 0..5_000u32 {
            let list = g.neighbours(0, v);
            assert!(!list.contains(&v));
            assert_eq!(list.len(), 16, "node {v}");
        }
        // The same parameters give the same graph.
        assert_eq!(g, build_hnsw(&m.item_factors, 8, &params()));
    }

    #[test]
    fn damaged_graphs_are_refused() {
        let m = model(1, 2_000, 4);
        let good = build_hnsw(&m.item_factors, 4, &params());
        let check = |f: &dyn Fn(&mut HnswIndex)| {
            let mut bad = good.clone();
            f(&mut bad);
            bad.validate(2_000).unwrap_err().to_string()
        };
        assert!(check(&|g| g.base[5] = 2_000).contains("out of range"));
        assert!(
            check(&|g| {
                g.base.pop();
            })
            .contains("bottom layer")
        );
        assert!(check(&|g| g.degree = 0).contains("degrees"));
        assert!(check(&|g| g.ef = 0).contains("ef"));
        assert!(check(&|g| g.layers[0].nodes.swap(0, 1)).contains("increasing"));
        assert!(
            check(&|g| {
                g.layers[0].neighbours.pop();
            })
            .contains("slots")
        );
        let off_layer = (0..2_000u32)
            .find(|v| g_off(&good, *v))
            .expect("a node not on layer 1");
        assert!(check(&|g| g.layers[0].neighbours[0] = off_layer).contains("not on it"));
        assert!(check(&|g| g.entry = off_layer).contains("entry"));
        // The model's own validation runs the graph's.
        let damaged = AlsModel {
            graph: Some(HnswIndex {
                ef: 0,
                ..good.clone()
            }),
            ..m
        };
        assert!(damaged.prepare().is_err());
        assert!(good.validate(2_001).is_err(), "another catalogue");
    }

    fn g_off(g: &HnswIndex, v: u32) -> bool {
        g.layers[0].nodes.binary_search(&v).is_err()
    }

    #[test]
    fn ann_on_a_graph_reaches_the_tuned_recall_reading_a_fraction_of_the_catalogue() {
        let (items, k) = (20_000, 16);
        let m = model(300, items, k);
        let exact = m.clone().prepare().unwrap();
        let (tuned, build) = with_ann_index(m, &AnnParams::Hnsw(params()), 0.95, 10, 150).unwrap();
        assert!(build.recall_at_10 >= 0.95, "{build:?}");
        let graph = tuned.graph.as_ref().expect("the graph is stored");
        assert_eq!(graph.ef as usize, build.probe);
        assert!(tuned.index.is_none());
        let ann = tuned
            .prepare()
            .unwrap()
            .with_search(Search::Ann {
                probe: 0,
                oversample: 10,
            })
            .unwrap();
        assert_eq!(ann.ann_index(), Some(AnnIndex::Hnsw));
        // Users the breadth was not tuned on (the sample is every other user).
        let others: Vec<u32> = (1..300).step_by(2).collect();
        let held_out = ann.recall_at(&others, 10);
        assert!(held_out >= 0.92, "recall on other users {held_out}");
        // A sparse graph misses: the measurement can report less.
        let sparse = HnswParams {
            degree: 2,
            upper_degree: 2,
            ef_construction: 2,
            ..params()
        };
        let (poor, _) =
            with_ann_index(exact.model().clone(), &AnnParams::Hnsw(sparse), 0.0, 1, 10).unwrap();
        let poor = poor
            .prepare()
            .unwrap()
            .with_search(Search::Ann {
                probe: 1,
                oversample: 1,
            })
            .unwrap();
        assert!(poor.recall_at(&others, 10) < 0.9);
        // Bytes: the rows the walk scored, far below the catalogue's.
        take_bytes_read();
        let got = ann.recommend(7, 10, Filter::default());
        let read = take_bytes_read() as usize;
        assert!(read < items * k * 4 / 4, "{read} bytes");
        assert!(read >= build.probe * k * 4, "{read} bytes");
        // Scores are the exact ones.
        for s in &got {
            assert_eq!(s.score, exact.model().predict(7, s.item));
        }
    }

    #[test]
    fn graph_search_never_returns_seen_or_excluded_items_and_is_never_short() {
        let m = graphed(model(40, 6_000, 16))
            .prepare()
            .unwrap()
            .with_search(Search::Ann {
                probe: 10,
                oversample: 1,
            })
            .unwrap();
        for u in 0..40u32 {
            let best: Vec<u32> = m
                .recommend(u, 30, Filter::default())
                .iter()
                .map(|s| s.item)
                .collect();
            assert_eq!(best.len(), 30);
            // Excluding more items than the breadth still fills the answer.
            let f = Filter {
                exclude: &best,
                allow: None,
            };
            let next = m.recommend(u, 20, f);
            assert_eq!(next.len(), 20, "user {u}");
            for s in &next {
                assert!(!best.contains(&s.item), "user {u}: excluded {}", s.item);
                assert!(
                    m.model().seen(u).binary_search(&s.item).is_err(),
                    "user {u}: seen {} returned",
                    s.item
                );
            }
        }
    }

    #[test]
    fn the_graph_is_searched_before_lists_and_exact_mode_ignores_it() {
        let plain = model(20, 3_000, 8).prepare().unwrap();
        let both = AlsModel {
            index: Some(super::super::build_ivf(
                &plain.model().item_factors,
                8,
                &super::super::IvfParams {
                    lists: 20,
                    train_items: 800,
                    iterations: 5,
                    seed: 1,
                    threads: 1,
                },
            )),
            ..graphed(plain.model().clone())
        }
        .prepare()
        .unwrap();
        for u in 0..20 {
            assert_eq!(
                both.recommend(u, 10, Filter::default()),
                plain.recommend(u, 10, Filter::default())
            );
        }
        let ann = both
            .with_search(Search::Ann {
                probe: 100_000,
                oversample: 10,
            })
            .unwrap();
        assert_eq!(ann.ann_index(), Some(AnnIndex::Hnsw));
        assert_eq!(
            ann.search(),
            Search::Ann {
                probe: MAX_EF,
                oversample: 10
            }
        );
        let users: Vec<u32> = (0..20).collect();
        assert_eq!(ann.recall_at(&users, 10), 1.0, "a breadth of every item");
    }

    #[test]
    fn the_visited_set_grows_and_forgets() {
        let mut v = Visited {
            slots: Vec::new(),
            len: 0,
        };
        for i in 0..5_000u32 {
            assert!(v.insert(i * 7));
        }
        assert!(!v.insert(7 * 4_999));
        assert!(!v.insert(0));
        v.clear();
        assert!(v.insert(0));
    }
}
