//! Which versions a server serves, from its environment.
//!
//! | variable | meaning |
//! |---|---|
//! | `MODEL_NAME` | the registered model (default per service: `fraud`, `recommender`) |
//! | `MODEL_VERSION` | a number pins that version (rollback = set it back); a name follows that alias and hot-reloads when it moves; default `production` |
//! | `MODEL_VERSION_B` | the second version of an A/B experiment (number or alias) |
//! | `AB_PERCENT_B` | share of request keys sent to B, 0-100 (default 10 when B is set) |
//! | `MODEL_VERSION_SHADOW` | a version scored on a copy of traffic, never returned |
//! | `MODEL_POLL_SECONDS` | how often aliases are re-resolved (default 30) |
//! | `MODEL_CACHE_DIR` | keep last-good artifacts here, to serve through a store outage at restart |
//! | `MODEL_CACHE_KEEP` | older artifacts the cache keeps per slot besides the current one, 0-100 (default 2) |
//! | `SHADOW_CONCURRENCY` | shadow comparisons in flight (default 2); more are dropped and counted |
//! | `MAX_BODY_BYTES` | largest JSON body a model server accepts (default 1 MiB) |

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::Error;
use crate::model_id::{AliasName, ModelName, ModelVersion};
use crate::settings::Env;

/// A version pinned by number, or an alias followed as it moves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    Pinned(ModelVersion),
    Alias(AliasName),
}

impl FromStr for Selector {
    type Err = Error;
    /// `"7"` pins version 7 (`"v7"` too); anything else must be an alias name.
    fn from_str(s: &str) -> Result<Self, Error> {
        let digits = s
            .strip_prefix('v')
            .filter(|d| d.bytes().all(|b| b.is_ascii_digit()) && !d.is_empty());
        if s.bytes().all(|b| b.is_ascii_digit()) || digits.is_some() {
            return Ok(Self::Pinned(digits.unwrap_or(s).parse()?));
        }
        Ok(Self::Alias(AliasName::parse(s)?))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pinned(v) => write!(f, "{v}"),
            Self::Alias(a) => write!(f, "{a}"),
        }
    }
}

/// A share of traffic in whole percent, 0 to 100.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Percent(u8);

impl Percent {
    pub fn get(self) -> u8 {
        self.0
    }
}

impl FromStr for Percent {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let value: u8 = s
            .trim_end_matches('%')
            .parse()
            .map_err(|_| "must be a whole number from 0 to 100".to_owned())?;
        if value > 100 {
            return Err("must be a whole number from 0 to 100".into());
        }
        Ok(Self(value))
    }
}

/// An A/B experiment: B's selector and its share of request keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Experiment {
    pub b: Selector,
    pub percent_b: Percent,
}

/// Older artifacts kept per selector by default: enough to come up on the version before a bad
/// promotion, or the one before that, while the store is down, in a few artifacts' worth of disk.
pub const DEFAULT_CACHE_KEEP: usize = 2;
/// More would defeat the point of bounding an `emptyDir` measured in artifacts.
const MAX_CACHE_KEEP: usize = 100;

/// Everything a server needs to know about what to serve.
#[derive(Debug, Clone)]
pub struct ServingSettings {
    pub model: ModelName,
    pub primary: Selector,
    pub experiment: Option<Experiment>,
    pub shadow: Option<Selector>,
    pub poll_interval: Duration,
    pub cache_dir: Option<PathBuf>,
    /// Older artifacts `cache_dir` keeps per selector besides the current one.
    pub cache_keep: usize,
    pub shadow_concurrency: usize,
    pub max_body_bytes: usize,
}

impl ServingSettings {
    /// Reads the variables in the module docs. `legacy_version_var` is an older name for
    /// `MODEL_VERSION` that is still honoured (the classic fraud service's `FF_CLF_VERSION`).
    /// Problems are recorded in `env`.
    pub fn from_env(
        env: &mut Env,
        default_model: &str,
        legacy_version_var: Option<&str>,
    ) -> Option<Self> {
        let model = env.parse_or::<ModelName>("MODEL_NAME", ModelName::parse(default_model).ok()?);
        let names: Vec<&str> = std::iter::once("MODEL_VERSION")
            .chain(legacy_version_var)
            .collect();
        // A bad version is recorded and reading goes on, so every other bad variable is reported
        // in the same error; the settings are withheld only at the end.
        let primary = match env.first_string(&names) {
            Some((name, raw)) => raw
                .parse::<Selector>()
                .map_err(|e| env.problem(name, e))
                .ok(),
            None => Some(Selector::Alias(AliasName::production())),
        };
        let b: Option<Selector> = env.optional("MODEL_VERSION_B");
        let percent: Option<Percent> = env.optional("AB_PERCENT_B");
        if percent.is_some() && b.is_none() && env.optional_string("MODEL_VERSION_B").is_none() {
            env.problem("AB_PERCENT_B", "is set but MODEL_VERSION_B is not");
        }
        let experiment = b.map(|b| Experiment {
            b,
            percent_b: percent.unwrap_or(Percent(10)),
        });
        let shadow = env.optional("MODEL_VERSION_SHADOW");
        let poll_seconds: f64 = env.parse_or("MODEL_POLL_SECONDS", 30.0);
        if !(0.05..=86_400.0).contains(&poll_seconds) {
            env.problem("MODEL_POLL_SECONDS", "must be between 0.05 and 86400");
        }
        let cache_dir = env.optional_string("MODEL_CACHE_DIR").map(PathBuf::from);
        let cache_keep: usize = env.parse_or("MODEL_CACHE_KEEP", DEFAULT_CACHE_KEEP);
        if cache_keep > MAX_CACHE_KEEP {
            env.problem(
                "MODEL_CACHE_KEEP",
                format_args!("must be a whole number from 0 to {MAX_CACHE_KEEP}"),
            );
        }
        let shadow_concurrency = env.parse_or("SHADOW_CONCURRENCY", 2usize);
        let max_body_bytes = env.parse_or("MAX_BODY_BYTES", 1024 * 1024usize);
        Some(Self {
            model,
            primary: primary?,
            experiment,
            shadow,
            poll_interval: Duration::from_secs_f64(poll_seconds.clamp(0.05, 86_400.0)),
            cache_dir,
            cache_keep: cache_keep.min(MAX_CACHE_KEEP),
            shadow_concurrency,
            max_body_bytes,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn numbers_pin_and_names_follow() {
        assert_eq!(
            "7".parse::<Selector>().unwrap(),
            Selector::Pinned(ModelVersion::new(7).unwrap())
        );
        assert_eq!(
            "v7".parse::<Selector>().unwrap(),
            Selector::Pinned(ModelVersion::new(7).unwrap())
        );
        assert_eq!(
            "staging".parse::<Selector>().unwrap(),
            Selector::Alias(AliasName::parse("staging").unwrap())
        );
        for bad in ["0", "v0", "Prod", "", "1.2"] {
            assert!(bad.parse::<Selector>().is_err(), "{bad}");
        }
    }

    #[test]
    fn defaults_follow_production_of_the_services_model() {
        let mut e = env(&[]);
        let s = ServingSettings::from_env(&mut e, "fraud", None).unwrap();
        e.finish().unwrap();
        assert_eq!(s.model.as_str(), "fraud");
        assert_eq!(s.primary, Selector::Alias(AliasName::production()));
        assert!(s.experiment.is_none() && s.shadow.is_none() && s.cache_dir.is_none());
        assert_eq!(s.poll_interval, Duration::from_secs(30));
        assert_eq!(s.cache_keep, DEFAULT_CACHE_KEEP);
    }

    #[test]
    fn the_cache_bound_reads_back_and_bad_ones_are_named() {
        let mut e = env(&[("MODEL_CACHE_DIR", "/cache"), ("MODEL_CACHE_KEEP", "0")]);
        let s = ServingSettings::from_env(&mut e, "fraud", None).unwrap();
        e.finish().unwrap();
        assert_eq!(s.cache_keep, 0);

        for bad in ["-1", "two", "101", "1.5"] {
            let mut e = env(&[("MODEL_CACHE_KEEP", bad)]);
            let _ = ServingSettings::from_env(&mut e, "fraud", None);
            let err = e.finish().unwrap_err().to_string();
            assert!(err.contains("MODEL_CACHE_KEEP"), "{bad}: {err}");
        }
    }

    #[test]
    fn a_full_experiment_reads_back() {
        let mut e = env(&[
            ("FF_CLF_VERSION", "3"),
            ("MODEL_VERSION_B", "4"),
            ("AB_PERCENT_B", "25"),
            ("MODEL_VERSION_SHADOW", "staging"),
            ("MODEL_POLL_SECONDS", "0.5"),
        ]);
        let s = ServingSettings::from_env(&mut e, "fraud", Some("FF_CLF_VERSION")).unwrap();
        e.finish().unwrap();
        assert_eq!(s.primary, Selector::Pinned(ModelVersion::new(3).unwrap()));
        let x = s.experiment.unwrap();
        assert_eq!(
            (x.b, x.percent_b.get()),
            (Selector::Pinned(ModelVersion::new(4).unwrap()), 25)
        );
        assert_eq!(
            s.shadow,
            Some(Selector::Alias(AliasName::parse("staging").unwrap()))
        );
        assert_eq!(s.poll_interval, Duration::from_millis(500));
    }

    #[test]
    fn bad_values_are_reported_by_variable() {
        let mut e = env(&[
            ("MODEL_VERSION", "Prod!"),
            ("AB_PERCENT_B", "150"),
            ("MODEL_POLL_SECONDS", "0"),
        ]);
        let settings = ServingSettings::from_env(&mut e, "fraud", None);
        let err = e.finish().unwrap_err().to_string();
        assert!(settings.is_none());
        for name in ["MODEL_VERSION:", "AB_PERCENT_B", "MODEL_POLL_SECONDS"] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }

        let mut e = env(&[("AB_PERCENT_B", "150"), ("MODEL_POLL_SECONDS", "0")]);
        let _ = ServingSettings::from_env(&mut e, "fraud", None);
        let err = e.finish().unwrap_err().to_string();
        assert!(err.contains("AB_PERCENT_B"), "{err}");
        assert!(err.contains("MODEL_POLL_SECONDS"), "{err}");
    }
}
