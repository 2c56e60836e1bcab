//! What the benchmarks' programs (`src/bin/`) share: their `--name value` flags.

use std::collections::BTreeMap;
use std::str::FromStr;

use anyhow::{Context as _, bail};

/// The `--name value` pairs of the command line; a flag without a value is an error.
pub struct Flags(BTreeMap<String, String>);

impl Flags {
    /// # Errors
    /// An argument that is not `--name`, or a flag without its value.
    pub fn from_args() -> anyhow::Result<Self> {
        let mut values = BTreeMap::new();
        let mut args = std::env::args().skip(1);
        while let Some(flag) = args.next() {
            let Some(name) = flag.strip_prefix("--") else {
                bail!("unexpected argument {flag:?}");
            };
            let value = args
                .next()
                .with_context(|| format!("{flag} needs a value"))?;
            values.insert(name.to_owned(), value);
        }
        Ok(Self(values))
    }

    /// The value of `--name`, taken: [`Flags::finish`] then knows it was read.
    pub fn take(&mut self, name: &str) -> Option<String> {
        self.0.remove(name)
    }

    /// `--name` parsed, or `default` without it.
    ///
    /// # Errors
    /// A value that does not parse, named with its flag.
    pub fn parse_or<T>(&mut self, name: &str, default: T) -> anyhow::Result<T>
    where
        T: FromStr,
        T::Err: std::error::Error + Send + Sync + 'static,
    {
        self.take(name).map_or(Ok(default), |s| {
            s.parse().with_context(|| format!("--{name} {s:?}"))
        })
    }

    /// # Errors
    /// A flag no one took.
    pub fn finish(self) -> anyhow::Result<()> {
        match self.0.keys().next() {
            Some(unknown) => bail!("unknown option --{unknown}"),
            None => Ok(()),
        }
    }
}
