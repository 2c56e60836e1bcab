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

/// sha256 over bytes that arrive in pieces (a streamed upload or download).
#[derive(Debug, Clone, Default)]
pub struct ArtifactHasher(Sha256);

impl ArtifactHasher {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(self) -> ArtifactDigest {
        ArtifactDigest(hex::encode(self.0.finalize()))
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
    encode_within(kind, model, MAX_PAYLOAD_BYTES)
}

/// The largest model an envelope holds, serialised: the payload is a MessagePack `bin 32`,
/// whose length is a `u32`. rmp writes a longer one's length cut to 32 bits without an error,
/// so a 4.46 GB model (10M items × rank 64 with an HNSW graph) became an artifact that was
/// published and then never decoded. Such a model is refused here instead.
pub const MAX_PAYLOAD_BYTES: usize = u32::MAX as usize;

fn encode_within<T: Serialize>(
    kind: ModelKind,
    model: &T,
    max_payload: usize,
) -> Result<EncodedArtifact, Error> {
    let payload = rmp_serde::to_vec_named(model).map_err(|e| Error::CorruptArtifact {
        reason: format!("cannot serialise the {kind} model: {e}"),
    })?;
    if payload.len() > max_payload {
        return Err(Error::CorruptArtifact {
            reason: format!(
                "the {kind} model is {} bytes serialised; an artifact holds at most {max_payload} \
                 (a MessagePack bin 32): fewer items, a lower rank or a smaller index",
                payload.len()
            ),
        });
    }
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

/// How many leading bytes of an artifact [`inspect_artifact_head`] reads at most: the envelope
/// header (magic, format version, kind and the payload's length) sits well inside it.
pub const ARTIFACT_HEAD_BYTES: usize = 1024;

/// What the first bytes of an artifact say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactHead {
    pub kind: ModelKind,
    /// The whole artifact's length as the envelope declares it (header plus payload).
    pub declared_size: u64,
}

/// Checks the envelope header from the first bytes of an artifact (up to
/// [`ARTIFACT_HEAD_BYTES`], or the whole artifact when shorter): magic, format version, kind,
/// and the payload length, so a streamed upload is refused before it is stored. The payload
/// itself is checked by the digest and, at load, by [`decode_artifact`].
///
/// The envelope is written by [`encode_artifact`] as a MessagePack map whose last entry is the
/// payload, so everything else precedes it.
///
/// # Errors
/// [`Error::CorruptArtifact`] or [`Error::UnsupportedFormat`].
pub fn inspect_artifact_head(head: &[u8]) -> Result<ArtifactHead, Error> {
    let corrupt = |what: &str| Error::CorruptArtifact {
        reason: format!("not a model artifact envelope: {what}"),
    };
    let mut rd = head;
    let entries =
        rmp::decode::read_map_len(&mut rd).map_err(|_| corrupt("it does not start with a map"))?;
    let (mut magic, mut format_version, mut kind) = (None, None, None);
    for _ in 0..entries.min(8) {
        let key = read_str(&mut rd).ok_or_else(|| corrupt("a header key does not decode"))?;
        match key {
            "magic" => magic = read_str(&mut rd),
            "format_version" => format_version = rmp::decode::read_int::<u32, _>(&mut rd).ok(),
            "kind" => kind = read_str(&mut rd),
            "payload" => {
                let payload = rmp::decode::read_bin_len(&mut rd)
                    .map_err(|_| corrupt("the payload is not a byte string"))?;
                let header = (head.len() - rd.len()) as u64;
                if magic != Some(MAGIC) {
                    return Err(Error::CorruptArtifact {
                        reason: format!("not a model artifact (magic {magic:?})"),
                    });
                }
                let found = format_version.ok_or_else(|| corrupt("no format version"))?;
                if found != ARTIFACT_FORMAT_VERSION {
                    return Err(Error::UnsupportedFormat {
                        found,
                        supported: ARTIFACT_FORMAT_VERSION,
                    });
                }
                let kind = kind.ok_or_else(|| corrupt("no model kind"))?;
                let kind = ModelKind::deserialize(serde::de::IntoDeserializer::<
                    serde::de::value::Error,
                >::into_deserializer(kind))
                .map_err(|_| corrupt(&format!("unknown model kind {kind:?}")))?;
                return Ok(ArtifactHead {
                    kind,
                    declared_size: header + u64::from(payload),
                });
            }
            _ => return Err(corrupt(&format!("unexpected field {key:?}"))),
        }
    }
    Err(corrupt("the header is incomplete or too long"))
}

/// A MessagePack string borrowed from `rd`, advancing past it.
fn read_str<'a>(rd: &mut &'a [u8]) -> Option<&'a str> {
    let len = usize::try_from(rmp::decode::read_str_len(rd).ok()?).ok()?;
    if rd.len() < len {
        return None;
    }
    let (text, rest) = rd.split_at(len);
    *rd = rest;
    std::str::from_utf8(text).ok()
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

    #[test]
    fn a_model_larger_than_an_envelope_holds_is_refused_not_cut_short() {
        // The envelope's limit is MessagePack's: a bin 32 length is a u32.
        assert_eq!(MAX_PAYLOAD_BYTES as u64, u64::from(u32::MAX));
        let payload_len = rmp_serde::to_vec_named(&tiny()).unwrap().len();

        // A limit just under the model's size refuses it, naming both sizes.
        let error = encode_within(ModelKind::RecommenderAls, &tiny(), payload_len - 1).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains(&format!("is {payload_len} bytes")),
            "{message}"
        );
        assert!(
            message.contains(&format!("at most {}", payload_len - 1)),
            "{message}"
        );

        // At the limit it is encoded and decodes.
        let encoded = encode_within(ModelKind::RecommenderAls, &tiny(), payload_len).unwrap();
        let back: TinyModel =
            decode_artifact(&encoded.bytes, &encoded.digest, ModelKind::RecommenderAls).unwrap();
        assert_eq!(back, tiny());
    }

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
    fn the_head_names_kind_and_size_and_refuses_foreign_bytes() {
        let encoded = encode_artifact(ModelKind::RecommenderAls, &tiny()).unwrap();
        let head = &encoded.bytes[..encoded.bytes.len().min(ARTIFACT_HEAD_BYTES)];
        assert_eq!(
            inspect_artifact_head(head).unwrap(),
            ArtifactHead {
                kind: ModelKind::RecommenderAls,
                declared_size: encoded.size(),
            }
        );
        let mut future = encoded.bytes.clone();
        let at = future
            .windows(14)
            .position(|w| w == b"format_version")
            .unwrap()
            + 14;
        future[at] = 2;
        assert!(matches!(
            inspect_artifact_head(&future),
            Err(Error::UnsupportedFormat { found: 2, .. })
        ));
        for foreign in [&b"hello world"[..], &[], &encoded.bytes[..10]] {
            assert!(matches!(
                inspect_artifact_head(foreign),
                Err(Error::CorruptArtifact { .. })
            ));
        }
        let mut hasher = ArtifactHasher::new();
        for piece in encoded.bytes.chunks(7) {
            hasher.update(piece);
        }
        assert_eq!(hasher.finish(), encoded.digest);
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
