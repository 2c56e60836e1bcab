//! Synthetic card transactions whose fraud label follows a known, non-linear rule, so tests and
//! benchmarks can check that a model recovers it.
//!
//! Each row is drawn independently (seeded, so a seed always gives the same file):
//! - `amount_spent_past_mo`: the card's spend over the last month, log-normal, median 1 200;
//! - `txn_amount`: this transaction's amount, log-normal, median 50;
//! - `txns_same_merchant`: earlier transactions of this card at this merchant: 0 for a first
//!   visit (35 % of rows), otherwise 1 + Poisson(6).
//!
//! **The rule.** A transaction is fraud when it is large *relative to the card's habits* at a
//! merchant the card barely knows:
//!
//! ```text
//! fraud = (txn_amount > 0.3 · amount_spent_past_mo  and  txns_same_merchant <= 1)
//!      or (txn_amount > 1 500                       and  txns_same_merchant == 0)
//! ```
//!
//! No single feature and no linear cut separates it: the first clause is a ratio of two
//! features gated by the third. **Label noise:** 5 % of rule-fraud rows are labelled legitimate
//! (missed fraud) and 0.1 % of the others fraud (false reports), which puts the labelled fraud
//! rate near 2 % and the best achievable ROC AUC near 0.97.

use std::io::Write as _;
use std::path::Path;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng as _};
use rand_distr::{Distribution as _, LogNormal, Poisson};
use serde::Serialize;

use crate::Error;

/// The header of generated files; `is_fraud` is the label.
pub const HEADER: &str = "txn_amount,amount_spent_past_mo,txns_same_merchant,is_fraud";

const MISSED_FRAUD: f64 = 0.05;
const FALSE_REPORT: f64 = 0.001;

/// What was written.
#[derive(Debug, Clone, Serialize)]
pub struct Generated {
    pub out: String,
    pub rows: usize,
    pub fraud: usize,
    pub fraud_rate: f64,
    pub seed: u64,
    pub rule: &'static str,
}

/// The noiseless rule (see the module doc).
pub fn rule(txn_amount: f64, amount_spent_past_mo: f64, txns_same_merchant: f64) -> bool {
    (txn_amount > 0.3 * amount_spent_past_mo && txns_same_merchant <= 1.0)
        || (txn_amount > 1500.0 && txns_same_merchant == 0.0)
}

/// One generated row: features and label.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Transaction {
    pub txn_amount: f64,
    pub amount_spent_past_mo: f64,
    pub txns_same_merchant: f64,
    pub is_fraud: bool,
}

/// An endless seeded stream of transactions.
pub struct TransactionGenerator {
    rng: StdRng,
    monthly: LogNormal<f64>,
    amount: LogNormal<f64>,
    visits: Poisson<f64>,
}

impl TransactionGenerator {
    /// # Errors
    /// Never in practice: the distribution parameters are constants.
    pub fn new(seed: u64) -> Result<Self, Error> {
        let bad = |e: String| Error::Training(format!("generator parameters: {e}"));
        Ok(Self {
            rng: StdRng::seed_from_u64(seed),
            monthly: LogNormal::new(1200f64.ln(), 0.7).map_err(|e| bad(e.to_string()))?,
            amount: LogNormal::new(50f64.ln(), 1.0).map_err(|e| bad(e.to_string()))?,
            visits: Poisson::new(6.0).map_err(|e| bad(e.to_string()))?,
        })
    }

    pub fn next_transaction(&mut self) -> Transaction {
        let round2 = |x: f64| (x * 100.0).round() / 100.0;
        let amount_spent_past_mo = round2(self.monthly.sample(&mut self.rng));
        let txn_amount = round2(self.amount.sample(&mut self.rng)).max(0.01);
        let txns_same_merchant = if self.rng.gen_bool(0.35) {
            0.0
        } else {
            1.0 + self.visits.sample(&mut self.rng)
        };
        let truth = rule(txn_amount, amount_spent_past_mo, txns_same_merchant);
        let flip = self
            .rng
            .gen_bool(if truth { MISSED_FRAUD } else { FALSE_REPORT });
        Transaction {
            txn_amount,
            amount_spent_past_mo,
            txns_same_merchant,
            is_fraud: truth != flip,
        }
    }
}

/// Writes `rows` transactions to `out` as CSV.
///
/// # Errors
/// [`Error::Output`] if the file cannot be written.
pub fn write_transactions(out: &Path, rows: usize, seed: u64) -> Result<Generated, Error> {
    let io = |source| Error::Output {
        path: out.to_path_buf(),
        source,
    };
    let file = std::fs::File::create(out).map_err(io)?;
    let mut w = std::io::BufWriter::new(file);
    writeln!(w, "{HEADER}").map_err(io)?;
    let mut generator = TransactionGenerator::new(seed)?;
    let mut fraud = 0;
    for _ in 0..rows {
        let t = generator.next_transaction();
        fraud += usize::from(t.is_fraud);
        writeln!(
            w,
            "{:.2},{:.2},{},{}",
            t.txn_amount,
            t.amount_spent_past_mo,
            t.txns_same_merchant,
            u8::from(t.is_fraud)
        )
        .map_err(io)?;
    }
    w.into_inner()
        .map_err(|e| io(e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(Generated {
        out: out.display().to_string(),
        rows,
        fraud,
        fraud_rate: if rows == 0 {
            0.0
        } else {
            fraud as f64 / rows as f64
        },
        seed,
        rule: "fraud = (txn_amount > 0.3*amount_spent_past_mo and txns_same_merchant <= 1) \
               or (txn_amount > 1500 and txns_same_merchant == 0); 5% of fraud and 0.1% of \
               legitimate labels flipped",
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_two_percent_is_fraud_and_the_rule_explains_most_of_it() {
        let mut g = TransactionGenerator::new(1).unwrap();
        let rows: Vec<Transaction> = (0..50_000).map(|_| g.next_transaction()).collect();
        let fraud = rows.iter().filter(|t| t.is_fraud).count() as f64 / 50_000.0;
        assert!((0.015..0.025).contains(&fraud), "{fraud}");
        let agree = rows
            .iter()
            .filter(|t| {
                rule(t.txn_amount, t.amount_spent_past_mo, t.txns_same_merchant) == t.is_fraud
            })
            .count() as f64
            / 50_000.0;
        assert!(
            agree > 0.995 && agree < 1.0,
            "labels are noisy but close: {agree}"
        );
    }

    #[test]
    fn the_rule_needs_all_three_features() {
        assert!(rule(500.0, 1000.0, 0.0));
        assert!(!rule(500.0, 2000.0, 0.0), "small relative to monthly spend");
        assert!(!rule(500.0, 1000.0, 2.0), "a known merchant");
        assert!(rule(2000.0, 100_000.0, 0.0), "very large at a new merchant");
        assert!(!rule(2000.0, 100_000.0, 1.0));
    }

    #[test]
    fn a_seed_always_writes_the_same_file() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b, c) = (
            dir.path().join("a"),
            dir.path().join("b"),
            dir.path().join("c"),
        );
        let report = write_transactions(&a, 200, 5).unwrap();
        write_transactions(&b, 200, 5).unwrap();
        write_transactions(&c, 200, 6).unwrap();
        let text = std::fs::read_to_string(&a).unwrap();
        assert_eq!(text, std::fs::read_to_string(&b).unwrap());
        assert_ne!(text, std::fs::read_to_string(&c).unwrap());
        assert!(text.starts_with(&format!("{HEADER}\n")));
        assert_eq!(text.lines().count(), 201);
        let fraud_lines = text.lines().filter(|l| l.ends_with(",1")).count();
        assert_eq!(report.fraud, fraud_lines);
    }
}
