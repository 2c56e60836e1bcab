//! Choosing the top `n` from rows of scores without sorting the catalogue.
//!
//! Scores arrive a row (a tile of items) at a time, with the sorted lists of excluded items.
//! [`Candidates`] keeps only the items that may still make the top `n`: the common case, a run
//! of scores none of which beats the current `n`-th best, costs a vectorised max and one compare.
//! A `margin` keeps near-misses too, for scores that are approximate (the batched scan); the
//! candidates are then rescored exactly and chosen like [`TopN`]: scores descending, ties to the
//! lower index.

use super::{Scored, TopN};

/// The part of a sorted index list that falls in `range`.
fn within<'a>(sorted: &'a [u32], range: &std::ops::Range<u32>) -> &'a [u32] {
    let lo = sorted.partition_point(|&i| i < range.start);
    let hi = sorted.partition_point(|&i| i < range.end);
    &sorted[lo..hi]
}

/// Items whose approximate score may still make a user's top `n`.
pub(super) struct Candidates {
    n: usize,
    margin: f32,
    /// The `n`-th best approximate score so far minus `margin`; lower until `n` are known.
    threshold: f32,
    /// (approximate score, item); pruned to those ≥ `threshold` when it reaches `cap`.
    items: Vec<(f32, u32)>,
    cap: usize,
}

impl Candidates {
    pub(super) fn new(n: usize, margin: f32) -> Self {
        let cap = n.saturating_mul(4).saturating_add(32);
        Self {
            n,
            margin,
            threshold: f32::MIN,
            items: Vec::with_capacity(cap.min(1 << 16)),
            cap,
        }
    }

    /// Takes a row of approximate scores for items `offset..`, never choosing the items of the
    /// `excluded` lists (each sorted; their scores in `row` are set to −∞).
    pub(super) fn scan(&mut self, row: &mut [f32], offset: u32, excluded: &[&[u32]]) {
        let range = offset..offset + row.len() as u32;
        for &i in excluded.iter().flat_map(|sorted| within(sorted, &range)) {
            row[(i - offset) as usize] = f32::NEG_INFINITY;
        }
        const LANES: usize = 16;
        for (c, chunk) in row.chunks(LANES).enumerate() {
            // The common case, no score near the top, is a vectorised max and one compare.
            let best = chunk
                .iter()
                .fold(f32::NEG_INFINITY, |a, &s| if s > a { s } else { a });
            if best < self.threshold {
                continue;
            }
            let base = offset + (c * LANES) as u32;
            for (j, &s) in chunk.iter().enumerate() {
                if s >= self.threshold {
                    self.items.push((s, base + j as u32));
                    if self.items.len() >= self.cap {
                        self.prune();
                    }
                }
            }
        }
    }

    /// Raises the threshold to the `n`-th best score so far minus the margin and drops the rest.
    fn prune(&mut self) {
        if self.items.len() >= self.n {
            let (_, nth, _) = self
                .items
                .select_nth_unstable_by(self.n - 1, |a, b| b.0.total_cmp(&a.0));
            self.threshold = self.threshold.max(nth.0 - self.margin);
            let threshold = self.threshold;
            self.items.retain(|&(s, _)| s >= threshold);
        }
        // Many near-equal scores (duplicated items): grow rather than prune on every push.
        if self.items.len() * 2 > self.cap {
            self.cap = self.items.len().saturating_mul(2);
        }
    }

    /// The candidates left after pruning to the `n`-th best approximate score, unordered.
    pub(super) fn into_items(mut self) -> Vec<u32> {
        self.prune();
        self.items.into_iter().map(|(_, item)| item).collect()
    }

    /// The exact top `n`: the candidates rescored with `exact` and chosen as the per-user scan
    /// chooses (scores descending, ties to the lower index).
    pub(super) fn choose(mut self, exact: impl Fn(u32) -> f32) -> Vec<Scored> {
        self.prune();
        let mut top = TopN::new(self.n);
        for (_, item) in self.items {
            top.push(item, exact(item));
        }
        top.into_sorted()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_keep_every_score_within_the_margin_of_the_nth() {
        let mut c = Candidates::new(2, 0.5);
        c.scan(&mut [1.0, 3.0, 2.8, 2.4, 9.0, 2.6, 0.0], 10, &[&[14]]);
        let mut kept: Vec<u32> = {
            c.prune();
            c.items.iter().map(|&(_, i)| i).collect()
        };
        kept.sort_unstable();
        // Item 14 (9.0) is excluded; 2nd best is then 2.8: keep ≥ 2.3 (items 11, 12, 13, 15).
        assert_eq!(kept, vec![11, 12, 13, 15]);
        let top = c.choose(|i| i as f32);
        assert_eq!(top.iter().map(|s| s.item).collect::<Vec<_>>(), vec![15, 13]);
    }
}
