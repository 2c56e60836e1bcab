//! The model artifact envelope: the bytes stored for one trained model.
//!
//! An artifact is a MessagePack map `{magic, format_version, kind, payload}` whose payload is the
//! model itself, MessagePack again. Two layers, so that a reader checks the digest, the magic,
//! the format version and the kind *before* it interprets a single byte of model data; a
//! half-written, bit-flipped or foreign file is refused with a typed error and never served.

use std::fmt;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;

/// The envelope layout this build writes and reads. Bump it when the envelope changes shape.
pub const ARTIFACT_FORMAT_VERSION: u32 = 1;

/// Marks our artifacts, so a foreign MessagePack file is told apart from a corrupt one.
const MAGIC: &str = "ml-suite-model";

/// The sha256 of an artifact's bytes, as 64 lowercase hex characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactDigest(String);

impl ArtifactDigest {
    /// Digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        Self(hex::encode(Sha256::digest(bytes)))
    }

    pub fn as_hex(&self) -> &str {
        &self.0
    }
}

impl FromStr for ArtifactDigest {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        let s = s.strip_prefix("sha256:").unwrap_or(s);
        if s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Self(s.to_owned()))
        } else {
            Err(Error::InvalidDigest {
                value: s.chars().take(80).collect(),
            })
        }
    }
}

impl TryFrom<String> for ArtifactDigest {
    type Error = Error;
    fn try_from(value: String) -> Result<Self, Error> {
        value.parse()
    }
}

impl From<ArtifactDigest> for String {
    fn from(value: ArtifactDigest) -> String {
        value.0
    }
}

impl fmt::Display for ArtifactDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What sort of model an artifact holds; a server refuses an artifact of the wrong kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Fraud classifier: a random forest giving P(fraud).
    FraudRandomForest,
    /// Fraud classifier: a single decision tree.
    FraudDecisionTree,
    /// Recommender: ALS user and item factors.
    RecommenderAls,
}

impl ModelKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::FraudRandomForest => "fraud-random-forest",
            Self::FraudDecisionTree => "fraud-decision-tree",
            Self::RecommenderAls => "recommender-als",
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outer layer as stored. `payload` stays opaque bytes until the envelope checks pass.
#[derive(Serialize, Deserialize)]
struct Envelope {
    magic: String,
    format_version: u32,
    kind: ModelKind,
    #[serde(with = "serde_bytes")]
    payload: Vec<u8>,
}

/// Header fields only, so the version is read even from an envelope of a future layout.
#[derive(Deserialize)]
struct EnvelopeHeader {
    magic: String,
    format_version: u32,
}

/// An encoded artifact, ready to store.
#[derive(Debug, Clone)]
pub struct EncodedArtifact {
    pub kind: ModelKind,
    pub bytes: Vec<u8>,
    pub digest: ArtifactDigest,
}

impl EncodedArtifact {
    pub fn size(&self) -> u64 {
        self.bytes.len() as u64
    }
}

/// Encodes `model` as an artifact of `kind`.
///
/// # Errors
/// [`Error::CorruptArtifact`] if the model cannot be serialised (a bug, e.g. a map with
/// non-string keys).
pub fn encode_artifact<T: Serialize>(kind: ModelKind, model: &T) -> Result<EncodedArtifact, Error> {
    let payload = rmp_serde::to_vec_named(model).map_err(|e| Error::CorruptArtifact {
        reason: format!("cannot serialise the {kind} model: {e}"),
    })?;
    let envelope = Envelope {
        magic: MAGIC.to_owned(),
        format_version: ARTIFACT_FORMAT_VERSION,
        kind,
        payload,
    };
    let bytes = rmp_serde::to_vec_named(&envelope).map_err(|e| Error::CorruptArtifact {
        reason: format!("cannot serialise the envelope: {e}"),
    })?;
    let digest = ArtifactDigest::of(&bytes);
    Ok(EncodedArtifact {
        kind,
        bytes,
        digest,
    })
}

/// Checks the envelope of `bytes` without decoding the model: format version and kind.
/// Used by publishers to refuse garbage before it is stored.
///
/// # Errors
/// [`Error::CorruptArtifact`] or [`Error::UnsupportedFormat`].
pub fn inspect_artifact(bytes: &[u8]) -> Result<ModelKind, Error> {
    open_envelope(bytes).map(|envelope| envelope.kind)
}

/// Verifies and decodes an artifact: size and sha256 against what the manifest recorded, then
/// magic, format version and kind, then the model payload.
///
/// # Errors
/// [`Error::SizeMismatch`], [`Error::DigestMismatch`], [`Error::CorruptArtifact`],
/// [`Error::UnsupportedFormat`] or [`Error::WrongModelKind`]; never a panic, whatever the bytes.
pub fn decode_artifact<T: DeserializeOwned>(
    bytes: &[u8],
    expected_digest: &ArtifactDigest,
    expected_kind: ModelKind,
) -> Result<T, Error> {
    let actual = ArtifactDigest::of(bytes);
    if &actual != expected_digest {
        return Err(Error::DigestMismatch {
            expected: expected_digest.clone(),
            actual,
        });
    }
    let envelope = open_envelope(bytes)?;
    if envelope.kind != expected_kind {
        return Err(Error::WrongModelKind {
            expected: expected_kind,
            found: envelope.kind,
        });
    }
    rmp_serde::from_slice(&envelope.payload).map_err(|e| Error::CorruptArtifact {
        reason: format!("the {} payload does not decode: {e}", envelope.kind),
    })
}

fn open_envelope(bytes: &[u8]) -> Result<Envelope, Error> {
    let header: EnvelopeHeader =
        rmp_serde::from_slice(bytes).map_err(|e| Error::CorruptArtifact {
            reason: format!("not a model artifact envelope: {e}"),
        })?;
    if header.magic != MAGIC {
        return Err(Error::CorruptArtifact {
            reason: format!("not a model artifact (magic {:?})", header.magic),
        });
    }
    if header.format_version != ARTIFACT_FORMAT_VERSION {
        return Err(Error::UnsupportedFormat {
            found: header.format_version,
            supported: ARTIFACT_FORMAT_VERSION,
        });
    }
    rmp_serde::from_slice(bytes).map_err(|e| Error::CorruptArtifact {
        reason: format!("envelope does not decode: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct TinyModel {
        weights: Vec<f64>,
        bias: f64,
    }

    fn tiny() -> TinyModel {
        TinyModel {
            weights: vec![0.5, -1.25, 3.0],
            bias: 0.1,
        }
    }

    #[test]
    fn round_trip_returns_the_same_model() {
        let encoded = encode_artifact(ModelKind::FraudRandomForest, &tiny()).unwrap();
        let decoded: TinyModel = decode_artifact(
            &encoded.bytes,
            &encoded.digest,
            ModelKind::FraudRandomForest,
        )
        .unwrap();
        assert_eq!(decoded, tiny());
        assert_eq!(
            inspect_artifact(&encoded.bytes).unwrap(),
            ModelKind::FraudRandomForest
        );
    }

    #[test]
    fn every_single_flipped_byte_is_refused() {
        let encoded = encode_artifact(ModelKind::FraudRandomForest, &tiny()).unwrap();
        for i in 0..encoded.bytes.len() {
            let mut bytes = encoded.bytes.clone();
            bytes[i] ^= 0x01;
            let err =
                decode_artifact::<TinyModel>(&bytes, &encoded.digest, ModelKind::FraudRandomForest)
                    .unwrap_err();
            assert!(
                matches!(err, Error::DigestMismatch { .. }),
                "byte {i}: {err}"
            );
        }
    }

    #[test]
    fn truncated_artifact_is_refused_even_with_a_matching_digest() {
        let encoded = encode_artifact(ModelKind::RecommenderAls, &tiny()).unwrap();
        for len in [0, 1, encoded.bytes.len() / 2, encoded.bytes.len() - 1] {
            let cut = &encoded.bytes[..len];
            // A publisher that digested the truncated bytes still cannot get them served.
            let err = decode_artifact::<TinyModel>(
                cut,
                &ArtifactDigest::of(cut),
                ModelKind::RecommenderAls,
            )
            .unwrap_err();
            assert!(
                matches!(err, Error::CorruptArtifact { .. }),
                "len {len}: {err}"
            );
        }
    }

    #[test]
    fn wrong_format_version_is_refused_with_both_versions_named() {
        let envelope = Envelope {
            magic: MAGIC.to_owned(),
            format_version: ARTIFACT_FORMAT_VERSION + 1,
            kind: ModelKind::FraudRandomForest,
            payload: rmp_serde::to_vec_named(&tiny()).unwrap(),
        };
        let bytes = rmp_serde::to_vec_named(&envelope).unwrap();
        let err = decode_artifact::<TinyModel>(
            &bytes,
            &ArtifactDigest::of(&bytes),
            ModelKind::FraudRandomForest,
        )
        .unwrap_err();
        assert!(
            matches!(
                err,
                Error::UnsupportedFormat {
                    found: 2,
                    supported: 1
                }
            ),
            "{err}"
        );
        assert!(inspect_artifact(&bytes).is_err());
    }

    #[test]
    fn wrong_kind_and_foreign_files_are_refused() {
        let encoded = encode_artifact(ModelKind::FraudDecisionTree, &tiny()).unwrap();
        let err = decode_artifact::<TinyModel>(
            &encoded.bytes,
            &encoded.digest,
            ModelKind::RecommenderAls,
        )
        .unwrap_err();
        assert!(matches!(err, Error::WrongModelKind { .. }), "{err}");

        let foreign = rmp_serde::to_vec_named(&tiny()).unwrap();
        let err = inspect_artifact(&foreign).unwrap_err();
        assert!(matches!(err, Error::CorruptArtifact { .. }), "{err}");
    }

    #[test]
    fn payload_of_another_type_is_refused() {
        let encoded = encode_artifact(ModelKind::FraudRandomForest, &"just a string").unwrap();
        let err = decode_artifact::<TinyModel>(
            &encoded.bytes,
            &encoded.digest,
            ModelKind::FraudRandomForest,
        )
        .unwrap_err();
        assert!(matches!(err, Error::CorruptArtifact { .. }), "{err}");
    }

    #[test]
    fn digest_parsing_accepts_only_sha256_hex() {
        let d = ArtifactDigest::of(b"x");
        assert_eq!(d.as_hex().parse::<ArtifactDigest>().unwrap(), d);
        assert_eq!(format!("sha256:{d}").parse::<ArtifactDigest>().unwrap(), d);
        for bad in ["", "abc", &d.as_hex().to_uppercase(), &format!("{d}0")] {
            assert!(bad.parse::<ArtifactDigest>().is_err(), "{bad}");
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let digest = ArtifactDigest::of(&bytes);
            let _ = decode_artifact::<TinyModel>(&bytes, &digest, ModelKind::FraudRandomForest);
            let _ = inspect_artifact(&bytes);
        }

        #[test]
        fn models_round_trip(weights in proptest::collection::vec(-1e6f64..1e6, 0..64), bias in -10f64..10.0) {
            let model = TinyModel { weights, bias };
            let encoded = encode_artifact(ModelKind::FraudRandomForest, &model).unwrap();
            let back: TinyModel = decode_artifact(&encoded.bytes, &encoded.digest, ModelKind::FraudRandomForest).unwrap();
            prop_assert_eq!(back, model);
        }
    }
}
