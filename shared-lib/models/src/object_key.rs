//! Object keys: where the store keeps a thing, checked once so no key can climb out of its
//! prefix. Here rather than beside the store because a manifest names its artifact's key.

use crate::Error;

/// A relative object key: `/`-separated segments of safe characters, no `.`/`..` segments.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// # Errors
    /// [`Error::InvalidKey`] when a segment is empty, `.` or `..`, or has characters outside
    /// `A-Za-z0-9._-`.
    pub fn parse(key: &str) -> Result<Self, Error> {
        let invalid = |reason| Error::InvalidKey {
            key: key.chars().take(200).collect(),
            reason,
        };
        if key.is_empty() || key.len() > 900 {
            return Err(invalid("must have 1 to 900 characters"));
        }
        for segment in key.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return Err(invalid("segments must be non-empty and not '.' or '..'"));
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return Err(invalid(
                    "may contain only A-Z, a-z, 0-9, '.', '_', '-' and '/'",
                ));
            }
        }
        Ok(Self(key.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This key with `/segment` appended.
    ///
    /// # Errors
    /// As [`ObjectKey::parse`].
    pub fn join(&self, segment: &str) -> Result<Self, Error> {
        Self::parse(&format!("{}/{segment}", self.0))
    }
}

impl std::fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
