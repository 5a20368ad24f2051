//! Checkpoints: the signed tree head and map root, stored and then published to readers.

use std::sync::Arc;

use super::schema::index_key;
use super::{Ledger, LedgerError, Snapshot};
use crate::core::note::{Checkpoint, SignedCheckpoint};
use crate::core::tlog::Blake3Hasher;
use crate::store::{Table, WriteBatch};

impl Ledger {
    /// Signs and stores a checkpoint of the current tree and map (also when nothing changed,
    /// with a new time). Only durable data is covered: appends commit before they update the
    /// in-memory state this reads.
    pub fn checkpoint(&self) -> Result<SignedCheckpoint, LedgerError> {
        let mut st = self.state.lock().expect("state");
        self.recover(&mut st)?;
        // Never before a time already handed out.
        let time = self.clock.now_ms().max(st.last_time).max(st.last_cp_time);
        let body = Checkpoint {
            origin: &self.origin,
            size: st.frontier.size().0,
            root: st.frontier.root(&Blake3Hasher),
            map_root: st.map.root(),
            time,
        };
        let text = body.sign(&self.key);
        let mut b = WriteBatch::new();
        b.put(Table::Checkpoint, index_key(st.cp_count), text.as_bytes());
        self.commit(b)?;
        st.cp_count += 1;
        st.last_cp_time = time;
        st.last_time = time;
        let cp = SignedCheckpoint {
            origin: self.origin.clone(),
            size: body.size,
            root: body.root,
            map_root: body.map_root,
            time,
            note: text,
        };
        // Published only now that it is durable.
        *self.latest.write().expect("latest") = Arc::new(Snapshot {
            checkpoint: cp.clone(),
            map: st.map.clone(),
            published: st.cp_count,
        });
        Ok(cp)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{first_events, ledger, T0};
    use crate::core::note;

    #[test]
    fn checkpoint_times_follow_the_manual_clock_and_never_go_back() {
        let t = ledger();
        let l = &t.ledger;
        assert_eq!(l.latest().checkpoint.time, T0);
        t.clock.advance(60_000);
        let cp = l.checkpoint().unwrap();
        assert_eq!(cp.time, T0 + 60_000);
        // The clock set back: the checkpoint keeps the latest time handed out.
        t.clock.set(T0 - 1_000);
        assert_eq!(l.checkpoint().unwrap().time, T0 + 60_000);
        // An entry integrated after the checkpoint is later still, and so is the next one.
        let r = t.accept(first_events(1, T0));
        assert_eq!(r[0].integrated_at, T0 + 60_001);
        assert_eq!(l.checkpoint().unwrap().time, T0 + 60_001);
    }

    #[test]
    fn a_checkpoint_is_stored_signed_and_published() {
        let t = ledger();
        let l = &t.ledger;
        t.accept(first_events(3, T0));
        let cp = l.checkpoint().unwrap();
        assert_eq!((cp.size, cp.root), (3, l.root_at(3).unwrap()));
        let notes = l.checkpoints().unwrap();
        assert_eq!(notes.len(), 2);
        assert_eq!(notes[1], cp.note);
        assert_eq!(note::open(&cp.note, &l.public_key()).unwrap(), cp);
        let latest = l.latest();
        assert_eq!((latest.published, &latest.checkpoint), (2, &cp));
        assert_eq!(latest.map.root(), cp.map_root);
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
