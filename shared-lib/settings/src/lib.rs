//! Settings from environment variables, with every problem reported at once by name.
//!
//! Each binary builds its settings struct by asking an [`Env`] for variables; a bad or missing
//! value is recorded rather than returned, so [`Env::finish`] can fail start-up with the full
//! list ("PORT: must be a number; MODEL_STORE: …") instead of one problem per restart.
//!
//! Every name asked for can be recorded ([`NameRecorder`]): each binary has a test that runs its
//! settings reader down every branch and compares the names with its committed `env-names.txt`,
//! which `scripts/check_env_names.py` reads to prove every variable a manifest sets is one its
//! binary reads. So the check reads what the code asks for, not a guess from its source text.

use std::cell::RefCell;
use std::collections::{BTreeSet, HashMap};
use std::fmt::Display;
use std::str::FromStr;

use suite_models::Error;

/// A snapshot of the environment that collects problems.
#[derive(Debug)]
pub struct Env {
    vars: HashMap<String, String>,
    problems: Vec<String>,
}

impl Env {
    /// The process environment (variables with non-UTF-8 values are reported when read).
    pub fn from_process() -> Self {
        Self::from_pairs(
            std::env::vars_os().filter_map(|(k, v)| {
                Some((k.into_string().ok()?, v.to_string_lossy().into_owned()))
            }),
        )
    }

    /// A given set of variables, for tests and for launchers that build a child's environment.
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            vars: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            problems: Vec::new(),
        }
    }

    /// Records a problem with variable `name`.
    pub fn problem(&mut self, name: &str, message: impl Display) {
        self.problems.push(format!("{name}: {message}"));
    }

    /// The value of `name`; unset and empty are the same (Kubernetes renders missing keys as "").
    /// Every reader below asks through here, so this is where names are recorded.
    pub fn optional_string(&self, name: &str) -> Option<String> {
        RECORDED.with_borrow_mut(|names| {
            if let Some(names) = names {
                names.insert(name.to_owned());
            }
        });
        self.vars
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
    }

    /// The value of `name`, or `default`.
    pub fn string_or(&self, name: &str, default: &str) -> String {
        self.optional_string(name)
            .unwrap_or_else(|| default.to_owned())
    }

    /// The first of `names` that is set, with its name.
    pub fn first_string<'n>(&self, names: &[&'n str]) -> Option<(&'n str, String)> {
        names
            .iter()
            .find_map(|name| self.optional_string(name).map(|v| (*name, v)))
    }

    /// `name` parsed as `T`, `None` when unset; a value that does not parse is a problem.
    pub fn optional<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        let raw = self.optional_string(name)?;
        match raw.parse() {
            Ok(value) => Some(value),
            Err(e) => {
                self.problem(name, format_args!("{raw:?} is not valid: {e}"));
                None
            }
        }
    }

    /// `name` parsed as `T`, or `default` when unset (or invalid, after recording the problem).
    pub fn parse_or<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: Display,
    {
        self.optional(name).unwrap_or(default)
    }

    /// `name` parsed as `T`; unset is a problem.
    pub fn required<T>(&mut self, name: &str) -> Option<T>
    where
        T: FromStr,
        T::Err: Display,
    {
        if self.optional_string(name).is_none() {
            self.problem(name, "is required but not set");
            return None;
        }
        self.optional(name)
    }

    /// Ends reading.
    ///
    /// # Errors
    /// [`Error::Settings`] listing every recorded problem.
    pub fn finish(self) -> Result<(), Error> {
        if self.problems.is_empty() {
            Ok(())
        } else {
            Err(Error::Settings {
                problems: self.problems,
            })
        }
    }
}

thread_local! {
    /// The names asked for on this thread while a [`NameRecorder`] is alive.
    static RECORDED: RefCell<Option<BTreeSet<String>>> = const { RefCell::new(None) };
}

/// Records every variable name any [`Env`] on this thread is asked for, from
/// [`NameRecorder::start`] to [`NameRecorder::finish`] (an async reader must stay on the
/// thread: a current-thread runtime). Recording is off otherwise; a read then costs one
/// thread-local check.
#[derive(Debug)]
pub struct NameRecorder(());

impl NameRecorder {
    /// Starts recording on this thread (a recording already running is restarted).
    pub fn start() -> Self {
        RECORDED.with_borrow_mut(|names| *names = Some(BTreeSet::new()));
        Self(())
    }

    /// The names asked for since [`NameRecorder::start`].
    pub fn finish(self) -> BTreeSet<String> {
        RECORDED.with_borrow_mut(Option::take).unwrap_or_default()
    }
}

impl Drop for NameRecorder {
    fn drop(&mut self) {
        RECORDED.with_borrow_mut(|names| *names = None);
    }
}

/// Where a server listens: `HOST` (default `0.0.0.0`) and `PORT` (default per service).
#[derive(Debug, Clone)]
pub struct ListenSettings {
    pub host: String,
    pub port: u16,
}

impl ListenSettings {
    pub fn from_env(env: &mut Env, default_port: u16) -> Self {
        Self {
            host: env.string_or("HOST", "0.0.0.0"),
            port: env.parse_or("PORT", default_port),
        }
    }

    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn every_problem_is_reported_with_its_variable() {
        let mut e = env(&[("PORT", "eighty"), ("WORKERS", "-1")]);
        let _: u16 = e.parse_or("PORT", 8080);
        let _: Option<u32> = e.optional("WORKERS");
        let _: Option<u32> = e.required("BATCH_LIMIT");
        let err = e.finish().unwrap_err().to_string();
        for name in ["PORT", "WORKERS", "BATCH_LIMIT"] {
            assert!(err.contains(name), "{name} missing from: {err}");
        }
        assert!(err.contains("\"eighty\""), "the bad value is quoted: {err}");
    }

    #[test]
    fn empty_is_unset_and_defaults_apply() {
        let mut e = env(&[("PORT", "  "), ("HOST", "127.0.0.1")]);
        let listen = ListenSettings::from_env(&mut e, 8080);
        e.finish().unwrap();
        assert_eq!(listen.address(), "127.0.0.1:8080");
    }

    #[test]
    fn the_recorder_lists_every_name_asked_for_and_only_while_it_runs() {
        let e = env(&[("B", "2")]);
        let _ = e.optional_string("BEFORE");
        let recorder = NameRecorder::start();
        let _ = e.first_string(&["A", "B", "C"]);
        let mut e2 = env(&[]);
        let _: u16 = e2.parse_or("PORT", 1);
        let _: Option<u16> = e2.required("NEEDED");
        let names = recorder.finish();
        let _ = e.optional_string("AFTER");
        // first_string stops at the first name set, as the reader does.
        assert_eq!(
            names.into_iter().collect::<Vec<_>>(),
            ["A", "B", "NEEDED", "PORT"]
        );
        assert!(NameRecorder::start().finish().is_empty());
    }

    #[test]
    fn first_string_prefers_earlier_names() {
        let e = env(&[("B", "2"), ("C", "3")]);
        assert_eq!(
            e.first_string(&["A", "B", "C"]),
            Some(("B", "2".to_owned()))
        );
        assert_eq!(e.first_string(&["A"]), None);
    }
}
