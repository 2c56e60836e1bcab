//! Item factors as int8 codes, laid out for the scan, and the kernels that score them.
//!
//! A code row is an item's factors divided by its scale (`max |y| / 127`) and rounded; scores
//! are exact integer dot products with the user's codes, times the item's scale. Integer sums do
//! not depend on their order, so every kernel gives the same scores, bit for bit.
//!
//! **Layout.** Items sit in *slots* grouped in tiles of [`TILE`]; within a tile the codes go
//! dimension pair by dimension pair, each pair holding the tile's items side by side
//! (`[pair][item][2]`, 32 bytes). A tile is then scored by multiply-adding whole vectors against
//! the user's broadcast pair, with no per-item horizontal sum: the shape of x86's `pmaddwd`. An
//! odd rank gets a zero last dimension; the last tile is padded with zero codes and scale 0.
//! Slots may be padding elsewhere too (the IVF lists start each list on a tile).
//!
//! **Kernels.** The portable one is plain Rust the compiler vectorises for the build's target
//! (x86-64's baseline is SSE2). Where the CPU has AVX2 (checked once, when the codes are built),
//! the scan runs an AVX2 kernel through `pulp`, a safe wrapper over the intrinsics with runtime
//! detection (the workspace forbids `unsafe`). `scan_bench` times both on the benchmark's codes
//! ([`time_int8_kernels`]). In a micro-benchmark of 1M × rank 64 codes, the AVX2 kernel scanned
//! in 9.7-10.0 ms, the portable one in 12.6-12.7 ms and the earlier per-item loop in 14.4-15.3 ms.

#[cfg(target_arch = "x86_64")]
use pulp::x86::V3;

/// Items per tile.
pub(super) const TILE: usize = 16;

/// Marks a padding slot in [`Int8Items::quantise_slots`].
pub(super) const PADDING: u32 = u32::MAX;

/// Codes of `values` with scale `max |v| / 127`; a zero vector gets scale 0 and zero codes.
fn quantise_row(values: &[f32], codes: &mut [i8]) -> f32 {
    let max = values.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    if max == 0.0 || !max.is_finite() {
        codes.fill(0);
        return 0.0;
    }
    let scale = max / 127.0;
    for (c, &v) in codes.iter_mut().zip(values) {
        // |v / scale| ≤ 127 up to rounding; the clamp keeps the cast exact.
        *c = (v / scale).round().clamp(-127.0, 127.0) as i8;
    }
    scale
}

/// Which kernel scores the tiles, chosen once for this CPU.
#[derive(Debug, Clone, Copy)]
enum Kernel {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2(V3),
}

impl Kernel {
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = V3::try_new() {
            return Self::Avx2(simd);
        }
        Self::Portable
    }
}

/// Item factors as int8 codes in tiles, and one scale per slot: `y ≈ scale · code`.
#[derive(Debug, Clone)]
pub(super) struct Int8Items {
    /// Dimension pairs per item: `rank` rounded up to even, halved.
    pairs: usize,
    codes: Vec<i8>,
    scales: Vec<f32>,
    kernel: Kernel,
}

/// A user vector's codes, packed for the kernels: each dimension pair as one `i32`, the first
/// code in the low 16 bits and the second in the high 16, both sign-extended to 16 bits.
pub(super) struct Int8Query {
    packed: Vec<i32>,
}

impl Int8Items {
    /// Slot `i` holds item `i`.
    pub(super) fn quantise(factors: &[f32], k: usize) -> Self {
        let items = factors.len() / k.max(1);
        Self::build(k, items, |slot| Some(&factors[slot * k..(slot + 1) * k]))
    }

    /// Slot `s` holds item `slots[s]`, or nothing when it is [`PADDING`].
    pub(super) fn quantise_slots(factors: &[f32], k: usize, slots: &[u32]) -> Self {
        Self::build(k, slots.len(), |slot| {
            let i = slots[slot];
            (i != PADDING).then(|| &factors[i as usize * k..(i as usize + 1) * k])
        })
    }

    fn build<'a>(k: usize, slots: usize, row: impl Fn(usize) -> Option<&'a [f32]>) -> Self {
        let pairs = k.div_ceil(2);
        let tiles = slots.div_ceil(TILE);
        let mut codes = vec![0i8; tiles * TILE * 2 * pairs];
        let mut scales = vec![0.0f32; tiles * TILE];
        let mut item = vec![0i8; 2 * pairs];
        for slot in 0..slots {
            let Some(y) = row(slot) else { continue };
            scales[slot] = quantise_row(y, &mut item[..k]);
            let tile = &mut codes[(slot / TILE) * TILE * 2 * pairs..];
            let j = slot % TILE;
            for (p, pair) in item.chunks_exact(2).enumerate() {
                tile[p * 2 * TILE + 2 * j..][..2].copy_from_slice(pair);
            }
        }
        Self {
            pairs,
            codes,
            scales,
            kernel: Kernel::detect(),
        }
    }

    /// Slots held, a multiple of [`TILE`].
    pub(super) fn slots(&self) -> usize {
        self.scales.len()
    }

    /// Bytes held: codes plus scales.
    pub(super) fn bytes(&self) -> usize {
        self.codes.len() + 4 * self.scales.len()
    }

    /// Bytes a scan reads per slot: codes plus scale.
    pub(super) fn bytes_per_slot(&self) -> usize {
        2 * self.pairs + 4
    }

    /// The code of dimension `d` in `slot`.
    #[cfg(test)]
    fn code(&self, slot: usize, d: usize) -> i8 {
        let tile = (slot / TILE) * TILE * 2 * self.pairs;
        self.codes[tile + (d / 2) * 2 * TILE + 2 * (slot % TILE) + d % 2]
    }

    /// The user's codes (the user's own scale is left out: it multiplies every score alike).
    pub(super) fn query(&self, user_vector: &[f32]) -> Int8Query {
        let mut codes = vec![0i8; 2 * self.pairs];
        quantise_row(user_vector, &mut codes[..user_vector.len()]);
        let packed = codes
            .chunks_exact(2)
            .map(|q| {
                let low = u32::from(i16::from(q[0]) as u16);
                let high = u32::from(i16::from(q[1]) as u16);
                ((high << 16) | low) as i32
            })
            .collect();
        Int8Query { packed }
    }

    /// Scores `slots` a row at a time into `row` and hands each row to `each` with its first
    /// slot; the last row holds what is left. `slots.start` is a multiple of [`TILE`]. The one
    /// loop of the int8 scan, the ann lists' scan and the kernel timer.
    pub(super) fn score_rows(
        &self,
        query: &Int8Query,
        slots: std::ops::Range<usize>,
        row: &mut [f32; super::search::ROW_ITEMS],
        mut each: impl FnMut(&mut [f32], usize),
    ) {
        for first in slots.clone().step_by(row.len()) {
            let row = &mut row[..(slots.end - first).min(super::search::ROW_ITEMS)];
            self.score(query, first, row);
            each(row, first);
        }
    }

    /// The approximate scores of slots `first..first + row.len()` into `row`: the integer dot
    /// product times the slot's scale. `first` is a multiple of [`TILE`].
    pub(super) fn score(&self, query: &Int8Query, first: usize, row: &mut [f32]) {
        debug_assert!(first.is_multiple_of(TILE));
        let tiles = row.len().div_ceil(TILE);
        let tile_bytes = TILE * 2 * self.pairs;
        let codes = &self.codes[first / TILE * tile_bytes..][..tiles * tile_bytes];
        let scales = &self.scales[first..][..tiles * TILE];
        match self.kernel {
            Kernel::Portable => score_portable(&query.packed, codes, scales, row),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(simd) => simd.vectorize(Avx2Tiles {
                simd,
                query: &query.packed,
                codes,
                scales,
                row,
            }),
        }
    }
}

/// Milliseconds per scan of every item's codes for `user_vector` (scores only, no selection),
/// best of `passes`: with the portable kernel, and with the CPU's SIMD kernel where it has one.
/// For the benchmark that says which is faster (`scan_bench`); both give the same scores.
#[doc(hidden)]
pub fn time_int8_kernels(
    item_factors: &[f32],
    k: usize,
    user_vector: &[f32],
    passes: usize,
) -> (f64, Option<f64>) {
    let mut int8 = Int8Items::quantise(item_factors, k);
    let query = int8.query(user_vector);
    let mut row = [0.0f32; super::search::ROW_ITEMS];
    let mut time = |int8: &Int8Items| {
        let mut best = f64::INFINITY;
        for _ in 0..passes.max(1) {
            let t = std::time::Instant::now();
            int8.score_rows(&query, 0..int8.slots(), &mut row, |row, _| {
                std::hint::black_box(row);
            });
            best = best.min(t.elapsed().as_secs_f64() * 1e3);
        }
        best
    };
    let simd = match int8.kernel {
        Kernel::Portable => None,
        #[cfg(target_arch = "x86_64")]
        Kernel::Avx2(_) => Some(time(&int8)),
    };
    int8.kernel = Kernel::Portable;
    (time(&int8), simd)
}

/// The two codes of a packed query pair.
fn unpack(pair: i32) -> (i32, i32) {
    (i32::from(pair as i16), pair >> 16)
}

/// Every tile of `codes` scored into `row` (whose length may end inside the last tile).
fn score_portable(query: &[i32], codes: &[i8], scales: &[f32], row: &mut [f32]) {
    let tile_bytes = TILE * 2 * query.len();
    for ((out, tile), scales) in row
        .chunks_mut(TILE)
        .zip(codes.chunks_exact(tile_bytes))
        .zip(scales.chunks_exact(TILE))
    {
        let mut acc = [0i32; TILE];
        for (pair, &q) in tile.chunks_exact(2 * TILE).zip(query) {
            let (q0, q1) = unpack(q);
            for (a, c) in acc.iter_mut().zip(pair.chunks_exact(2)) {
                *a += q0 * i32::from(c[0]) + q1 * i32::from(c[1]);
            }
        }
        for ((o, a), s) in out.iter_mut().zip(acc).zip(scales) {
            *o = a as f32 * s;
        }
    }
}

/// The AVX2 kernel: per dimension pair, the tile's 32 codes widen to two vectors of sixteen
/// `i16` (eight items × two dimensions each) and `vpmaddwd` against the broadcast query pair
/// gives eight items' partial sums as `i32`. |code| ≤ 127, so a pair's sum fits easily.
#[cfg(target_arch = "x86_64")]
struct Avx2Tiles<'a> {
    simd: V3,
    query: &'a [i32],
    codes: &'a [i8],
    scales: &'a [f32],
    row: &'a mut [f32],
}

#[cfg(target_arch = "x86_64")]
impl pulp::NullaryFnOnce for Avx2Tiles<'_> {
    type Output = ();

    #[inline(always)]
    fn call(self) {
        use std::arch::x86_64::__m128i;
        let Self {
            simd,
            query,
            codes,
            scales,
            row,
        } = self;
        let tile_bytes = TILE * 2 * query.len();
        for ((out, tile), scales) in row
            .chunks_mut(TILE)
            .zip(codes.chunks_exact(tile_bytes))
            .zip(scales.chunks_exact(TILE))
        {
            let mut low = simd.avx._mm256_setzero_si256();
            let mut high = low;
            for (pair, &q) in tile.chunks_exact(2 * TILE).zip(query) {
                let q = simd.avx._mm256_set1_epi32(q);
                let bytes: [i8; 2 * TILE] = pair.try_into().expect("a pair is 32 codes");
                let [a, b]: [__m128i; 2] = pulp::cast(bytes);
                let a = simd.avx2._mm256_cvtepi8_epi16(a);
                let b = simd.avx2._mm256_cvtepi8_epi16(b);
                low = simd
                    .avx2
                    ._mm256_add_epi32(low, simd.avx2._mm256_madd_epi16(a, q));
                high = simd
                    .avx2
                    ._mm256_add_epi32(high, simd.avx2._mm256_madd_epi16(b, q));
            }
            let acc: [i32; TILE] = pulp::cast([low, high]);
            for ((o, a), s) in out.iter_mut().zip(acc).zip(scales) {
                *o = a as f32 * s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each item's score as the naive integer sum of its codes times the query's, times its scale.
    fn naive(int8: &Int8Items, query: &[i8], slots: usize) -> Vec<f32> {
        (0..slots)
            .map(|s| {
                let dot: i32 = (0..query.len())
                    .map(|d| i32::from(int8.code(s, d)) * i32::from(query[d]))
                    .sum();
                dot as f32 * int8.scales[s]
            })
            .collect()
    }

    fn codes_of(v: &[f32]) -> Vec<i8> {
        let mut c = vec![0i8; v.len()];
        quantise_row(v, &mut c);
        c
    }

    #[test]
    fn codes_reconstruct_each_factor_within_half_a_step() {
        let k = 13;
        let factors: Vec<f32> = (0..300 * k)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let int8 = Int8Items::quantise(&factors, k);
        assert_eq!(int8.slots(), 304, "300 items in tiles of 16");
        for (i, y) in factors.chunks_exact(k).enumerate() {
            let s = int8.scales[i];
            for (d, &v) in y.iter().enumerate() {
                let back = f32::from(int8.code(i, d)) * s;
                assert!((back - v).abs() <= s * 0.5 + 1e-7, "item {i} dim {d}");
            }
        }
        let mut zero = [5i8; 3];
        assert_eq!(quantise_row(&[0.0; 3], &mut zero), 0.0);
        assert_eq!(zero, [0; 3]);
    }

    #[test]
    fn every_kernel_equals_the_naive_sum_at_the_extremes_and_odd_ranks() {
        for k in [13usize, 64, 70] {
            // Items alternate between all −max and a ramp; the last tile is partly padding.
            let items = 37;
            let factors: Vec<f32> = (0..items * k)
                .map(|i| match (i / k) % 2 {
                    0 => -1.0,
                    _ => (i % k) as f32 - (k / 2) as f32,
                })
                .collect();
            let int8 = Int8Items::quantise(&factors, k);
            for user in [vec![1.0f32; k], (0..k).map(|d| d as f32 - 3.0).collect()] {
                let query = int8.query(&user);
                let want = naive(&int8, &codes_of(&user), items);
                let mut portable = vec![0.0f32; items];
                score_portable(&query.packed, &int8.codes, &int8.scales, &mut portable);
                assert_eq!(portable, want, "portable kernel, rank {k}");
                let mut dispatched = vec![0.0f32; items];
                int8.score(&query, 0, &mut dispatched);
                assert_eq!(dispatched, want, "{:?} kernel, rank {k}", int8.kernel);
                // From the second tile on, into a row that ends inside a tile.
                let mut part = vec![0.0f32; 19];
                int8.score(&query, TILE, &mut part);
                assert_eq!(part, want[TILE..TILE + 19], "rank {k}");
            }
            // The extreme: 127 · −127 in every dimension.
            let query = int8.query(&vec![1.0f32; k]);
            let mut row = [0.0f32; 1];
            int8.score(&query, 0, &mut row);
            assert_eq!(row[0], (-127 * 127 * k as i32) as f32 * int8.scales[0]);
        }
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") {
            let int8 = Int8Items::quantise(&[1.0; 8], 8);
            assert!(
                matches!(int8.kernel, Kernel::Avx2(_)),
                "AVX2 is used where present"
            );
        }
    }

    #[test]
    fn padding_slots_hold_zero_codes_and_scale() {
        let k = 4;
        let factors: Vec<f32> = (0..3 * k).map(|i| i as f32 + 1.0).collect();
        let int8 = Int8Items::quantise_slots(&factors, k, &[2, PADDING, 0]);
        assert_eq!(int8.slots(), TILE);
        assert_eq!(int8.scales[1], 0.0);
        assert!((0..k).all(|d| int8.code(1, d) == 0));
        assert_eq!(int8.scales[0], 12.0 / 127.0, "slot 0 holds item 2");
        assert_eq!(int8.scales[2], 4.0 / 127.0, "slot 2 holds item 0");
    }

    #[test]
    fn the_kernel_timer_scans_a_catalogue_that_ends_in_a_partial_row() {
        // 1,000 items: three rows of 256 and a last one of 232 (scan_bench's 100k ends in 160).
        let k = 8;
        let factors: Vec<f32> = (0..1_000 * k).map(|i| (i % 7) as f32 - 3.0).collect();
        let (portable, simd) = time_int8_kernels(&factors, k, &[0.5; 8], 1);
        assert!(portable.is_finite() && portable >= 0.0, "{portable}");
        assert!(
            simd.is_none_or(|ms| ms.is_finite() && ms >= 0.0),
            "{simd:?}"
        );
    }
}
