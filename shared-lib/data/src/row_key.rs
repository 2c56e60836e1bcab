//! What the held-out split needs of each row, computed while the readers parse it: the hash of
//! the row's key and, for rating files, its time. The trainer's `split` module turns the hash
//! into a side with the rule's seed; the function pair is named there (`HASH_NAME`).

/// What the split needs of one row: its key's unseeded hash and, for rating files, its time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowKey {
    pub hash: u64,
    pub time: Option<i64>,
}

/// FNV-1a over `parts`, each followed by a unit separator so `("ab","c")` ≠ `("a","bc")`.
pub fn key_hash<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0100_0000_01b3;
    let mut h = OFFSET;
    for part in parts {
        for &b in part.iter().chain(&[0x1f]) {
            h ^= u64::from(b);
            h = h.wrapping_mul(PRIME);
        }
    }
    h
}
