//! The leaves of a format-v2 log (docs/FORMAT.md, "Leaves"): every leaf starts with a kind
//! byte, and its hash in the RFC 6962 tree is `SHA-256(0x00 || bytes(leaf))`.
//!
//! - Leaf 0, and only leaf 0, is the **genesis** leaf: the origin, the VRF public key that
//!   state keys are computed under, the genesis time and an optional declared witness policy.
//!   With it, the log's signing key stays the whole trust root.
//! - **Event** leaves say that state key `K` changed at `integrated_at`, link to `K`'s previous
//!   event leaf (`prev`, its index) and count (`seq`), and commit to the signed event.
//! - **Map** leaves carry a time `t` and the root of the state map over every event leaf before
//!   them, so the map is in the log and witnesses can replay it.
//!
//! Decoding is strict: an unknown kind or version, a short or long leaf, or an event leaf whose
//! `seq` and `prev` disagree (seq 0 exactly when there is no prev) is refused.

use serde::{Deserialize, Serialize};

use super::codec;
use super::hash::Hash;
use super::tlog::{Sha256Hasher, TreeHasher};

/// The format version of every v2 leaf.
pub const LEAF_VERSION: u8 = 2;
/// Longest witness policy a genesis leaf may declare.
pub const MAX_POLICY: usize = 16 * 1024;

/// The kind byte that starts every leaf.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LeafKind {
    Genesis = 0,
    Event = 1,
    Map = 2,
}

impl LeafKind {
    pub fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Self::Genesis),
            1 => Some(Self::Event),
            2 => Some(Self::Map),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Genesis => "genesis",
            Self::Event => "event",
            Self::Map => "map",
        }
    }
}

/// Leaf 0: what the log is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GenesisLeaf {
    pub version: u8,
    /// The checkpoint origin line, and the `log` of every event.
    pub origin: String,
    /// The VRF public key of the state keys (c2sp.org/vrf-r255); a new VRF key means a new
    /// origin.
    pub vrf_key: [u8; 32],
    /// The log's clock when it was created (ms); questions about earlier times are refused.
    pub genesis_time: u64,
    /// A C2SP tlog-policy the log declares for its checkpoints, if any.
    pub witness_policy: Option<String>,
}

/// One decision of one state key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct EventLeaf {
    pub version: u8,
    /// The log's clock when the event was appended (ms).
    pub integrated_at: u64,
    /// The state key `K` (the VRF output of the triple).
    pub key: [u8; 32],
    /// The index of `K`'s previous event leaf; none for `K`'s first.
    pub prev: Option<u64>,
    /// How many event leaves `K` had before this one.
    pub seq: u64,
    /// Commitment to the signed event (BLAKE3, keyed; see "Openings").
    pub commitment: Hash,
}

impl EventLeaf {
    /// `kind || body` of this event leaf.
    pub fn to_bytes(&self) -> Vec<u8> {
        Leaf::Event(*self).to_bytes()
    }

    /// Its RFC 6962 leaf hash.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }
}

/// The state map as of a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MapLeaf {
    pub version: u8,
    /// Every event leaf before this one has `integrated_at` ≤ `time`; every leaf after it has
    /// a time strictly greater.
    pub time: u64,
    /// Root of the state map over every event leaf before this one.
    pub map_root: Hash,
}

impl MapLeaf {
    /// `kind || body` of this map leaf.
    pub fn to_bytes(&self) -> Vec<u8> {
        Leaf::Map(*self).to_bytes()
    }
}

impl GenesisLeaf {
    /// `kind || body` of this genesis leaf.
    pub fn to_bytes(&self) -> Vec<u8> {
        Leaf::Genesis(self.clone()).to_bytes()
    }
}

/// A leaf of any kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Leaf {
    Genesis(GenesisLeaf),
    Event(EventLeaf),
    Map(MapLeaf),
}

/// Why bytes are not a leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    #[error("empty leaf")]
    Empty,
    #[error("unknown leaf kind {0}")]
    Kind(u8),
    #[error("{kind} leaf has version {version}; this software reads version 2 (format v1 ledgers are not converted)")]
    Version { kind: &'static str, version: u8 },
    #[error("malformed {kind} leaf: {reason}")]
    Malformed { kind: &'static str, reason: String },
    #[error("event leaf has seq {seq} but {prev}: seq is 0 exactly when there is no prev")]
    SeqPrev { seq: u64, prev: String },
    #[error("genesis leaf declares a witness policy of {0} bytes (at most {MAX_POLICY})")]
    PolicyTooLong(usize),
    #[error("expected a {want} leaf, got a {got} leaf")]
    WrongKind {
        want: &'static str,
        got: &'static str,
    },
}

/// `SHA-256(0x00 || bytes)`: the RFC 6962 leaf hash of a leaf's bytes.
pub fn leaf_hash(bytes: &[u8]) -> Hash {
    Sha256Hasher.hash_leaf(bytes)
}

impl Leaf {
    pub fn kind(&self) -> LeafKind {
        match self {
            Leaf::Genesis(_) => LeafKind::Genesis,
            Leaf::Event(_) => LeafKind::Event,
            Leaf::Map(_) => LeafKind::Map,
        }
    }

    /// The time the leaf carries: genesis time, `integrated_at` or the map time.
    pub fn time(&self) -> u64 {
        match self {
            Leaf::Genesis(g) => g.genesis_time,
            Leaf::Event(e) => e.integrated_at,
            Leaf::Map(m) => m.time,
        }
    }

    /// `kind || body`, the body in the §1 encoding.
    pub fn to_bytes(&self) -> Vec<u8> {
        let (kind, mut body) = match self {
            Leaf::Genesis(g) => (LeafKind::Genesis, codec::encode(g)),
            Leaf::Event(e) => (LeafKind::Event, codec::encode(e)),
            Leaf::Map(m) => (LeafKind::Map, codec::encode(m)),
        };
        body.insert(0, kind as u8);
        body
    }

    /// The leaf's RFC 6962 hash, `SHA-256(0x00 || bytes(leaf))`.
    pub fn leaf_hash(&self) -> Hash {
        leaf_hash(&self.to_bytes())
    }

    fn wrong_kind(&self, want: LeafKind) -> LeafError {
        LeafError::WrongKind {
            want: want.as_str(),
            got: self.kind().as_str(),
        }
    }

    /// Strict decoding of a leaf that must be a genesis leaf.
    pub fn decode_genesis(bytes: &[u8]) -> Result<GenesisLeaf, LeafError> {
        match Leaf::decode(bytes)? {
            Leaf::Genesis(g) => Ok(g),
            other => Err(other.wrong_kind(LeafKind::Genesis)),
        }
    }

    /// Strict decoding of a leaf that must be an event leaf.
    pub fn decode_event(bytes: &[u8]) -> Result<EventLeaf, LeafError> {
        match Leaf::decode(bytes)? {
            Leaf::Event(e) => Ok(e),
            other => Err(other.wrong_kind(LeafKind::Event)),
        }
    }

    /// Strict decoding of a leaf that must be a map leaf.
    pub fn decode_map(bytes: &[u8]) -> Result<MapLeaf, LeafError> {
        match Leaf::decode(bytes)? {
            Leaf::Map(m) => Ok(m),
            other => Err(other.wrong_kind(LeafKind::Map)),
        }
    }

    /// Strict decoding of `kind || body`.
    pub fn decode(bytes: &[u8]) -> Result<Self, LeafError> {
        let (&first, body) = bytes.split_first().ok_or(LeafError::Empty)?;
        let kind = LeafKind::from_byte(first).ok_or(LeafError::Kind(first))?;
        // The version is the body's first byte in every kind: check it before the layout so
        // that a leaf of another version is named as such.
        match body.first() {
            Some(&LEAF_VERSION) => {}
            Some(&version) => {
                return Err(LeafError::Version {
                    kind: kind.as_str(),
                    version,
                })
            }
            None => {
                return Err(LeafError::Malformed {
                    kind: kind.as_str(),
                    reason: "no body".into(),
                })
            }
        }
        let malformed = |e: codec::DecodeError| LeafError::Malformed {
            kind: kind.as_str(),
            reason: e.to_string(),
        };
        let leaf = match kind {
            LeafKind::Genesis => Leaf::Genesis(codec::decode(body).map_err(malformed)?),
            LeafKind::Event => Leaf::Event(codec::decode(body).map_err(malformed)?),
            LeafKind::Map => Leaf::Map(codec::decode(body).map_err(malformed)?),
        };
        leaf.check()?;
        Ok(leaf)
    }

    /// The rules a leaf obeys on its own (those about its place in the log are the replay's).
    fn check(&self) -> Result<(), LeafError> {
        match self {
            Leaf::Event(e) if (e.seq == 0) != e.prev.is_none() => Err(LeafError::SeqPrev {
                seq: e.seq,
                prev: match e.prev {
                    Some(p) => format!("prev {p}"),
                    None => "no prev".into(),
                },
            }),
            Leaf::Genesis(g) => match &g.witness_policy {
                Some(p) if p.len() > MAX_POLICY => Err(LeafError::PolicyTooLong(p.len())),
                _ => Ok(()),
            },
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn genesis() -> Leaf {
        Leaf::Genesis(GenesisLeaf {
            version: LEAF_VERSION,
            origin: "example.com/consent".into(),
            vrf_key: [7; 32],
            genesis_time: 1_790_000_000_000,
            witness_policy: None,
        })
    }

    fn event(prev: Option<u64>, seq: u64) -> Leaf {
        Leaf::Event(EventLeaf {
            version: LEAF_VERSION,
            integrated_at: 1_790_000_000_123,
            key: [9; 32],
            prev,
            seq,
            commitment: [3; 32],
        })
    }

    fn map() -> Leaf {
        Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time: 1_790_000_001_000,
            map_root: [5; 32],
        })
    }

    #[test]
    fn layouts() {
        let e = event(Some(4), 2).to_bytes();
        // kind, version, integrated_at, key, Some(prev), seq, commitment
        assert_eq!(e.len(), 1 + 1 + 8 + 32 + 9 + 8 + 32);
        assert_eq!(&e[..2], &[1, 2]);
        // docs/FORMAT.md §3's example.
        assert_eq!(hex::encode(&e[..11]), "01027b6c50c4a001000009");
        assert_eq!(&e[2..10], &1_790_000_000_123u64.to_le_bytes());
        assert_eq!(&e[42..51], &[1, 4, 0, 0, 0, 0, 0, 0, 0]);
        let first = event(None, 0).to_bytes();
        assert_eq!(first.len(), 1 + 1 + 8 + 32 + 1 + 8 + 32);
        let m = map().to_bytes();
        assert_eq!(m.len(), 1 + 1 + 8 + 32);
        assert_eq!(&m[..2], &[2, 2]);
        let g = genesis().to_bytes();
        assert_eq!(&g[..2], &[0, 2]);
        assert_eq!(&g[2..10], &19u64.to_le_bytes());
        assert_eq!(g.len(), 2 + 8 + 19 + 32 + 8 + 1);
    }

    #[test]
    fn round_trips() {
        let with_policy = Leaf::Genesis(GenesisLeaf {
            witness_policy: Some("log example.com/consent ...\n".into()),
            ..match genesis() {
                Leaf::Genesis(g) => g,
                _ => unreachable!(),
            }
        });
        for leaf in [
            genesis(),
            with_policy,
            event(None, 0),
            event(Some(0), 1),
            map(),
        ] {
            assert_eq!(Leaf::decode(&leaf.to_bytes()), Ok(leaf));
        }
    }

    #[test]
    fn refusals() {
        assert_eq!(Leaf::decode(&[]), Err(LeafError::Empty));
        assert_eq!(Leaf::decode(&[3, 2]), Err(LeafError::Kind(3)));
        // A v1 entry starts with version 1; read as v2 it is refused by version.
        let mut v1 = event(None, 0).to_bytes();
        v1[1] = 1;
        assert!(matches!(
            Leaf::decode(&v1),
            Err(LeafError::Version {
                kind: "event",
                version: 1
            })
        ));
        let mut long = map().to_bytes();
        long.push(0);
        assert!(matches!(
            Leaf::decode(&long),
            Err(LeafError::Malformed { kind: "map", .. })
        ));
        let short = &map().to_bytes()[..20];
        assert!(matches!(
            Leaf::decode(short),
            Err(LeafError::Malformed { .. })
        ));
        for (prev, seq) in [(None, 1), (Some(3), 0)] {
            assert!(matches!(
                Leaf::decode(&event(prev, seq).to_bytes()),
                Err(LeafError::SeqPrev { .. })
            ));
        }
        // Option tags other than 0 and 1.
        let mut tag = event(Some(1), 1).to_bytes();
        tag[42] = 2;
        assert!(matches!(
            Leaf::decode(&tag),
            Err(LeafError::Malformed { .. })
        ));
    }

    #[test]
    fn every_truncation_and_extension_is_refused() {
        for leaf in [genesis(), event(None, 0), event(Some(7), 3), map()] {
            let b = leaf.to_bytes();
            for n in 0..b.len() {
                assert!(
                    Leaf::decode(&b[..n]).is_err(),
                    "{:?} cut to {n}",
                    leaf.kind()
                );
            }
            let mut more = b.clone();
            more.push(0);
            assert!(Leaf::decode(&more).is_err());
        }
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        fn any_leaf() -> impl Strategy<Value = Leaf> {
            prop_oneof![
                (
                    "[a-z0-9./]{1,40}",
                    any::<[u8; 32]>(),
                    any::<u64>(),
                    proptest::option::of("[ -~\n]{0,60}")
                )
                    .prop_map(|(origin, vrf_key, genesis_time, witness_policy)| {
                        Leaf::Genesis(GenesisLeaf {
                            version: LEAF_VERSION,
                            origin,
                            vrf_key,
                            genesis_time,
                            witness_policy,
                        })
                    }),
                (
                    any::<u64>(),
                    any::<[u8; 32]>(),
                    any::<u64>(),
                    any::<[u8; 32]>()
                )
                    .prop_map(|(integrated_at, key, n, commitment)| {
                        Leaf::Event(EventLeaf {
                            version: LEAF_VERSION,
                            integrated_at,
                            key,
                            prev: (n % 3 != 0).then_some(n / 2),
                            seq: if n % 3 != 0 { n / 3 + 1 } else { 0 },
                            commitment,
                        })
                    }),
                (any::<u64>(), any::<[u8; 32]>()).prop_map(|(time, map_root)| {
                    Leaf::Map(MapLeaf {
                        version: LEAF_VERSION,
                        time,
                        map_root,
                    })
                }),
            ]
        }

        proptest! {
            /// Every leaf round-trips, and every single-bit change is refused or decodes to a
            /// different leaf (never to the same one: the encoding is canonical).
            #[test]
            fn round_trip_and_bit_flips(leaf in any_leaf(), bit in any::<usize>()) {
                let b = leaf.to_bytes();
                prop_assert_eq!(Leaf::decode(&b), Ok(leaf.clone()));
                let mut flipped = b.clone();
                let bit = bit % (b.len() * 8);
                flipped[bit / 8] ^= 1 << (bit % 8);
                if let Ok(other) = Leaf::decode(&flipped) {
                    prop_assert_ne!(other.clone(), leaf);
                    prop_assert_eq!(other.to_bytes(), flipped);
                }
            }

            /// Whatever decodes re-encodes to exactly its bytes.
            #[test]
            fn arbitrary_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
                if let Ok(leaf) = Leaf::decode(&bytes) {
                    prop_assert_eq!(leaf.to_bytes(), bytes);
                }
            }
        }
    }
}
