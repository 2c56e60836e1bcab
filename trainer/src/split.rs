//! The held-out split: which rows train and which rows test, as a pure function of each row.
//!
//! A row's side depends only on the row (a key column, its content, or its timestamp) and on the
//! recorded rule, never on the learner's seed, the row's position or how many rows the file
//! has. So a row keeps its side when the file grows or the learner's seed changes, and the gate
//! can tell, from a champion's recorded [`HeldOutRule`], which of today's held-out rows that
//! champion never trained on ([`HeldOutRows`]).
//!
//! The hash is FNV-1a (64 bit) of the key's bytes ([`key_hash`], in `suite_data::row_key`, as the
//! readers compute it while parsing), mixed with the rule's seed by SplitMix64's finaliser here
//! and read as a fraction of 2^64; both are fixed and named in the rule ([`HASH_NAME`]), so a
//! change of function can never pass for the same rule.

use suite_storage::registry::manifest::HeldOutRule;

use crate::Error;

pub use suite_data::row_key::{RowKey, key_hash};

/// The hash function, as recorded in [`HeldOutRule::Hash`].
pub const HASH_NAME: &str = "fnv1a64+splitmix64";

/// The split a run was asked for (`--split`, `--split-key`, `--test-fraction`, `--split-seed`).
#[derive(Debug, Clone, PartialEq)]
pub enum SplitRule {
    /// Held out when the hash of the key (the key column's text, or the row's content) falls
    /// below `test_fraction`.
    Hash {
        key_column: Option<String>,
        test_fraction: f64,
        seed: u64,
    },
    /// The newest `test_fraction` of rows by timestamp.
    Time { test_fraction: f64 },
}

/// How to choose held-out rows: `hash` (of a key column or the row's content) or `time`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitMethod {
    Hash,
    Time,
}

/// The split arguments both trainers share.
#[derive(Debug, Clone, clap::Args)]
pub struct SplitArgs {
    /// Share of rows held out for evaluation (ignored with a separate test file).
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// `hash`: a row is held out by the hash of its key (stable as the data grows); `time`
    /// (rating files with timestamps): the newest rows are held out.
    #[arg(long, value_enum, default_value_t = SplitMethod::Hash)]
    pub split: SplitMethod,
    /// A column whose value identifies a row (e.g. a transaction id): hashed for the split and
    /// not used as a feature. Without it, the row's whole content is hashed.
    #[arg(long)]
    pub split_key: Option<String>,
    /// Seeds the split's hash. Keep it fixed: a different seed holds out different rows, and
    /// the gate then cannot compare against a champion split with the old one.
    #[arg(long, default_value_t = 0)]
    pub split_seed: u64,
}

impl SplitArgs {
    /// The rule, checked.
    ///
    /// # Errors
    /// [`Error::Usage`] for a fraction outside (0, 1).
    pub fn rule(&self) -> Result<SplitRule, Error> {
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(Error::Usage(format!(
                "--test-fraction must be in (0, 1), not {}",
                self.test_fraction
            )));
        }
        Ok(match self.split {
            SplitMethod::Hash => SplitRule::Hash {
                key_column: self.split_key.clone(),
                test_fraction: self.test_fraction,
                seed: self.split_seed,
            },
            SplitMethod::Time => {
                if self.split_key.is_some() {
                    return Err(Error::Usage(
                        "--split-key applies to --split hash, not --split time".into(),
                    ));
                }
                SplitRule::Time {
                    test_fraction: self.test_fraction,
                }
            }
        })
    }
}

/// The row's place in [0, 1) under `seed`: held out when below the test fraction.
fn unit(hash: u64, seed: u64) -> f64 {
    let mut z = hash ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

/// A split of rows into training and held-out indices, with the rule as recorded.
#[derive(Debug, Clone)]
pub struct Split {
    pub train: Vec<usize>,
    pub test: Vec<usize>,
    pub record: HeldOutRule,
}

impl SplitRule {
    /// The key column a table reader must set aside, if any.
    pub fn key_column(&self) -> Option<&str> {
        match self {
            Self::Hash { key_column, .. } => key_column.as_deref(),
            Self::Time { .. } => None,
        }
    }

    /// Splits `keys` (one per row).
    ///
    /// # Errors
    /// [`Error::Usage`] for a time split of rows without timestamps.
    pub fn split(&self, keys: &[RowKey]) -> Result<Split, Error> {
        // A rule holds out exactly the rows a later gate will read off its record.
        let (held_out, record) = match self {
            Self::Hash {
                key_column,
                test_fraction,
                seed,
            } => (
                HeldOutRows::HashBelow {
                    seed: *seed,
                    fraction: *test_fraction,
                },
                HeldOutRule::Hash {
                    key_column: key_column.clone(),
                    test_fraction: *test_fraction,
                    hash_seed: *seed,
                    hash: HASH_NAME.to_owned(),
                },
            ),
            Self::Time { test_fraction } => {
                let cutoff = time_cutoff(keys, *test_fraction)?;
                (
                    HeldOutRows::From { cutoff },
                    HeldOutRule::Time {
                        cutoff,
                        test_fraction: *test_fraction,
                    },
                )
            }
        };
        let (test, train): (Vec<usize>, Vec<usize>) =
            (0..keys.len()).partition(|&i| held_out.contains(&keys[i]));
        Ok(Split {
            train,
            test,
            record,
        })
    }
}

/// The timestamp at which the newest `fraction` of rows begins.
fn time_cutoff(keys: &[RowKey], fraction: f64) -> Result<i64, Error> {
    let mut times = Vec::with_capacity(keys.len());
    for (row, key) in keys.iter().enumerate() {
        let Some(t) = key.time else {
            return Err(Error::Usage(format!(
                "--split time needs a timestamp on every row; row {} has none",
                row + 1
            )));
        };
        times.push(t);
    }
    if times.is_empty() {
        return Err(Error::Training("no rows to split".into()));
    }
    times.sort_unstable();
    let first_test = ((times.len() as f64) * (1.0 - fraction)).floor() as usize;
    Ok(times[first_test.min(times.len() - 1)])
}

/// The rows a recorded rule holds out. Read off a champion's rule, these are the challenger's
/// held-out rows that champion provably never trained on; a split uses its own rule's.
#[derive(Debug, Clone)]
pub enum HeldOutRows {
    /// Every row: the champion held out the same test file.
    All,
    /// Rows whose key hashes (same key, same function) below `fraction` under `seed`.
    HashBelow { seed: u64, fraction: f64 },
    /// Rows at or after `cutoff`.
    From { cutoff: i64 },
}

impl HeldOutRows {
    /// Works out which rows the champion held out, or why none can be shown to be.
    ///
    /// # Errors
    /// A sentence for the gate's record when the rules cannot be reconciled (no rule recorded,
    /// another key column or hash function, a test file the champion did not hold out).
    pub fn between(
        challenger: &HeldOutRule,
        champion: Option<&HeldOutRule>,
    ) -> Result<Self, String> {
        let Some(champion) = champion else {
            return Err(
                "the champion records no held-out rule (published before rules were \
                        recorded), so no row can be shown to be unseen by it"
                    .into(),
            );
        };
        match (challenger, champion) {
            (HeldOutRule::File { sha256: ours, .. }, HeldOutRule::File { sha256: theirs, .. })
                if ours == theirs =>
            {
                Ok(Self::All)
            }
            (_, HeldOutRule::Time { cutoff, .. }) => Ok(Self::From { cutoff: *cutoff }),
            (
                HeldOutRule::Hash {
                    key_column: ours, ..
                },
                HeldOutRule::Hash {
                    key_column: theirs,
                    test_fraction,
                    hash_seed,
                    hash,
                },
            ) => {
                if hash != HASH_NAME {
                    return Err(format!(
                        "the champion's split hash is {hash:?}, this trainer's {HASH_NAME:?}"
                    ));
                }
                if ours != theirs {
                    return Err(format!(
                        "the champion's split key is {}, the challenger's {}",
                        describe_key(theirs.as_deref()),
                        describe_key(ours.as_deref())
                    ));
                }
                Ok(Self::HashBelow {
                    seed: *hash_seed,
                    fraction: *test_fraction,
                })
            }
            (ours, theirs) => Err(format!(
                "the champion held out rows by {}, the challenger by {}: no row is held out by both",
                describe(theirs),
                describe(ours)
            )),
        }
    }

    /// True when the champion held this row out.
    pub fn contains(&self, key: &RowKey) -> bool {
        match *self {
            Self::All => true,
            Self::HashBelow { seed, fraction } => unit(key.hash, seed) < fraction,
            Self::From { cutoff } => key.time.is_some_and(|t| t >= cutoff),
        }
    }
}

fn describe_key(column: Option<&str>) -> String {
    column.map_or_else(
        || "the row's content".to_owned(),
        |c| format!("column {c:?}"),
    )
}

fn describe(rule: &HeldOutRule) -> String {
    match rule {
        HeldOutRule::Hash { key_column, .. } => {
            format!("hash of {}", describe_key(key_column.as_deref()))
        }
        HeldOutRule::Time { .. } => "time".into(),
        HeldOutRule::File { source, .. } => format!("the test file {source}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<RowKey> {
        (0..n)
            .map(|i| RowKey {
                hash: key_hash([i.to_string().as_bytes()]),
                time: Some(i as i64),
            })
            .collect()
    }

    fn hash_rule(fraction: f64, seed: u64) -> SplitRule {
        SplitRule::Hash {
            key_column: None,
            test_fraction: fraction,
            seed,
        }
    }

    #[test]
    fn a_row_keeps_its_side_when_the_data_grows() {
        let rule = hash_rule(0.2, 0);
        let small = rule.split(&keys(10_000)).unwrap();
        let grown = rule.split(&keys(12_500)).unwrap();
        let share = small.test.len() as f64 / 10_000.0;
        assert!((share - 0.2).abs() < 0.02, "{share}");
        // The first 10,000 rows are split exactly as before.
        let grown_test: Vec<usize> = grown.test.into_iter().filter(|&i| i < 10_000).collect();
        assert_eq!(grown_test, small.test);
    }

    #[test]
    fn the_seed_and_the_key_choose_the_rows() {
        let a = hash_rule(0.2, 0).split(&keys(1_000)).unwrap();
        let b = hash_rule(0.2, 1).split(&keys(1_000)).unwrap();
        assert_ne!(a.test, b.test);
        assert_ne!(
            key_hash([b"ab".as_slice(), b"c"]),
            key_hash([b"a".as_slice(), b"bc"])
        );
    }

    #[test]
    fn a_time_split_holds_out_the_newest_rows() {
        let split = SplitRule::Time {
            test_fraction: 0.25,
        }
        .split(&keys(100))
        .unwrap();
        assert_eq!(split.test, (75..100).collect::<Vec<_>>());
        assert!(matches!(split.record, HeldOutRule::Time { cutoff: 75, .. }));
        let mut no_time = keys(3);
        no_time[1].time = None;
        let err = SplitRule::Time { test_fraction: 0.5 }
            .split(&no_time)
            .unwrap_err();
        assert!(err.to_string().contains("row 2"), "{err}");
    }

    #[test]
    fn the_champions_held_out_rows_follow_its_own_rule() {
        let rows = keys(5_000);
        let champion = hash_rule(0.1, 0).split(&rows).unwrap();
        let challenger = hash_rule(0.2, 0).split(&rows).unwrap();
        let held = HeldOutRows::between(&challenger.record, Some(&champion.record)).unwrap();
        let shared: Vec<usize> = challenger
            .test
            .iter()
            .copied()
            .filter(|&i| held.contains(&rows[i]))
            .collect();
        // Exactly the champion's test rows: none of them was in its training set.
        assert_eq!(shared, champion.test);
        assert!(champion.train.iter().all(|&i| !held.contains(&rows[i])));
    }

    #[test]
    fn rules_that_cannot_be_reconciled_say_why() {
        let rows = keys(10);
        let content = hash_rule(0.2, 0).split(&rows).unwrap().record;
        let keyed = SplitRule::Hash {
            key_column: Some("txn_id".into()),
            test_fraction: 0.2,
            seed: 0,
        }
        .split(&rows)
        .unwrap()
        .record;
        let file = HeldOutRule::File {
            source: "t.csv".into(),
            sha256: "ab".into(),
        };
        let cases = [
            (&content, None, "records no held-out rule"),
            (&keyed, Some(&content), "column \"txn_id\""),
            (&file, Some(&content), "no row is held out by both"),
        ];
        for (challenger, champion, needle) in cases {
            let err = HeldOutRows::between(challenger, champion).unwrap_err();
            assert!(err.contains(needle), "{needle}: {err}");
        }
        assert!(matches!(
            HeldOutRows::between(&file, Some(&file.clone())),
            Ok(HeldOutRows::All)
        ));
    }
}
