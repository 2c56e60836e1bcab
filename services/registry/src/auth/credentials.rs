//! Credentials: named identities with scopes, and the file they are kept in.
//!
//! # The credentials file (`REGISTRY_CREDENTIALS_FILE`)
//!
//! One credential a line, three fields separated by spaces or tabs; `#` starts a comment, blank
//! lines are skipped:
//!
//! ```text
//! # identity  scopes                  sha256 of the token (hex)
//! trainer     read,publish,promote    5e8848...  (64 hex digits)
//! alice       read,promote,archive    9f86d0...
//! dashboards  read                    2c26b4...
//! ```
//!
//! - **identity**: 1 to 64 characters of `a-z 0-9 . _ @ -`, starting with a letter or digit;
//!   unique. It is what the audit log and a manifest's `created_by` record.
//! - **scopes**: a comma-separated list of [`Scope`]s (`read`, `publish`, `promote`,
//!   `archive`), or `all`. Scopes do not imply each other: a publisher that also reads the
//!   champion needs `read` too.
//! - **sha256**: the hex sha256 of the token, so the file (and the Secret it comes from) holds
//!   no usable secret. Make a token with `openssl rand -hex 32` and hash it with
//!   `registry hash-token` (reads the token on stdin) or `printf %s "$TOKEN" | sha256sum`.
//!   Tokens must be random (at least 128 bits): an unsalted fast hash is the right tool for a
//!   random token and the wrong one for a password a person chose.
//!
//! A line that does not parse, an unknown scope, a repeated identity or a repeated hash is a
//! start-up error naming the line. `REGISTRY_TOKEN` (the single credential of earlier releases)
//! still works: it becomes the identity [`LEGACY_IDENTITY`] with every scope.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use shared_lib::http::token::TokenDigest;

/// The identity `REGISTRY_TOKEN` authenticates as.
pub const LEGACY_IDENTITY: &str = "admin";

/// What a credential may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// Download artifacts; when reads are protected (`REGISTRY_READ_AUTH=true`), every read,
    /// the page included.
    Read,
    /// Register versions (upload artifacts).
    Publish,
    /// Move aliases and roll them back.
    Promote,
    /// Archive versions, set and lift keep marks, and run retention (`gc`), which deletes.
    Archive,
}

impl Scope {
    pub const ALL: [Self; 4] = [Self::Read, Self::Publish, Self::Promote, Self::Archive];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Publish => "publish",
            Self::Promote => "promote",
            Self::Archive => "archive",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|scope| scope.as_str() == s)
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A set of scopes.
#[derive(Clone, Copy, PartialEq, Eq, Default)]
pub struct Scopes(u8);

impl Scopes {
    pub fn all() -> Self {
        Self(Scope::ALL.iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    /// `read,publish`-style list, `all` for every scope.
    fn parse(list: &str) -> Result<Self, String> {
        if list == "all" {
            return Ok(Self::all());
        }
        let mut bits = 0;
        for name in list.split(',') {
            let scope = Scope::parse(name).ok_or_else(|| {
                format!("unknown scope {name:?} (scopes: read, publish, promote, archive, or all)")
            })?;
            bits |= scope.bit();
        }
        Ok(Self(bits))
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = Scope::ALL
            .into_iter()
            .filter(|s| self.contains(*s))
            .map(Scope::as_str)
            .collect();
        write!(f, "{}", names.join(","))
    }
}

/// One credential: an identity, its scopes, and the sha256 of its token.
#[derive(Clone)]
struct Credential {
    identity: String,
    scopes: Scopes,
    token_sha256: TokenDigest,
}

/// Every credential the registry accepts. Its `Debug` shows identities and scopes only.
#[derive(Clone, Default)]
pub struct Credentials {
    entries: Vec<Credential>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|c| (&c.identity, c.scopes)))
            .finish()
    }
}

/// `registry hash-token`: reads a token on stdin, prints its sha256 for the credentials file.
///
/// # Errors
/// When stdin cannot be read or the token is shorter than 16 characters.
pub fn hash_token_command() -> anyhow::Result<()> {
    use std::io::{Read as _, Write as _};
    let mut token = String::new();
    std::io::stdin().read_to_string(&mut token)?;
    anyhow::ensure!(
        token.trim().len() >= 16,
        "a token needs at least 16 characters; make one with `openssl rand -hex 32`"
    );
    writeln!(std::io::stdout(), "{}", TokenDigest::of(&token).to_hex())?;
    Ok(())
}

impl Credentials {
    /// Parses a credentials file (format in the module docs).
    ///
    /// # Errors
    /// Every bad line, as `line N: what is wrong`.
    pub fn parse(text: &str) -> Result<Self, Vec<String>> {
        let mut creds = Self::default();
        let mut problems = Vec::new();
        for (index, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or_default().trim();
            if line.is_empty() {
                continue;
            }
            if let Err(e) = parse_line(line).and_then(|c| creds.add(c)) {
                problems.push(format!("line {}: {e}", index + 1));
            }
        }
        if problems.is_empty() {
            Ok(creds)
        } else {
            Err(problems)
        }
    }

    /// Adds the legacy `REGISTRY_TOKEN` as [`LEGACY_IDENTITY`] with every scope.
    ///
    /// # Errors
    /// When the file already has that identity or that token.
    pub fn add_legacy_token(&mut self, token: &SecretString) -> Result<(), String> {
        self.add(Credential {
            identity: LEGACY_IDENTITY.to_owned(),
            scopes: Scopes::all(),
            token_sha256: TokenDigest::of(token.expose_secret()),
        })
    }

    fn add(&mut self, credential: Credential) -> Result<(), String> {
        if self
            .entries
            .iter()
            .any(|c| c.identity == credential.identity)
        {
            return Err(format!("identity {} is given twice", credential.identity));
        }
        if self
            .entries
            .iter()
            .any(|c| c.token_sha256.matches(&credential.token_sha256))
        {
            return Err(format!(
                "the token of {} is also another identity's token",
                credential.identity
            ));
        }
        self.entries.push(credential);
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Whether any credential has `scope`.
    pub fn any_with(&self, scope: Scope) -> bool {
        self.entries.iter().any(|c| c.scopes.contains(scope))
    }

    /// The identity and scopes `token` authenticates as. Every credential is compared, each in
    /// constant time on the sha256 (so neither the token's bytes nor its length leak).
    pub fn identify(&self, token: &str) -> Option<(&str, Scopes)> {
        let given = TokenDigest::of(token);
        let mut found = None;
        for credential in &self.entries {
            if given.matches(&credential.token_sha256) {
                found = Some((credential.identity.as_str(), credential.scopes));
            }
        }
        found
    }
}

fn parse_line(line: &str) -> Result<Credential, String> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let [identity, scopes, hash] = fields[..] else {
        return Err(format!(
            "expected 3 fields (identity, scopes, token sha256), found {}",
            fields.len()
        ));
    };
    if !valid_identity(identity) {
        return Err(format!(
            "identity {identity:?} must be 1 to 64 characters of a-z 0-9 . _ @ -, starting with \
             a letter or digit"
        ));
    }
    let scopes = Scopes::parse(scopes)?;
    let token_sha256 = TokenDigest::from_hex(hash).ok_or_else(|| {
        format!("the token sha256 of {identity} must be 64 hex digits (a hash, not the token)")
    })?;
    Ok(Credential {
        identity: identity.to_owned(),
        scopes,
        token_sha256,
    })
}

fn valid_identity(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "._@-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hash(token: &str) -> String {
        TokenDigest::of(token).to_hex()
    }

    #[test]
    fn a_file_parses_and_identifies_each_token_with_its_scopes() {
        let text = format!(
            "# comment\n\n trainer read,publish,promote {}  # inline comment\nops\tall\t{}\n",
            hash("trainer-token-0123456789"),
            hash("ops-token-0123456789")
        );
        let creds = Credentials::parse(&text).unwrap();
        let (who, scopes) = creds.identify("trainer-token-0123456789\n").unwrap();
        assert_eq!(who, "trainer");
        assert!(scopes.contains(Scope::Publish) && !scopes.contains(Scope::Archive));
        assert_eq!(
            creds.identify("ops-token-0123456789").unwrap().1,
            Scopes::all()
        );
        assert!(creds.identify("ops-token-012345678").is_none());
        assert!(creds.identify("").is_none());
        assert_eq!(
            format!("{creds:?}"),
            "{\"trainer\": read,publish,promote, \"ops\": read,publish,promote,archive}"
        );
    }

    #[test]
    fn every_bad_line_is_named() {
        let good = hash("x-token-0123456789");
        let text = format!(
            "ok read {good}\n\
             two-fields read\n\
             typo read,pubish {}\n\
             Upper read {}\n\
             short read abc123\n\
             ok read {}\n\
             again read {good}\n",
            hash("a"),
            hash("b"),
            hash("c")
        );
        let problems = Credentials::parse(&text).unwrap_err();
        let expected = [
            "line 2: expected 3 fields",
            "line 3: unknown scope \"pubish\"",
            "line 4: identity \"Upper\"",
            "line 5: the token sha256 of short must be 64 hex digits",
            "line 6: identity ok is given twice",
            "line 7: the token of again is also another identity's token",
        ];
        assert_eq!(problems.len(), expected.len(), "{problems:#?}");
        for (problem, start) in problems.iter().zip(expected) {
            assert!(
                problem.starts_with(start),
                "{problem} does not start with {start}"
            );
        }
    }

    #[test]
    fn the_legacy_token_is_admin_with_every_scope_and_may_not_collide() {
        let mut creds =
            Credentials::parse(&format!("ci publish {}", hash("ci-token-0123456789"))).unwrap();
        creds
            .add_legacy_token(&SecretString::from("legacy-token-0123456789"))
            .unwrap();
        assert_eq!(
            creds.identify("legacy-token-0123456789"),
            Some((LEGACY_IDENTITY, Scopes::all()))
        );
        let err = creds
            .add_legacy_token(&SecretString::from("ci-token-0123456789"))
            .unwrap_err();
        assert!(err.contains("identity admin is given twice"), "{err}");
        let mut other = Credentials::default();
        other
            .add_legacy_token(&SecretString::from("ci-token-0123456789"))
            .unwrap();
        assert!(!other.is_empty() && other.any_with(Scope::Archive));
    }
}
