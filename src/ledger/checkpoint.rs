//! Map leaves and checkpoints: a map leaf carries the time and the state map's root over every
//! event leaf before it (docs/FORMAT.md §3), and each one is followed at once by a checkpoint
//! of the tree that ends with it, signed, stored and then published to readers.

use std::sync::Arc;

use super::error::Invalid;
use super::schema::{self, index_key, node_key};
use super::{Ledger, LedgerError, Snapshot};
use crate::core::leaf::{Leaf, MapLeaf, LEAF_VERSION};
use crate::core::note::{Checkpoint, SignedCheckpoint};
use crate::core::tlog::Sha256Hasher;
use crate::store::{Table, WriteBatch};

/// The least time between two map leaves.
pub const MAP_LEAF_INTERVAL_MS: u64 = 1_000;

impl Ledger {
    /// Appends a map leaf (the time and the current state map's root) and stores the signed
    /// checkpoint of the tree that ends with it, as one atomic, synced batch; then publishes
    /// both. Map leaves are at least [`MAP_LEAF_INTERVAL_MS`] apart (or the interval the
    /// ledger was opened with): sooner than that this is refused with
    /// [`Invalid::MapLeafTooSoon`]. Only durable data is covered: appends
    /// commit before they update the in-memory state this reads.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let mut st = self.state.lock().expect("state");
        self.recover(&mut st)?;
        // Never before a time already handed out, and never in the same millisecond as the
        // previous map leaf.
        let time = self.clock.now_ms().max(st.last_time);
        let earliest = st.last_map_time.saturating_add(self.map_leaf_interval_ms);
        if st.cp_count > 0 && time < earliest {
            return Err(Invalid::MapLeafTooSoon {
                retry_after_ms: earliest - time,
            }
            .into());
        }
        let map_leaf = MapLeaf {
            version: LEAF_VERSION,
            time,
            map_root: st.map.root(),
        };
        let bytes = Leaf::Map(map_leaf).to_bytes();
        let index = st.frontier.size().0;
        let mut frontier = st.frontier.clone();
        let mut b = WriteBatch::new();
        let mut new_nodes = Vec::new();
        frontier.append_with(
            &Sha256Hasher,
            crate::core::leaf::leaf_hash(&bytes),
            |level, i, node| {
                if level > 0 {
                    b.put(Table::Node, node_key(level, i), *node);
                    new_nodes.push((level, i, *node));
                }
            },
        );
        b.put(Table::Leaf, index_key(index), bytes.clone());
        b.put(Table::Meta, schema::SIZE, schema::size_value(index + 1));
        let body = Checkpoint {
            origin: &self.origin,
            size: index + 1,
            root: frontier.root(&Sha256Hasher),
        };
        let text = body.sign(&self.key);
        b.put(Table::Checkpoint, index_key(st.cp_count), text.as_bytes());
        self.commit(b)?;
        self.upper.extend(&new_nodes);
        st.frontier = frontier;
        st.cp_count += 1;
        st.last_map_time = time;
        st.last_time = time;
        let cp = SignedCheckpoint {
            origin: self.origin.clone(),
            size: body.size,
            root: body.root,
            note: text,
        };
        // Published only now that it is durable.
        *self.latest.write().expect("latest") = Arc::new(Snapshot {
            checkpoint: cp.clone(),
            map_index: index,
            map_leaf,
            map: st.map.clone(),
            anchor: Default::default(),
            edge: Default::default(),
            buckets: Default::default(),
            verified: Default::default(),
            published: st.cp_count,
        });
        Ok(cp)
    }

    /// A stored checkpoint that covers every leaf: the latest if nothing came after it, else
    /// a new map leaf's, waiting (once) for the interval since the last one.
    pub fn checkpoint_all(&self) -> Result<SignedCheckpoint, LedgerError> {
        let latest = self.latest();
        if !latest.checkpoint.note.is_empty() && self.size() == latest.checkpoint.size {
            return Ok(latest.checkpoint.clone());
        }
        self.checkpoint_waiting()
    }

    /// [`Ledger::checkpoint`], waiting (once, on the real clock) for the interval since the
    /// last map leaf when it is not over yet.
    pub fn checkpoint_waiting(&self) -> Result<SignedCheckpoint, LedgerError> {
        match self.checkpoint() {
            Err(LedgerError::Invalid(Invalid::MapLeafTooSoon { retry_after_ms })) => {
                std::thread::sleep(std::time::Duration::from_millis(retry_after_ms));
                self.checkpoint()
            }
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{first_events, ledger, T0};
    use super::*;
    use crate::core::note;

    #[test]
    fn map_leaf_times_follow_the_manual_clock_and_never_go_back() {
        let t = ledger();
        let l = &t.ledger;
        assert_eq!(l.latest().map_leaf.time, T0);
        t.clock.advance(60_000);
        l.checkpoint().unwrap();
        assert_eq!(l.latest().map_leaf.time, T0 + 60_000);
        // Within a second of the last one: refused, with how long to wait.
        t.clock.advance(400);
        assert!(matches!(
            l.checkpoint(),
            Err(LedgerError::Invalid(Invalid::MapLeafTooSoon {
                retry_after_ms: 600
            }))
        ));
        // An event leaf after the map leaf is strictly later, and so is the next map leaf.
        t.clock.set(T0 + 60_000);
        let r = t.accept(first_events(1, T0 + 60_000));
        assert_eq!(r[0].leaf.integrated_at, T0 + 60_001);
        t.clock.set(T0 + 61_000);
        l.checkpoint().unwrap();
        assert_eq!(l.latest().map_leaf.time, T0 + 61_000);
    }

    #[test]
    fn a_checkpoint_ends_with_a_map_leaf_and_is_stored_signed_and_published() {
        let t = ledger();
        let l = &t.ledger;
        t.accept(first_events(3, T0));
        t.clock.advance(1_000);
        let cp = l.checkpoint().unwrap();
        // Genesis, the first map leaf, three events, this map leaf.
        assert_eq!((cp.size, cp.root), (6, l.root_at(6).unwrap()));
        let notes = l.checkpoints().unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[1], cp.note);
        assert_eq!(note::open(&cp.note, &l.public_key()).unwrap(), cp);
        let latest = l.latest();
        assert_eq!((latest.published, &latest.checkpoint), (2, &cp));
        assert_eq!(latest.map_index, 5);
        assert_eq!(latest.map.root(), latest.map_leaf.map_root);
        assert!(matches!(l.leaf(5).unwrap(), Some(Leaf::Map(m)) if m == latest.map_leaf));
        assert_eq!(l.checkpoint_range(0, 10).unwrap().len(), 2);
    }

    #[test]
    fn a_failed_checkpoint_publishes_nothing() {
        let t = ledger();
        let l = &t.ledger;
        let before = l.latest();
        t.break_commits();
        t.clock.advance(1_000);
        assert!(l.checkpoint().is_err());
        let after = l.latest();
        assert_eq!(after.checkpoint, before.checkpoint);
        assert_eq!(after.published, before.published);
    }
}
