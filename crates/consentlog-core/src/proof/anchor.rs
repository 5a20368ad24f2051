//! What every proof, history and batch rests on (docs/FORMAT.md §8, step 1): a checkpoint
//! signed by the log key, the log's genesis leaf (leaf 0) and one map leaf, both included
//! under that checkpoint. With them a verifier knows the log's origin and genesis time and the
//! state map as of the map leaf's time, all pinned by the log key alone.

use serde::{Deserialize, Serialize};

use crate::hash::{hex_bytes, Hash, HexHash};
use crate::leaf::{self, GenesisLeaf, Leaf, LeafError, MapLeaf};
use crate::note::SignedCheckpoint;
use crate::tlog::{self, InclusionError, LeafIndex, Sha256Hasher, TreeSize};

/// One leaf of the log with its index and RFC 6962 inclusion proof (leaf upwards).
///
/// JSON: `{"index": 0, "leaf": "<hex>", "inclusion": ["<hex>", …]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProvenLeaf {
    pub index: u64,
    #[serde(with = "hex_bytes")]
    pub leaf: Vec<u8>,
    pub inclusion: Vec<HexHash>,
}

impl ProvenLeaf {
    /// Checks that `leaf` is included at `index` under the checkpoint.
    pub fn check_inclusion(&self, cp: &SignedCheckpoint) -> Result<Hash, InclusionError> {
        let hash = leaf::leaf_hash(&self.leaf);
        check_inclusion_of(&hash, self.index, &self.inclusion, cp)?;
        Ok(hash)
    }
}

/// Checks that the leaf hash `hash` is at `index` under `cp` with `path`.
pub fn check_inclusion_of(
    hash: &Hash,
    index: u64,
    path: &[HexHash],
    cp: &SignedCheckpoint,
) -> Result<(), InclusionError> {
    let path: Vec<Hash> = path.iter().map(|h| h.0).collect();
    tlog::check_inclusion(
        &Sha256Hasher,
        LeafIndex(index),
        TreeSize(cp.size),
        hash,
        &path,
        &cp.root,
    )
}

/// A checkpoint with the genesis leaf and a map leaf checked against it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Anchor {
    pub checkpoint: SignedCheckpoint,
    pub genesis: GenesisLeaf,
    /// Index of the map leaf.
    pub map_index: u64,
    pub map: MapLeaf,
}

/// Why the checkpoint, genesis leaf and map leaf of a proof do not fit together.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AnchorError {
    #[error("the genesis leaf is leaf 0, not leaf {0}")]
    GenesisIndex(u64),
    #[error("genesis leaf: {0}")]
    Genesis(#[source] LeafError),
    #[error("genesis leaf inclusion: {0}")]
    GenesisInclusion(#[source] InclusionError),
    #[error("genesis leaf is for origin {genesis:?}, the checkpoint for {checkpoint:?}")]
    Origin { genesis: String, checkpoint: String },
    #[error("map leaf: {0}")]
    Map(#[source] LeafError),
    #[error("map leaf inclusion: {0}")]
    MapInclusion(#[source] InclusionError),
    #[error("map leaf time {time} is before the genesis time {genesis_time}")]
    MapBeforeGenesis { time: u64, genesis_time: u64 },
}

/// Checks `genesis` (leaf 0) and `map` (a map leaf) under the verified checkpoint `cp`.
pub fn check_anchor(
    cp: SignedCheckpoint,
    genesis: &ProvenLeaf,
    map: &ProvenLeaf,
) -> Result<Anchor, AnchorError> {
    if genesis.index != 0 {
        return Err(AnchorError::GenesisIndex(genesis.index));
    }
    let g = Leaf::decode_genesis(&genesis.leaf).map_err(AnchorError::Genesis)?;
    genesis
        .check_inclusion(&cp)
        .map_err(AnchorError::GenesisInclusion)?;
    if g.origin != cp.origin {
        return Err(AnchorError::Origin {
            genesis: g.origin,
            checkpoint: cp.origin.clone(),
        });
    }
    let m = Leaf::decode_map(&map.leaf).map_err(AnchorError::Map)?;
    map.check_inclusion(&cp)
        .map_err(AnchorError::MapInclusion)?;
    if m.time < g.genesis_time {
        return Err(AnchorError::MapBeforeGenesis {
            time: m.time,
            genesis_time: g.genesis_time,
        });
    }
    Ok(Anchor {
        checkpoint: cp,
        genesis: g,
        map_index: map.index,
        map: m,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{Log, T0};

    #[test]
    fn anchor_errors() {
        let (mut log, _) = Log::chain_of_two();
        let cp = log.checkpoint(T0 + 120_000);
        let (g, m) = (log.proven_leaf(0), log.proven_leaf(log.last_map()));
        let a = check_anchor(cp.clone(), &g, &m).unwrap();
        assert_eq!((a.map_index, a.map.time), (3, T0 + 120_000));
        assert_eq!(a.genesis.origin, cp.origin);

        let err = |g: &ProvenLeaf, m: &ProvenLeaf| check_anchor(cp.clone(), g, m).unwrap_err();
        assert_eq!(err(&m, &m), AnchorError::GenesisIndex(3));
        let mut bad = g.clone();
        bad.leaf[0] = 1;
        assert!(matches!(err(&bad, &m), AnchorError::Genesis(_)));
        let mut bad = g.clone();
        bad.inclusion[0].0[0] ^= 1;
        assert!(matches!(err(&bad, &m), AnchorError::GenesisInclusion(_)));
        // An event leaf shown as the map leaf.
        let e = log.proven_leaf(1);
        assert_eq!(
            err(&g, &e),
            AnchorError::Map(LeafError::WrongKind {
                want: "map",
                got: "event"
            })
        );
        let mut bad = m.clone();
        bad.index = 2;
        assert!(matches!(err(&g, &bad), AnchorError::MapInclusion(_)));
    }
}
