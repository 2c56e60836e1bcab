//! The model artifact envelope: the bytes stored for one trained model.
//!
//! An artifact starts with a MessagePack map `{magic, format_version, kind, …}` and holds the
//! model itself as MessagePack again. Two layers, so that a reader checks the digest, the
//! magic, the format version, the kind and the declared length *before* it interprets a single
//! byte of model data; a half-written, bit-flipped or foreign file is refused with a typed error
//! and never served.
//!
//! Two layouts, told apart by `format_version`:
//! - **1**: the map's last entry is `payload`, the model as a MessagePack `bin`. A `bin 32`'s
//!   length is a `u32`, so this holds a model of at most 4 GiB - 1 serialised.
//! - **2**: the map's last entry is `payload_len`, a `u64`, and the model follows the map, raw.
//!   For the models layout 1 cannot hold (10M items × rank 64 with an HNSW graph is 4.46 GB).
//!
//! The writer uses layout 1 whenever the model fits, so builds that read only layout 1 still
//! read every artifact they could before; this build reads both.

use std::fmt;
use std::io::Read;
use std::str::FromStr;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::Error;
use crate::manifest::ArtifactRef;

/// Layout 1: the payload is a MessagePack `bin` inside the map.
pub const FORMAT_BIN_PAYLOAD: u32 = 1;
/// Layout 2: the map ends with the payload's length; the payload follows it, raw.
pub const FORMAT_TRAILING_PAYLOAD: u32 = 2;
/// The newest layout this build reads; it reads every layout from 1 up to this one.
pub const NEWEST_FORMAT_VERSION: u32 = FORMAT_TRAILING_PAYLOAD;

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

/// Encodes `model` as an artifact of `kind`: layout 1 when the serialised model fits a
/// MessagePack `bin 32`, layout 2 when it does not.
///
/// # Errors
/// [`Error::CorruptArtifact`] if the model cannot be serialised (a bug, e.g. a map with
/// non-string keys).
pub fn encode_artifact<T: Serialize>(kind: ModelKind, model: &T) -> Result<EncodedArtifact, Error> {
    encode_within(kind, model, MAX_BIN_PAYLOAD_BYTES)
}

/// The largest model layout 1 holds, serialised: a MessagePack `bin 32`'s length is a `u32`
/// (and rmp writes a longer one's length cut to 32 bits without an error).
pub const MAX_BIN_PAYLOAD_BYTES: usize = u32::MAX as usize;

/// Room left before the model while it is serialised; the header, written once the model's
/// length is known, is far shorter.
const HEADER_ROOM: usize = 128;

fn encode_within<T: Serialize>(
    kind: ModelKind,
    model: &T,
    max_bin_payload: usize,
) -> Result<EncodedArtifact, Error> {
    // The model is serialised once, after room for the header, and the room the header does
    // not use is drained: the bytes move in place, so a model of gigabytes is never copied
    // into a second buffer.
    let mut bytes = vec![0; HEADER_ROOM];
    rmp_serde::encode::write_named(&mut bytes, model).map_err(|e| Error::CorruptArtifact {
        reason: format!("cannot serialise the {kind} model: {e}"),
    })?;
    let payload_len = bytes.len() - HEADER_ROOM;
    let header = header(kind, payload_len, max_bin_payload)?;
    let start = HEADER_ROOM - header.len();
    bytes[start..HEADER_ROOM].copy_from_slice(&header);
    bytes.drain(..start);
    let digest = ArtifactDigest::of(&bytes);
    Ok(EncodedArtifact {
        kind,
        bytes,
        digest,
    })
}

/// The envelope map of a model of `payload_len` bytes, in the layout that holds it. Layout 1 is
/// byte for byte what `rmp_serde` wrote for the `{magic, format_version, kind, payload}` struct
/// before layout 2 existed.
fn header(kind: ModelKind, payload_len: usize, max_bin_payload: usize) -> Result<Vec<u8>, Error> {
    use rmp::encode::{write_bin_len, write_map_len, write_str, write_u64, write_uint};
    // Writing to a Vec does not fail; the error is mapped rather than unwrapped all the same.
    let failed = |e: rmp::encode::ValueWriteError| Error::CorruptArtifact {
        reason: format!("cannot write the envelope: {e}"),
    };
    let bin_len = u32::try_from(payload_len)
        .ok()
        .filter(|_| payload_len <= max_bin_payload);
    let version = match bin_len {
        Some(_) => FORMAT_BIN_PAYLOAD,
        None => FORMAT_TRAILING_PAYLOAD,
    };
    let mut out = Vec::with_capacity(HEADER_ROOM);
    write_map_len(&mut out, 4).map_err(failed)?;
    for text in ["magic", MAGIC, "format_version"] {
        write_str(&mut out, text).map_err(failed)?;
    }
    write_uint(&mut out, u64::from(version)).map_err(failed)?;
    write_str(&mut out, "kind").map_err(failed)?;
    write_str(&mut out, kind.as_str()).map_err(failed)?;
    match bin_len {
        Some(len) => {
            write_str(&mut out, "payload").map_err(failed)?;
            write_bin_len(&mut out, len).map_err(failed)?;
        }
        None => {
            write_str(&mut out, "payload_len").map_err(failed)?;
            write_u64(&mut out, payload_len as u64).map_err(failed)?;
        }
    }
    Ok(out)
}

/// Checks the envelope of a whole artifact without decoding the model: magic, format version,
/// kind, and that its length is the one the envelope declares. Used by publishers to refuse
/// garbage before it is stored.
///
/// # Errors
/// [`Error::CorruptArtifact`] or [`Error::UnsupportedFormat`].
pub fn inspect_artifact(bytes: &[u8]) -> Result<ArtifactHead, Error> {
    open_envelope(bytes).map(|(head, _)| head)
}

/// How many leading bytes of an artifact [`inspect_artifact_head`] reads at most: the envelope
/// header (magic, format version, kind and the payload's length) sits well inside it.
pub const ARTIFACT_HEAD_BYTES: usize = 1024;

/// What the first bytes of an artifact say about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArtifactHead {
    pub kind: ModelKind,
    /// The envelope layout, [`FORMAT_BIN_PAYLOAD`] or [`FORMAT_TRAILING_PAYLOAD`].
    pub format_version: u32,
    /// The whole artifact's length as the envelope declares it (header plus payload).
    pub declared_size: u64,
}

impl ArtifactHead {
    /// Refuses an artifact of `size` bytes whose envelope declares another length: cut short,
    /// or with bytes after its payload.
    fn check_size(&self, size: u64) -> Result<(), Error> {
        if self.declared_size == size {
            return Ok(());
        }
        Err(Error::CorruptArtifact {
            reason: format!(
                "the envelope declares {} bytes but the artifact has {size}",
                self.declared_size
            ),
        })
    }

    /// Refuses an artifact of another kind than `expected`.
    fn check_kind(&self, expected: ModelKind) -> Result<(), Error> {
        if self.kind == expected {
            return Ok(());
        }
        Err(Error::WrongModelKind {
            expected,
            found: self.kind,
        })
    }

    /// The error for a payload that does not decode as a model of this kind.
    fn undecodable(&self, e: rmp_serde::decode::Error) -> Error {
        Error::CorruptArtifact {
            reason: format!("the {} payload does not decode: {e}", self.kind),
        }
    }
}

/// Checks the envelope header from the first bytes of an artifact (up to
/// [`ARTIFACT_HEAD_BYTES`], or the whole artifact when shorter): magic, format version, kind,
/// and the payload length, so a streamed upload is refused before it is stored. The payload
/// itself is checked by the digest and, at load, by [`decode_artifact_from`].
///
/// # Errors
/// [`Error::CorruptArtifact`] or [`Error::UnsupportedFormat`].
pub fn inspect_artifact_head(head: &[u8]) -> Result<ArtifactHead, Error> {
    read_header(head).map(|(head, _)| head)
}

/// The envelope header at the start of `bytes` and its length in bytes. The header is the
/// map [`header`] writes: its entries in that order, the payload's length last.
fn read_header(bytes: &[u8]) -> Result<(ArtifactHead, usize), Error> {
    let corrupt = |what: &str| Error::CorruptArtifact {
        reason: format!("not a model artifact envelope: {what}"),
    };
    let mut rd = bytes;
    let entries =
        rmp::decode::read_map_len(&mut rd).map_err(|_| corrupt("it does not start with a map"))?;
    let (mut magic, mut format_version, mut kind) = (None, None, None);
    for _ in 0..entries.min(8) {
        let key = read_str(&mut rd).ok_or_else(|| corrupt("a header key does not decode"))?;
        let payload_len = match key {
            "magic" => {
                magic = read_str(&mut rd);
                continue;
            }
            "format_version" => {
                if magic != Some(MAGIC) {
                    return Err(Error::CorruptArtifact {
                        reason: format!("not a model artifact (magic {magic:?})"),
                    });
                }
                let found = rmp::decode::read_int::<u32, _>(&mut rd)
                    .map_err(|_| corrupt("the format version is not a number"))?;
                if !(FORMAT_BIN_PAYLOAD..=NEWEST_FORMAT_VERSION).contains(&found) {
                    return Err(Error::UnsupportedFormat {
                        found,
                        newest: NEWEST_FORMAT_VERSION,
                    });
                }
                format_version = Some(found);
                continue;
            }
            "kind" => {
                kind = read_str(&mut rd);
                continue;
            }
            "payload" if format_version == Some(FORMAT_BIN_PAYLOAD) => {
                rmp::decode::read_bin_len(&mut rd)
                    .map(u64::from)
                    .map_err(|_| corrupt("the payload is not a byte string"))?
            }
            "payload_len" if format_version == Some(FORMAT_TRAILING_PAYLOAD) => {
                rmp::decode::read_int::<u64, _>(&mut rd)
                    .map_err(|_| corrupt("the payload's length is not a number"))?
            }
            _ => return Err(corrupt(&format!("unexpected field {key:?}"))),
        };
        let (Some(format_version), Some(kind)) = (format_version, kind) else {
            return Err(corrupt("no format version or no model kind"));
        };
        let kind = ModelKind::deserialize(
            serde::de::IntoDeserializer::<serde::de::value::Error>::into_deserializer(kind),
        )
        .map_err(|_| corrupt(&format!("unknown model kind {kind:?}")))?;
        let header_len = bytes.len() - rd.len();
        let declared_size = (header_len as u64)
            .checked_add(payload_len)
            .ok_or_else(|| corrupt("the payload's length is out of range"))?;
        let head = ArtifactHead {
            kind,
            format_version,
            declared_size,
        };
        return Ok((head, header_len));
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

/// Verifies and decodes an artifact held whole: size and sha256 against what the manifest
/// recorded, then magic, format version and kind, then the model payload. Every load of a stored
/// version streams instead ([`decode_artifact_from`]); this is for bytes already in memory, and
/// the tests and the fuzz target hold the two decoders to the same answers.
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
    let (head, payload) = open_envelope(bytes)?;
    head.check_kind(expected_kind)?;
    // Read in place from the artifact's bytes: no copy of the payload first.
    rmp_serde::from_slice(payload).map_err(|e| head.undecodable(e))
}

/// Verifies and decodes an artifact while reading it from `source`, so that its bytes are never
/// all in memory at once: a server's load peak is the model it builds, not the model plus its
/// artifact (3.2 GB more for 10M items at rank 64).
///
/// The checks are those of [`decode_artifact`], in another order. The envelope comes first
/// (magic, format version, kind, declared length against `artifact.size`). The payload is
/// decoded as it arrives, and the size and sha256 are checked against `artifact` once the
/// source has been read to its end, whatever the decoder made of it. A model is returned only
/// when every check holds, and a damaged artifact is reported as a digest mismatch, as by
/// [`decode_artifact`]. The bytes are decoded before their digest can be known, so the decoder
/// meets them unverified: it is fuzzed on arbitrary bytes (`fuzz/fuzz_targets`), and it
/// allocates only as bytes arrive (`rmp_serde` reads a declared length by reading that many
/// bytes, and serde caps what a declared count preallocates), so a lying length costs no more
/// memory than the artifact's real size, which the envelope and `artifact.size` bound.
///
/// # Errors
/// As [`decode_artifact`]; [`Error::SizeMismatch`] for a source shorter or longer than
/// `artifact.size`; [`Error::Store`] (operation "read", key `artifact.key`) when `source`
/// fails.
pub fn decode_artifact_from<T: DeserializeOwned>(
    source: impl Read,
    artifact: &ArtifactRef,
    expected_kind: ModelKind,
) -> Result<T, Error> {
    let mut verifying = VerifyingRead {
        source,
        hasher: ArtifactHasher::new(),
        read: 0,
        failure: None,
    };
    let decoded = decode_stream(&mut verifying, artifact.size, expected_kind);
    // To the end whatever the outcome (and one byte past it, to notice a longer source), so
    // that the digest speaks for a damaged artifact before the decoder's complaint does.
    let remaining = (artifact.size.saturating_sub(verifying.read)).saturating_add(1);
    let _ = std::io::copy(&mut (&mut verifying).take(remaining), &mut std::io::sink());
    if let Some(source) = verifying.failure {
        return Err(Error::Store {
            operation: "read",
            key: artifact.key.clone(),
            source: Box::new(source),
        });
    }
    if verifying.read != artifact.size {
        return Err(Error::SizeMismatch {
            expected: artifact.size,
            actual: verifying.read,
        });
    }
    let actual = verifying.hasher.finish();
    if actual != artifact.sha256 {
        return Err(Error::DigestMismatch {
            expected: artifact.sha256.clone(),
            actual,
        });
    }
    decoded
}

/// The envelope and the model from an artifact of `size` bytes, read from `source`.
fn decode_stream<T: DeserializeOwned>(
    source: &mut impl Read,
    size: u64,
    expected_kind: ModelKind,
) -> Result<T, Error> {
    let unreadable = |e: std::io::Error| Error::CorruptArtifact {
        reason: format!("the envelope cannot be read: {e}"),
    };
    let mut head = Vec::with_capacity(ARTIFACT_HEAD_BYTES);
    source
        .take(size.min(ARTIFACT_HEAD_BYTES as u64))
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    let (envelope, header_len) = read_header(&head)?;
    envelope.check_size(size)?;
    envelope.check_kind(expected_kind)?;
    // The payload: what the head read past the header, then the rest of the source. Buffered,
    // since the decoder reads a few bytes at a time (a marker, then one f32).
    let rest = size - head.len() as u64;
    let payload = std::io::BufReader::with_capacity(
        1 << 20,
        Read::chain(&head[header_len..], source.take(rest)),
    );
    rmp_serde::from_read(payload).map_err(|e| envelope.undecodable(e))
}

/// A source read through: hashed and counted as it passes, its first failure kept (the decoder
/// sees only that the read failed, and reports it as corrupt data; the caller reports this).
struct VerifyingRead<R> {
    source: R,
    hasher: ArtifactHasher,
    read: u64,
    failure: Option<std::io::Error>,
}

impl<R: Read> Read for VerifyingRead<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.failure.is_some() {
            return Err(std::io::Error::other("the artifact's source failed"));
        }
        match self.source.read(buf) {
            Ok(n) => {
                self.hasher.update(&buf[..n]);
                self.read += n as u64;
                Ok(n)
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => Err(e),
            Err(e) => {
                let seen = std::io::Error::new(e.kind(), e.to_string());
                self.failure = Some(e);
                Err(seen)
            }
        }
    }
}

/// The envelope's header and the payload it frames, once the artifact's length is the one the
/// header declares (a truncated artifact, or one with bytes after its payload, is corrupt).
fn open_envelope(bytes: &[u8]) -> Result<(ArtifactHead, &[u8]), Error> {
    let (head, header_len) = read_header(bytes)?;
    head.check_size(bytes.len() as u64)?;
    Ok((head, &bytes[header_len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The envelope as builds before layout 2 wrote it: `rmp_serde` over this struct.
    #[derive(Serialize)]
    struct LayoutOneAsWrittenBefore {
        magic: String,
        format_version: u32,
        kind: ModelKind,
        #[serde(with = "serde_bytes")]
        payload: Vec<u8>,
    }

    fn written_before(kind: ModelKind, format_version: u32, model: &impl Serialize) -> Vec<u8> {
        rmp_serde::to_vec_named(&LayoutOneAsWrittenBefore {
            magic: MAGIC.to_owned(),
            format_version,
            kind,
            payload: rmp_serde::to_vec_named(model).unwrap(),
        })
        .unwrap()
    }

    fn weights(n: usize) -> TinyModel {
        TinyModel {
            weights: (0..n).map(|i| i as f64 * 0.25).collect(),
            bias: -2.0,
        }
    }

    #[test]
    fn a_model_that_fits_a_bin_32_is_written_as_builds_before_layout_2_wrote_it() {
        // Payloads of each MessagePack bin width: bin 8, bin 16, bin 32.
        for n in [3, 100, 10_000] {
            let model = weights(n);
            let encoded = encode_artifact(ModelKind::RecommenderAls, &model).unwrap();
            assert_eq!(
                encoded.bytes,
                written_before(ModelKind::RecommenderAls, FORMAT_BIN_PAYLOAD, &model),
                "{n} weights"
            );
            assert_eq!(
                inspect_artifact(&encoded.bytes).unwrap().format_version,
                FORMAT_BIN_PAYLOAD
            );
        }
    }

    #[test]
    fn a_model_larger_than_a_bin_32_is_written_after_the_map_and_decodes() {
        // Layout 1 holds at most what a bin 32's u32 length says.
        assert_eq!(MAX_BIN_PAYLOAD_BYTES as u64, u64::from(u32::MAX));
        let model = weights(1_000);
        let payload_len = rmp_serde::to_vec_named(&model).unwrap().len();

        // A limit one byte under the model's size: layout 2, the model raw after the map.
        let large = encode_within(ModelKind::RecommenderAls, &model, payload_len - 1).unwrap();
        let head = ArtifactHead {
            kind: ModelKind::RecommenderAls,
            format_version: FORMAT_TRAILING_PAYLOAD,
            declared_size: large.size(),
        };
        assert_eq!(inspect_artifact(&large.bytes).unwrap(), head);
        assert_eq!(
            inspect_artifact_head(&large.bytes[..ARTIFACT_HEAD_BYTES]).unwrap(),
            head
        );
        assert_eq!(
            large.bytes[large.bytes.len() - payload_len..],
            rmp_serde::to_vec_named(&model).unwrap()[..]
        );
        for (how, back) in
            decode_both::<TinyModel>(&large.bytes, &large.digest, ModelKind::RecommenderAls)
        {
            assert_eq!(back.unwrap(), model, "{how}");
        }

        // At the limit: layout 1.
        let fits = encode_within(ModelKind::RecommenderAls, &model, payload_len).unwrap();
        assert_eq!(
            inspect_artifact(&fits.bytes).unwrap().format_version,
            FORMAT_BIN_PAYLOAD
        );
        for (how, back) in
            decode_both::<TinyModel>(&fits.bytes, &fits.digest, ModelKind::RecommenderAls)
        {
            assert_eq!(back.unwrap(), model, "{how}");
        }
    }

    /// `model` in layout 2, whatever its size.
    fn layout_two(model: &TinyModel) -> EncodedArtifact {
        encode_within(ModelKind::RecommenderAls, model, 0).unwrap()
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

    /// A reader that hands out at most 3 bytes a call, so that every boundary of the streamed
    /// decode (head, payload, buffer refills) falls mid-field somewhere.
    struct Trickle<'a>(&'a [u8]);

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let n = buf.len().min(3).min(self.0.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// The manifest's record of `bytes` as stored: their size, `digest` as recorded.
    fn stored(bytes: &[u8], digest: &ArtifactDigest, kind: ModelKind) -> ArtifactRef {
        ArtifactRef {
            key: "test/artifacts/x.msgpack".into(),
            size: bytes.len() as u64,
            sha256: digest.clone(),
            kind,
            format_version: FORMAT_BIN_PAYLOAD,
        }
    }

    /// `bytes` decoded whole ([`decode_artifact`]) and streamed ([`decode_artifact_from`]),
    /// each with its name: every check below holds for both.
    fn decode_both<T: DeserializeOwned>(
        bytes: &[u8],
        digest: &ArtifactDigest,
        kind: ModelKind,
    ) -> [(&'static str, Result<T, Error>); 2] {
        [
            ("whole", decode_artifact(bytes, digest, kind)),
            (
                "streamed",
                decode_artifact_from(Trickle(bytes), &stored(bytes, digest, kind), kind),
            ),
        ]
    }

    #[test]
    fn round_trip_returns_the_same_model() {
        let encoded = encode_artifact(ModelKind::FraudRandomForest, &tiny()).unwrap();
        for (how, decoded) in decode_both::<TinyModel>(
            &encoded.bytes,
            &encoded.digest,
            ModelKind::FraudRandomForest,
        ) {
            assert_eq!(decoded.unwrap(), tiny(), "{how}");
        }
        assert_eq!(
            inspect_artifact(&encoded.bytes).unwrap().kind,
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
                format_version: FORMAT_BIN_PAYLOAD,
                declared_size: encoded.size(),
            }
        );
        for encoded in [encoded, layout_two(&tiny())] {
            let mut future = encoded.bytes.clone();
            let at = future
                .windows(14)
                .position(|w| w == b"format_version")
                .unwrap()
                + 14;
            future[at] = 3;
            assert!(matches!(
                inspect_artifact_head(&future),
                Err(Error::UnsupportedFormat {
                    found: 3,
                    newest: 2
                })
            ));
            // Each layout's length field under the other's version is refused.
            let mut swapped = encoded.bytes.clone();
            swapped[at] ^= 3;
            assert!(matches!(
                inspect_artifact_head(&swapped),
                Err(Error::CorruptArtifact { .. })
            ));
        }
        let encoded = encode_artifact(ModelKind::RecommenderAls, &tiny()).unwrap();
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
        let layout_one = encode_artifact(ModelKind::RecommenderAls, &tiny()).unwrap();
        for encoded in [layout_one, layout_two(&tiny())] {
            for i in 0..encoded.bytes.len() {
                let mut bytes = encoded.bytes.clone();
                bytes[i] ^= 0x01;
                for (how, decoded) in
                    decode_both::<TinyModel>(&bytes, &encoded.digest, ModelKind::RecommenderAls)
                {
                    let err = decoded.unwrap_err();
                    assert!(
                        matches!(err, Error::DigestMismatch { .. }),
                        "{how}, byte {i}: {err}"
                    );
                }
            }
        }
    }

    #[test]
    fn truncated_or_padded_artifact_is_refused_even_with_a_matching_digest() {
        let layout_one = encode_artifact(ModelKind::RecommenderAls, &tiny()).unwrap();
        for encoded in [layout_one, layout_two(&tiny())] {
            let len = encoded.bytes.len();
            let mut padded = encoded.bytes.clone();
            padded.push(0xc0);
            let cuts = [0, 1, len / 2, len - 1].map(|l| encoded.bytes[..l].to_vec());
            for bytes in cuts.into_iter().chain([padded]) {
                // A publisher that digested the damaged bytes still cannot get them served.
                for (how, decoded) in decode_both::<TinyModel>(
                    &bytes,
                    &ArtifactDigest::of(&bytes),
                    ModelKind::RecommenderAls,
                ) {
                    let err = decoded.unwrap_err();
                    assert!(
                        matches!(err, Error::CorruptArtifact { .. }),
                        "{how}, {} of {len} bytes: {err}",
                        bytes.len()
                    );
                }
                assert!(inspect_artifact(&bytes).is_err());
            }
        }
    }

    #[test]
    fn wrong_format_version_is_refused_with_both_versions_named() {
        let bytes = written_before(
            ModelKind::FraudRandomForest,
            NEWEST_FORMAT_VERSION + 1,
            &tiny(),
        );
        for (how, decoded) in decode_both::<TinyModel>(
            &bytes,
            &ArtifactDigest::of(&bytes),
            ModelKind::FraudRandomForest,
        ) {
            let err = decoded.unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::UnsupportedFormat {
                        found: 3,
                        newest: 2
                    }
                ),
                "{how}: {err}"
            );
        }
        assert!(inspect_artifact(&bytes).is_err());
    }

    #[test]
    fn wrong_kind_and_foreign_files_are_refused() {
        let encoded = encode_artifact(ModelKind::FraudDecisionTree, &tiny()).unwrap();
        for (how, decoded) in
            decode_both::<TinyModel>(&encoded.bytes, &encoded.digest, ModelKind::RecommenderAls)
        {
            let err = decoded.unwrap_err();
            assert!(matches!(err, Error::WrongModelKind { .. }), "{how}: {err}");
        }

        let foreign = rmp_serde::to_vec_named(&tiny()).unwrap();
        let err = inspect_artifact(&foreign).unwrap_err();
        assert!(matches!(err, Error::CorruptArtifact { .. }), "{err}");
    }

    #[test]
    fn payload_of_another_type_is_refused() {
        let encoded = encode_artifact(ModelKind::FraudRandomForest, &"just a string").unwrap();
        for (how, decoded) in decode_both::<TinyModel>(
            &encoded.bytes,
            &encoded.digest,
            ModelKind::FraudRandomForest,
        ) {
            let err = decoded.unwrap_err();
            assert!(matches!(err, Error::CorruptArtifact { .. }), "{how}: {err}");
        }
    }

    #[test]
    fn a_streamed_source_of_another_length_than_recorded_is_refused_by_size() {
        let encoded = encode_artifact(ModelKind::RecommenderAls, &tiny()).unwrap();
        let recorded = stored(&encoded.bytes, &encoded.digest, ModelKind::RecommenderAls);
        let mut longer = encoded.bytes.clone();
        longer.extend_from_slice(b"more");
        let len = encoded.bytes.len() as u64;
        for (source, actual) in [
            (&encoded.bytes[..encoded.bytes.len() - 1], len - 1),
            (&encoded.bytes[..0], 0),
            // Read one byte past the recorded size, no further.
            (&longer[..], len + 1),
        ] {
            let err = decode_artifact_from::<TinyModel>(
                Trickle(source),
                &recorded,
                ModelKind::RecommenderAls,
            )
            .unwrap_err();
            assert!(
                matches!(err, Error::SizeMismatch { expected, actual: a } if expected == len && a == actual),
                "{} bytes: {err}",
                source.len()
            );
        }
    }

    #[test]
    fn a_source_that_fails_midway_is_a_store_error_naming_the_artifact() {
        /// The first `good` bytes of an artifact, then a broken connection.
        struct Breaks<'a> {
            bytes: &'a [u8],
            good: usize,
        }
        impl Read for Breaks<'_> {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                if self.good == 0 {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::ConnectionReset,
                        "connection reset by peer",
                    ));
                }
                let n = buf.len().min(self.good).min(self.bytes.len());
                buf[..n].copy_from_slice(&self.bytes[..n]);
                (self.bytes, self.good) = (&self.bytes[n..], self.good - n);
                Ok(n)
            }
        }
        let encoded = layout_two(&weights(500));
        let recorded = stored(&encoded.bytes, &encoded.digest, ModelKind::RecommenderAls);
        for good in [0, 10, encoded.bytes.len() / 2, encoded.bytes.len() - 1] {
            let source = Breaks {
                bytes: &encoded.bytes,
                good,
            };
            let err =
                decode_artifact_from::<TinyModel>(source, &recorded, ModelKind::RecommenderAls)
                    .unwrap_err();
            let Error::Store { operation, key, .. } = &err else {
                panic!("after {good} bytes: {err}");
            };
            assert_eq!((*operation, key.as_str()), ("read", recorded.key.as_str()));
            assert!(
                crate::error_chain(&err).contains("connection reset by peer"),
                "{}",
                crate::error_chain(&err)
            );
        }
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
            for (_, decoded) in decode_both::<TinyModel>(&bytes, &digest, ModelKind::FraudRandomForest) {
                let _ = decoded;
            }
            let _ = inspect_artifact(&bytes);
        }

        #[test]
        fn models_round_trip(weights in proptest::collection::vec(-1e6f64..1e6, 0..64), bias in -10f64..10.0, layout_two in any::<bool>()) {
            let model = TinyModel { weights, bias };
            let limit = if layout_two { 0 } else { MAX_BIN_PAYLOAD_BYTES };
            let encoded = encode_within(ModelKind::FraudRandomForest, &model, limit).unwrap();
            for (how, back) in decode_both::<TinyModel>(&encoded.bytes, &encoded.digest, ModelKind::FraudRandomForest) {
                prop_assert_eq!(&back.unwrap(), &model, "{}", how);
            }
        }
    }
}
