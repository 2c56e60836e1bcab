//! The registry's storage layout: which key holds what. The only place that spells keys.
//!
//! ```text
//! models/<model>/artifacts/<sha256>.msgpack         artifact, immutable, content-addressed
//! models/<model>/versions/<0000000042>/claim.json   version number taken (create-new)
//! models/<model>/versions/<0000000042>/manifest.json  the version exists (create-new, last)
//! models/<model>/versions/<0000000042>/archived.json  the version is archived (create-new)
//! models/<model>/versions/<0000000042>/deleted.json   retention deleted it (create-new)
//! models/<model>/versions/<0000000042>/keep-<0000000003>.json  keep marker, revision 3 (create-new)
//! models/<model>/aliases/<alias>/<0000000007>.json  alias revision 7 (create-new: the CAS)
//! models/<model>/aliases/<alias>/head.json          hint: latest revision (overwritten)
//! ```
//!
//! Retention deletes artifact objects (never records): a deleted version keeps its manifest.
//! Every record but `head.json` is written once and never changed, so the records *are* the
//! append-only event log; `head.json` is only a hint a reader checks by probing forward.
//! Numbers are zero-padded so that key order is numeric order.

use suite_models::artifact::ArtifactDigest;
use suite_models::model_id::{AliasName, ModelName, ModelVersion};

use crate::Error;
use crate::store::ObjectKey;

pub(crate) const CLAIM: &str = "claim.json";
pub(crate) const MANIFEST: &str = "manifest.json";
pub(crate) const ARCHIVED: &str = "archived.json";
pub(crate) const DELETED: &str = "deleted.json";
pub(crate) const HEAD: &str = "head.json";
const KEEP_PREFIX: &str = "keep-";

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

pub(crate) fn artifacts_root(model: &ModelName) -> ObjectKey {
    key(format!("models/{model}/artifacts"))
}

/// Revision `revision` of a version's keep marker.
pub(crate) fn keep_file(model: &ModelName, version: ModelVersion, revision: u64) -> ObjectKey {
    version_file(model, version, &format!("{KEEP_PREFIX}{revision:010}.json"))
}

/// The revision of a keep-marker file name (`keep-<n>.json`), from [`parse_version_file`].
pub(crate) fn parse_keep_revision(file: &str) -> Option<u64> {
    file.strip_prefix(KEEP_PREFIX)?
        .strip_suffix(".json")?
        .parse()
        .ok()
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
        let keep = keep_file(&m, ModelVersion::new(10).unwrap(), 3);
        let (version, file) = parse_version_file(&keep).unwrap();
        assert_eq!((version.get(), parse_keep_revision(file)), (10, Some(3)));
        assert_eq!(parse_keep_revision(MANIFEST), None);
    }
}
