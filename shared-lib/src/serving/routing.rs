//! A/B assignment: a stable hash of a request key decides the variant, so one user (or card)
//! always sees the same variant, on every replica, across restarts and releases.
//!
//! The hash is FNV-1a 64 of the key's bytes, fixed here forever (std's `DefaultHasher` may
//! change between Rust releases and is randomly keyed per process, which would reshuffle users).

use serde::Serialize;

use super::selection::Percent;

/// Which arm of an experiment served a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    A,
    B,
}

impl Variant {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::A => "a",
            Self::B => "b",
        }
    }
}

/// FNV-1a, 64 bit.
pub fn stable_hash(key: &[u8]) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    key.iter()
        .fold(OFFSET, |h, b| (h ^ u64::from(*b)).wrapping_mul(PRIME))
}

/// The variant for `key`: B for keys whose bucket (hash mod 100) is below `percent_b`.
pub fn assign(key: &str, percent_b: Percent) -> Variant {
    // Fold the high bits in: FNV's low bits are weak for short keys that differ in one byte.
    let h = stable_hash(key.as_bytes());
    let bucket = (h ^ (h >> 32)) % 100;
    if bucket < u64::from(percent_b.get()) {
        Variant::B
    } else {
        Variant::A
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pct(p: u8) -> Percent {
        p.to_string().parse().unwrap()
    }

    #[test]
    fn the_hash_is_fixed_forever() {
        // Published FNV-1a 64 test vectors: changing the hash would reshuffle every user.
        assert_eq!(stable_hash(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(stable_hash(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(stable_hash(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn assignment_is_sticky_and_follows_the_split() {
        for p in [0u8, 10, 25, 50, 100] {
            let n = 10_000;
            let b = (0..n)
                .filter(|i| assign(&format!("user-{i}"), pct(p)) == Variant::B)
                .count();
            let share = b as f64 / n as f64 * 100.0;
            assert!(
                (share - f64::from(p)).abs() <= 1.5,
                "{p}% asked, {share:.2}% got"
            );
            for i in 0..100 {
                let key = format!("card-{i}");
                assert_eq!(assign(&key, pct(p)), assign(&key, pct(p)));
            }
        }
    }

    #[test]
    fn raising_the_share_only_moves_users_from_a_to_b() {
        for i in 0..5_000 {
            let key = format!("u{i}");
            if assign(&key, pct(20)) == Variant::B {
                assert_eq!(
                    assign(&key, pct(30)),
                    Variant::B,
                    "{key} left B when B grew"
                );
            }
        }
    }
}
