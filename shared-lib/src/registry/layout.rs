//! The registry's storage layout: which key holds what. The only place that spells keys.
//!
//! ```text
//! models/<model>/artifacts/<sha256>.msgpack         artifact, immutable, content-addressed
//! models/<model>/versions/<0000000042>/claim.json   version number taken (create-new)
//! models/<model>/versions/<0000000042>/manifest.json  the version exists (create-new, last)
//! models/<model>/versions/<0000000042>/archived.json  the version is archived (create-new)
//! models/<model>/aliases/<alias>/<0000000007>.json  alias revision 7 (create-new: the CAS)
//! models/<model>/aliases/<alias>/head.json          hint: latest revision (overwritten)
//! ```
//!
//! Every record but `head.json` is written once and never changed, so the records *are* the
//! append-only event log; `head.json` is only a hint a reader checks by probing forward.
//! Numbers are zero-padded so that key order is numeric order.

use crate::Error;
use crate::artifact::ArtifactDigest;
use crate::model_id::{AliasName, ModelName, ModelVersion};
use crate::store::ObjectKey;

pub(crate) const CLAIM: &str = "claim.json";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const ARCHIVED: &str = "archived.json";
pub(crate) const HEAD: &str = "head.json";

fn key(s: String) -> ObjectKey {
    // Every segment below is a checked name, a number or a fixed word, so this cannot fail.
    ObjectKey::parse(&s).unwrap_or_else(|e| unreachable!("layout built an invalid key: {e}"))
}

pub(crate) fn models_root() -> ObjectKey {
    key("models".to_owned())
}

pub(crate) fn versions_root(model: &ModelName) -> ObjectKey {
    key(format!("models/{model}/versions"))
}

pub(crate) fn version_file(model: &ModelName, version: ModelVersion, file: &str) -> ObjectKey {
    key(format!(
        "models/{model}/versions/{:010}/{file}",
        version.get()
    ))
}

pub(crate) fn artifact(model: &ModelName, digest: &ArtifactDigest) -> ObjectKey {
    key(format!("models/{model}/artifacts/{digest}.msgpack"))
}

pub(crate) fn aliases_root(model: &ModelName) -> ObjectKey {
    key(format!("models/{model}/aliases"))
}

pub(crate) fn alias_root(model: &ModelName, alias: &AliasName) -> ObjectKey {
    key(format!("models/{model}/aliases/{alias}"))
}

pub(crate) fn alias_revision(model: &ModelName, alias: &AliasName, revision: u64) -> ObjectKey {
    key(format!(
        "models/{model}/aliases/{alias}/{revision:010}.json"
    ))
}

pub(crate) fn alias_head(model: &ModelName, alias: &AliasName) -> ObjectKey {
    key(format!("models/{model}/aliases/{alias}/{HEAD}"))
}

/// Splits `…/versions/<n>/<file>` into its version and file name.
pub(crate) fn parse_version_file(key: &ObjectKey) -> Option<(ModelVersion, &str)> {
    let mut parts = key.as_str().rsplit('/');
    let file = parts.next()?;
    let number = parts.next()?;
    (parts.next()? == "versions").then_some(())?;
    let version = number
        .parse::<u32>()
        .ok()
        .and_then(|n| ModelVersion::new(n).ok())?;
    Some((version, file))
}

/// Reads the revision number of `…/aliases/<alias>/<n>.json`; `None` for the head hint.
pub(crate) fn parse_alias_revision(key: &ObjectKey) -> Option<u64> {
    let file = key.as_str().rsplit('/').next()?;
    file.strip_suffix(".json")?.parse().ok()
}

/// A registry document that does not parse is reported with its key, never skipped silently.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(
    key: &ObjectKey,
    bytes: &[u8],
) -> Result<T, Error> {
    serde_json::from_slice(bytes).map_err(|e| Error::corrupt_record(key.as_str(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_keys_sort_numerically_and_parse_back() {
        let m = ModelName::parse("fraud").unwrap();
        let k9 = version_file(&m, ModelVersion::new(9).unwrap(), MANIFEST);
        let k10 = version_file(&m, ModelVersion::new(10).unwrap(), MANIFEST);
        assert!(k9 < k10);
        assert_eq!(
            parse_version_file(&k10),
            Some((ModelVersion::new(10).unwrap(), MANIFEST))
        );
        let a = AliasName::production();
        assert_eq!(parse_alias_revision(&alias_revision(&m, &a, 12)), Some(12));
        assert_eq!(parse_alias_revision(&alias_head(&m, &a)), None);
    }
}
