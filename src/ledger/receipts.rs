//! Receipts (docs/FORMAT.md §12): after a chunk is durable, the ledger signs one checkpoint of
//! the tree as it then is and hands every event of the chunk a C2SP tlog-proof under it. The
//! chunk's own leaves and nodes, and the frontier before it, are in memory, so an inclusion
//! proof costs no read. Receipt checkpoints are not stored: the stored (heartbeat) checkpoints
//! end at map leaves and are what witnesses see.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::hash::Hash;
use crate::core::leaf::{EventLeaf, Leaf};
use crate::core::note::Checkpoint;
use crate::core::opening::Opening;
use crate::core::receipt::{Receipt, ReceiptAnchor};
use crate::core::tlog::{self, Frontier, HashReader, LeafIndex, Sha256Hasher, TreeSize};

use super::error::{Invalid, Key};
use super::nodes::{CachedNodes, NodeError, UPPER_LEVEL};
use super::prove::prove_error;
use super::{Ledger, LedgerError};
use crate::store::Table;

/// The nodes a chunk's receipts need that may not be readable cheaply: the chunk's leaf hashes,
/// its nodes below [`UPPER_LEVEL`] and those of the frontier before it (the upper levels are in
/// memory already). Shared by the threads that build the receipts.
pub(super) struct LowNodes(HashMap<(u8, u64), Hash>);

impl LowNodes {
    /// `before` is the frontier before the chunk's first leaf `base`; `leaves` the chunk's leaf
    /// hashes in order; `nodes` the nodes (level ≥ 1) its appends completed.
    pub(super) fn new(
        before: &Frontier,
        base: u64,
        leaves: impl Iterator<Item = Hash>,
        nodes: &[(u8, u64, Hash)],
    ) -> Self {
        let mut low = HashMap::new();
        for (i, h) in leaves.enumerate() {
            low.insert((0, base + i as u64), h);
        }
        let low_nodes = before.subtrees().chain(nodes.iter().copied());
        for (level, index, h) in low_nodes.filter(|n| n.0 < UPPER_LEVEL) {
            low.insert((level, index), h);
        }
        LowNodes(low)
    }

    /// No nodes: every read goes to the ledger's reader.
    pub(super) fn none() -> Self {
        LowNodes(HashMap::new())
    }
}

/// [`LowNodes`] first, then the ledger's reader (memory for the upper levels, else the store).
pub(super) struct ChunkNodes<'a> {
    pub low: &'a LowNodes,
    pub rest: CachedNodes<'a>,
}

impl HashReader for ChunkNodes<'_> {
    type Error = NodeError;
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, NodeError> {
        match self.low.0.get(&(level, index)) {
            Some(h) => Ok(*h),
            None => self.rest.read_node(level, index),
        }
    }
}

/// The inclusion path of leaf `index` in the tree of `size` leaves, through `edge` when it is
/// that tree's right edge (its incomplete subtrees hashed once for a chunk's receipts).
fn prove(
    nodes: &impl HashReader<Error = NodeError>,
    edge: Option<&tlog::RightEdge>,
    index: u64,
    size: u64,
) -> Result<Vec<Hash>, LedgerError> {
    match edge {
        Some(e) if e.size() == TreeSize(size) => {
            e.prove_inclusion(&Sha256Hasher, nodes, LeafIndex(index))
        }
        _ => tlog::prove_inclusion(&Sha256Hasher, nodes, LeafIndex(index), TreeSize(size)),
    }
    .map_err(prove_error)
}

impl Ledger {
    /// The checkpoint of the tree of `size` leaves with root `root`, signed now (or the one
    /// signed last, if it is for the same size), with the genesis leaf's inclusion under it.
    /// Call only once the tree of `size` leaves is durable.
    pub(super) fn receipt_anchor(
        &self,
        size: u64,
        root: Hash,
        nodes: &impl HashReader<Error = NodeError>,
        edge: Option<&tlog::RightEdge>,
    ) -> Result<Arc<ReceiptAnchor>, LedgerError> {
        let mut last = self.receipt_anchor.lock().expect("receipt anchor");
        if let Some((s, a)) = last.as_ref() {
            if *s == size {
                return Ok(a.clone());
            }
        }
        let genesis_inclusion = prove(nodes, edge, 0, size)?;
        let checkpoint = Checkpoint {
            origin: &self.origin,
            size,
            root,
        }
        .sign(&self.key);
        let anchor = Arc::new(ReceiptAnchor {
            checkpoint,
            genesis: self.genesis.to_bytes(),
            genesis_inclusion,
        });
        *last = Some((size, anchor.clone()));
        Ok(anchor)
    }

    /// The receipt of event leaf `index` (`leaf`, opened by `opening`) under `anchor`, whose
    /// tree `nodes` reads.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn receipt_in(
        &self,
        anchor: &Arc<ReceiptAnchor>,
        size: u64,
        nodes: &impl HashReader<Error = NodeError>,
        edge: Option<&tlog::RightEdge>,
        index: u64,
        leaf: EventLeaf,
        opening: Opening,
    ) -> Result<Receipt, LedgerError> {
        let inclusion = prove(nodes, edge, index, size)?;
        Ok(Receipt {
            index,
            leaf,
            opening,
            inclusion,
            anchor: anchor.clone(),
        })
    }

    /// The receipt of a stored event leaf under `anchor` (a tree of `size` leaves, stored).
    pub(super) fn stored_receipt(
        &self,
        anchor: &Arc<ReceiptAnchor>,
        size: u64,
        index: u64,
    ) -> Result<Receipt, LedgerError> {
        let leaf = self
            .event_leaf(index)?
            .ok_or_else(|| LedgerError::missing(Table::Leaf, Key::Index(index)))?;
        let opening = self
            .opening(index)?
            .ok_or_else(|| LedgerError::missing(Table::Opening, Key::Index(index)))?;
        let store = self.store();
        let nodes = self.nodes(&*store);
        self.receipt_in(anchor, size, &nodes, None, index, leaf, opening)
    }

    /// A receipt for the event leaf at `index` under a checkpoint of the tree as it is now.
    pub fn receipt(&self, index: u64) -> Result<Receipt, LedgerError> {
        let (size, root) = {
            let st = self.state.lock().expect("state");
            (st.frontier.size().0, st.frontier.root(&Sha256Hasher))
        };
        let store = self.store();
        let anchor = self.receipt_anchor(size, root, &self.nodes(&*store), None)?;
        self.stored_receipt(&anchor, size, index)
    }

    /// The **witnessed receipt** of the entry `given` is a receipt of (docs/FORMAT.md §7):
    /// the same leaf and opening, proven under the newest cosigned checkpoint that covers it,
    /// the cosigned note being the checkpoint (the log's signature line and the witnesses'
    /// cosignature lines): the newest that met the server's policy ([`Ledger::set_witnessed`]),
    /// or, while none has met it, the newest cosigned at all. `given` must be this log's leaf at its index with its stored
    /// opening, byte for byte (so nothing is handed out that its holder did not hold: the
    /// opening names a person); its signatures are not checked here.
    pub fn witnessed_receipt(&self, given: &Receipt) -> Result<Receipt, LedgerError> {
        let index = given.index;
        // The client names the index: another kind of leaf there is not its entry (not damage).
        let ours = index > 0
            && index < self.size()
            && matches!(self.leaf(index)?, Some(Leaf::Event(e)) if e == given.leaf)
            && self
                .opening(index)?
                .is_some_and(|o| o.to_bytes() == given.opening.to_bytes());
        if !ours {
            return Err(Invalid::NotOurReceipt { index }.into());
        }
        let z = self.sizes()?;
        let size = match (z.witnessed, z.cosigned) {
            (Some(w), _) if w > index => w,
            (None, Some(c)) if c > index => c,
            (w, c) => {
                return Err(Invalid::NotCosigned {
                    index,
                    cosigned: w.or(c),
                }
                .into())
            }
        };
        let note = self.cosigned(size)?.ok_or(Invalid::NotCosigned {
            index,
            cosigned: None,
        })?;
        let path = |i| -> Result<Vec<Hash>, LedgerError> {
            Ok(self
                .prove_inclusion(i, Some(size))?
                .path
                .into_iter()
                .map(|h| h.0)
                .collect())
        };
        let anchor = Arc::new(ReceiptAnchor {
            checkpoint: note,
            genesis: self.genesis.to_bytes(),
            genesis_inclusion: path(0)?,
        });
        Ok(Receipt {
            index,
            leaf: given.leaf,
            opening: given.opening.clone(),
            inclusion: path(index)?,
            anchor,
        })
    }
}
