//! Receipts (docs/FORMAT.md §12): what a submitter gets back for an event in the log, as a
//! C2SP tlog-proof (c2sp.org/tlog-proof@v1) that anyone checks offline with the log's key.
//!
//! The proof's record is the event leaf. Its `extra` carries what a verifier needs besides the
//! checkpoint to rebuild and judge that leaf: the leaf itself, the genesis leaf (leaf 0, with
//! the VRF key) and its inclusion proof, and the opening (nonce, VRF proof, signed event).
//! Nothing is signed per event: the log signs one checkpoint once the event's chunk is durable,
//! and every receipt of the chunk carries it. Receipt checkpoints are not stored or witnessed;
//! any stored checkpoint of the log is consistent with them, or the log has forked.
//!
//! [`Receipt::check`] is the verifier ([`Receipt::to_text`] / [`Receipt::parse`] the format):
//! the note's signature, both inclusions, the genesis leaf's origin, the commitment, the event's
//! own rules, its log, its state key against the VRF proof, its seq, prev and time window.

use std::sync::Arc;

use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};

use crate::codec::DecodeError;
use crate::event::SignedEvent;
use crate::hash::{hex_array, hex_bytes, Hash};
use crate::leaf::{self, EventLeaf, GenesisLeaf, Leaf, LeafError};
use crate::note::{self, NoteError, SignedCheckpoint};
use crate::opening::{Opening, OPENING_HEAD};
use crate::proof::logged_event::check_issued_at;
use crate::reject::Reject;
use crate::tlog::{self, InclusionError, LeafIndex, Sha256Hasher, TreeSize};
use crate::tlog_proof::{TlogProof, TlogProofError, MAX_PATH};
use crate::vrf::{VrfError, VrfPublicKey};

/// First byte of a receipt's `extra`.
pub const EXTRA_VERSION: u8 = 2;

/// What every receipt of one chunk shares: the checkpoint signed once the chunk was durable,
/// and the genesis leaf with its inclusion proof under that checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiptAnchor {
    /// The checkpoint note, byte for byte.
    pub checkpoint: String,
    /// The genesis leaf's bytes (`kind || body`).
    pub genesis: Vec<u8>,
    /// Inclusion proof of leaf 0 under the checkpoint.
    pub genesis_inclusion: Vec<Hash>,
}

/// A receipt: an event leaf, its opening and its inclusion proof under a signed checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    pub index: u64,
    pub leaf: EventLeaf,
    pub opening: Opening,
    /// Inclusion proof of the event leaf under the anchor's checkpoint, leaf upwards.
    pub inclusion: Vec<Hash>,
    pub anchor: Arc<ReceiptAnchor>,
}

/// Why a text is not a well-formed receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptFormatError {
    #[error("{0}")]
    Proof(#[from] TlogProofError),
    #[error("receipt has no extra line (a consentlog receipt carries its leaf and opening there)")]
    NoExtra,
    #[error("receipt extra: version {0}, expected {EXTRA_VERSION}")]
    Version(u8),
    #[error("receipt extra: {0} ends early or has a bad length")]
    Truncated(&'static str),
    #[error("receipt extra: more than {MAX_PATH} genesis inclusion hashes")]
    GenesisPath,
    #[error("receipt extra: event leaf: {0}")]
    Leaf(#[source] LeafError),
    #[error("receipt extra: opening: {0}")]
    Opening(#[source] DecodeError),
}

/// Why a well-formed receipt does not prove its event is in the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("index 0 is the genesis leaf, not an event")]
    GenesisIndex,
    #[error("genesis leaf: {0}")]
    Genesis(#[source] LeafError),
    #[error("genesis leaf inclusion: {0}")]
    GenesisInclusion(#[source] InclusionError),
    #[error("genesis leaf is for origin {genesis:?}, the checkpoint for {checkpoint:?}")]
    Origin { genesis: String, checkpoint: String },
    #[error("genesis leaf's VRF key: {0}")]
    VrfKey(#[source] VrfError),
    #[error("event leaf inclusion: {0}")]
    Inclusion(#[source] InclusionError),
    #[error("the opening does not match the leaf's commitment")]
    Commitment,
    #[error("event: {0}")]
    Event(#[from] Reject),
    #[error("state key: {0}")]
    Vrf(#[source] VrfError),
    #[error("the leaf's key is not the state key of its event")]
    StateKey,
    #[error("leaf seq {leaf} differs from the signed event's seq {event}")]
    Seq { leaf: u64, event: u64 },
    #[error("leaf prev {prev:?} does not fit seq {seq} at index {index}")]
    Prev {
        prev: Option<u64>,
        seq: u64,
        index: u64,
    },
    #[error(
        "integrated_at {} is more than 5 minutes from issued_at {}",
        crate::time::Both(*.integrated_at),
        crate::time::Both(*.issued_at)
    )]
    IssuedAt { integrated_at: u64, issued_at: u64 },
    #[error(
        "integrated_at {} is before the log's genesis time {}",
        crate::time::Both(*.integrated_at),
        crate::time::Both(*.genesis_time)
    )]
    BeforeGenesis {
        integrated_at: u64,
        genesis_time: u64,
    },
    #[error("the receipt is for another event than the one given")]
    OtherEvent,
}

/// A receipt after [`Receipt::check`] passed.
#[derive(Debug, Clone)]
pub struct CheckedReceipt {
    pub checkpoint: SignedCheckpoint,
    pub genesis: GenesisLeaf,
    pub index: u64,
    pub leaf: EventLeaf,
    pub leaf_hash: Hash,
    pub event_hash: Hash,
}

/// Reads `extra` front to back.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], ReceiptFormatError> {
        if self.0.len() < n {
            return Err(ReceiptFormatError::Truncated(what));
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u64(&mut self, what: &'static str) -> Result<u64, ReceiptFormatError> {
        let b = self.take(8, what)?;
        Ok(u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
    fn bytes(&mut self, what: &'static str) -> Result<&'a [u8], ReceiptFormatError> {
        let n = self.u64(what)?;
        let n = usize::try_from(n).map_err(|_| ReceiptFormatError::Truncated(what))?;
        self.take(n, what)
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u64).to_le_bytes());
    out.extend_from_slice(b);
}

impl Receipt {
    /// The `extra` bytes (docs/FORMAT.md §12): `0x02 || bytes(event leaf) || bytes(genesis
    /// leaf) || u64 n || n genesis inclusion hashes || opening`, where `bytes(x)` is a u64
    /// little-endian length then `x`, and the opening (`nonce || vrf_proof || SignedEvent`) runs
    /// to the end.
    pub fn extra(&self) -> Vec<u8> {
        self.extra_with(&self.leaf.to_bytes())
    }

    /// [`Receipt::extra`] given the event leaf's bytes.
    fn extra_with(&self, leaf: &[u8]) -> Vec<u8> {
        let opening = self.opening.to_bytes();
        let a = &self.anchor;
        let mut out = Vec::with_capacity(
            25 + leaf.len() + a.genesis.len() + 32 * a.genesis_inclusion.len() + opening.len(),
        );
        out.push(EXTRA_VERSION);
        put_bytes(&mut out, leaf);
        put_bytes(&mut out, &a.genesis);
        out.extend_from_slice(&(a.genesis_inclusion.len() as u64).to_le_bytes());
        for h in &a.genesis_inclusion {
            out.extend_from_slice(h);
        }
        out.extend_from_slice(&opening);
        out
    }

    /// The receipt as a tlog-proof.
    pub fn to_tlog_proof(&self) -> TlogProof {
        TlogProof {
            extra: Some(self.extra()),
            index: self.index,
            path: self.inclusion.clone(),
            checkpoint: self.anchor.checkpoint.clone(),
        }
    }

    /// The receipt's text: a c2sp.org/tlog-proof@v1.
    pub fn to_text(&self) -> String {
        self.text_with(&self.leaf.to_bytes())
    }

    /// The receipt's JSON (docs/FORMAT.md §12), the same bytes as its `Serialize` through
    /// `serde_json`, written directly: the tlog-proof's lines go in with their newlines
    /// already escaped, and only the checkpoint passes through the JSON string escaper.
    pub fn to_json(&self) -> String {
        use std::fmt::Write;
        let leaf = self.leaf.to_bytes();
        let extra = self.extra_with(&leaf);
        let checkpoint = serde_json::to_string(&self.anchor.checkpoint).expect("a string");
        let mut s = String::with_capacity(
            256 + 2 * leaf.len()
                + crate::tlog_proof::head_len(Some(&extra), &self.inclusion)
                + checkpoint.len(),
        );
        write!(s, "{{\"index\":{},\"leaf\":\"", self.index).expect("writing to a String");
        crate::hash::push_hex(&mut s, &leaf);
        s.push_str("\",\"leaf_hash\":\"");
        crate::hash::push_hex(&mut s, &crate::leaf::leaf_hash(&leaf));
        s.push_str("\",\"event_hash\":\"");
        crate::hash::push_hex(&mut s, &self.opening.event.event_hash());
        write!(
            s,
            "\",\"integrated_at\":{},\"seq\":{},\"tlog_proof\":\"",
            self.leaf.integrated_at, self.leaf.seq
        )
        .expect("writing to a String");
        crate::tlog_proof::push_head(&mut s, Some(&extra), self.index, &self.inclusion, "\\n");
        // The checkpoint's JSON string without its quotes.
        s.push_str(&checkpoint[1..checkpoint.len() - 1]);
        s.push_str("\"}");
        s
    }

    /// [`Receipt::to_text`] given the event leaf's bytes.
    fn text_with(&self, leaf: &[u8]) -> String {
        crate::tlog_proof::text(
            Some(&self.extra_with(leaf)),
            self.index,
            &self.inclusion,
            &self.anchor.checkpoint,
        )
    }

    /// Parses a receipt's text strictly (the tlog-proof, then its `extra`). Nothing is
    /// verified: see [`Receipt::check`].
    pub fn parse(text: &str) -> Result<Receipt, ReceiptFormatError> {
        let p = TlogProof::parse(text)?;
        let extra = p.extra.ok_or(ReceiptFormatError::NoExtra)?;
        let mut c = Cursor(&extra);
        let version = c.take(1, "version")?[0];
        if version != EXTRA_VERSION {
            return Err(ReceiptFormatError::Version(version));
        }
        let leaf = Leaf::decode_event(c.bytes("event leaf")?).map_err(ReceiptFormatError::Leaf)?;
        let genesis = c.bytes("genesis leaf")?.to_vec();
        let n = c.u64("genesis inclusion count")?;
        if n > MAX_PATH as u64 {
            return Err(ReceiptFormatError::GenesisPath);
        }
        let genesis_inclusion = (0..n)
            .map(|_| {
                c.take(32, "genesis inclusion")
                    .map(|h| h.try_into().expect("32"))
            })
            .collect::<Result<Vec<Hash>, _>>()?;
        if c.0.len() < OPENING_HEAD {
            return Err(ReceiptFormatError::Truncated("opening"));
        }
        let opening = Opening::decode(c.0).map_err(ReceiptFormatError::Opening)?;
        Ok(Receipt {
            index: p.index,
            leaf,
            opening,
            inclusion: p.path,
            anchor: Arc::new(ReceiptAnchor {
                checkpoint: p.checkpoint,
                genesis,
                genesis_inclusion,
            }),
        })
    }

    /// Checks the receipt under the log key: the checkpoint's signature; the genesis leaf at
    /// index 0 under it, for the checkpoint's origin; the event leaf at `index` under it; the
    /// opening against the leaf's commitment; the event's own rules and log; the leaf's key
    /// against the VRF proof under the genesis leaf's VRF key; seq, prev and the time window.
    pub fn check(&self, log_key: &VerifyingKey) -> Result<CheckedReceipt, ReceiptError> {
        let cp = note::open(&self.anchor.checkpoint, log_key)?;
        if self.index == 0 {
            return Err(ReceiptError::GenesisIndex);
        }
        let genesis = Leaf::decode_genesis(&self.anchor.genesis).map_err(ReceiptError::Genesis)?;
        inclusion(
            &leaf::leaf_hash(&self.anchor.genesis),
            0,
            &self.anchor.genesis_inclusion,
            &cp,
        )
        .map_err(ReceiptError::GenesisInclusion)?;
        if genesis.origin != cp.origin {
            return Err(ReceiptError::Origin {
                genesis: genesis.origin,
                checkpoint: cp.origin,
            });
        }
        let leaf_hash = self.leaf.leaf_hash();
        inclusion(&leaf_hash, self.index, &self.inclusion, &cp).map_err(ReceiptError::Inclusion)?;
        let (leaf, event) = (&self.leaf, &self.opening.event);
        if self.opening.commitment() != leaf.commitment {
            return Err(ReceiptError::Commitment);
        }
        event.check_self()?;
        event.check_log(&genesis.origin)?;
        let vrf = VrfPublicKey::from_bytes(genesis.vrf_key).map_err(ReceiptError::VrfKey)?;
        let key = vrf
            .check_state_key(&event.event.state_key_input(), &self.opening.vrf)
            .map_err(ReceiptError::Vrf)?;
        if key != leaf.key {
            return Err(ReceiptError::StateKey);
        }
        if leaf.seq != event.event.seq {
            return Err(ReceiptError::Seq {
                leaf: leaf.seq,
                event: event.event.seq,
            });
        }
        let prev_fits = match leaf.prev {
            None => leaf.seq == 0,
            Some(p) => leaf.seq > 0 && p > 0 && p < self.index,
        };
        if !prev_fits {
            return Err(ReceiptError::Prev {
                prev: leaf.prev,
                seq: leaf.seq,
                index: self.index,
            });
        }
        check_issued_at(leaf, event).map_err(|_| ReceiptError::IssuedAt {
            integrated_at: leaf.integrated_at,
            issued_at: event.event.issued_at,
        })?;
        if leaf.integrated_at < genesis.genesis_time {
            return Err(ReceiptError::BeforeGenesis {
                integrated_at: leaf.integrated_at,
                genesis_time: genesis.genesis_time,
            });
        }
        Ok(CheckedReceipt {
            checkpoint: cp,
            genesis,
            index: self.index,
            leaf: *leaf,
            leaf_hash,
            event_hash: event.event_hash(),
        })
    }

    /// [`Receipt::check`], and that the receipt is for exactly `event` (byte for byte).
    pub fn check_for(
        &self,
        log_key: &VerifyingKey,
        event: &SignedEvent,
    ) -> Result<CheckedReceipt, ReceiptError> {
        let checked = self.check(log_key)?;
        if self.opening.event.as_bytes() != event.as_bytes() {
            return Err(ReceiptError::OtherEvent);
        }
        Ok(checked)
    }
}

fn inclusion(
    hash: &Hash,
    index: u64,
    path: &[Hash],
    cp: &SignedCheckpoint,
) -> Result<(), InclusionError> {
    tlog::check_inclusion(
        &Sha256Hasher,
        LeafIndex(index),
        TreeSize(cp.size),
        hash,
        path,
        &cp.root,
    )
}

/// A receipt as JSON, as the server and the CLI hand it out: the tlog-proof text, with the
/// index, the event leaf, its hash and the event hash beside it for people and scripts (the
/// text is what counts; [`Receipt`]'s deserializer refuses fields that disagree with it).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReceiptJson {
    index: u64,
    #[serde(with = "hex_bytes")]
    leaf: Vec<u8>,
    #[serde(with = "hex_array")]
    leaf_hash: Hash,
    #[serde(with = "hex_array")]
    event_hash: Hash,
    integrated_at: u64,
    seq: u64,
    tlog_proof: String,
}

impl Serialize for Receipt {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let leaf = self.leaf.to_bytes();
        ReceiptJson {
            index: self.index,
            leaf_hash: crate::leaf::leaf_hash(&leaf),
            event_hash: self.opening.event.event_hash(),
            integrated_at: self.leaf.integrated_at,
            seq: self.leaf.seq,
            tlog_proof: self.text_with(&leaf),
            leaf,
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Receipt {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let j = ReceiptJson::deserialize(d)?;
        let r = Receipt::parse(&j.tlog_proof).map_err(D::Error::custom)?;
        let agrees = j.index == r.index
            && j.leaf == r.leaf.to_bytes()
            && j.leaf_hash == r.leaf.leaf_hash()
            && j.event_hash == r.opening.event.event_hash()
            && j.integrated_at == r.leaf.integrated_at
            && j.seq == r.leaf.seq;
        if !agrees {
            return Err(D::Error::custom(
                "receipt fields disagree with the receipt's tlog-proof text",
            ));
        }
        Ok(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::Log;

    #[test]
    fn a_receipt_checks_and_round_trips() {
        let (log, receipts) = Log::with_receipts();
        for r in &receipts {
            let c = r.check(&log.public()).unwrap();
            assert_eq!(c.index, r.index);
            assert_eq!(Receipt::parse(&r.to_text()).as_ref(), Ok(r));
            let json = serde_json::to_string(r).unwrap();
            assert_eq!(r.to_json(), json);
            let back: Receipt = serde_json::from_str(&json).unwrap();
            assert_eq!(&back, r);
            assert!(r.check_for(&log.public(), &r.opening.event).is_ok());
        }
        let other = &receipts[1].opening.event;
        assert_eq!(
            receipts[0].check_for(&log.public(), other).unwrap_err(),
            ReceiptError::OtherEvent
        );
    }

    #[test]
    fn direct_json_is_serdes_json() {
        let (_, receipts) = Log::with_receipts();
        for r in &receipts {
            assert_eq!(r.to_json(), serde_json::to_string(r).unwrap());
            // Characters a JSON string escapes, in the one part copied verbatim.
            let mut odd = r.clone();
            Arc::make_mut(&mut odd.anchor).checkpoint =
                format!("{}\"\\\t\u{1}\u{7f} — é\n", r.anchor.checkpoint);
            assert_eq!(odd.to_json(), serde_json::to_string(&odd).unwrap());
            let mut short = r.clone();
            short.inclusion.clear();
            assert_eq!(short.to_json(), serde_json::to_string(&short).unwrap());
        }
    }

    #[test]
    fn every_single_bit_change_is_refused() {
        let (log, receipts) = Log::with_receipts();
        let text = receipts[1].to_text();
        let bytes = text.as_bytes();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut b = bytes.to_vec();
                b[i] ^= 1 << bit;
                let Ok(t) = String::from_utf8(b) else {
                    continue;
                };
                if let Ok(r) = Receipt::parse(&t) {
                    assert!(
                        r.check(&log.public()).is_err(),
                        "bit {bit} of byte {i} changed and the receipt still checks"
                    );
                }
            }
        }
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        let (log, receipts) = Log::with_receipts();
        let key = log.public();
        let r = &receipts[1];
        let other = ed25519_dalek::SigningKey::from_bytes(&[9; 32]).verifying_key();
        assert!(matches!(r.check(&other), Err(ReceiptError::Checkpoint(_))));
        let mut bad = r.clone();
        bad.index = 0;
        assert_eq!(bad.check(&key).unwrap_err(), ReceiptError::GenesisIndex);
        let mut bad = r.clone();
        bad.opening.nonce[0] ^= 1;
        assert_eq!(bad.check(&key).unwrap_err(), ReceiptError::Commitment);
    }
}
