//! A tiny log for the core's unit tests: fixed keys, events signed by one person, entries in a
//! [`MemoryTree`] and a [`StateMap`], checkpoints signed by the log key. No I/O, no clock, no
//! randomness.

use ed25519_dalek::SigningKey;

use crate::entry::{Entry, Opening};
use crate::event::{ConsentEvent, SignedEvent};
use crate::hash::{Hash, HexHash};
use crate::map::{MapValue, StateMap};
use crate::note::{self, Checkpoint, SignedCheckpoint};
use crate::proof::{OpeningJson, ProvenEvent};
use crate::tlog::{prove_inclusion, Blake3Hasher, LeafIndex, MemoryTree};

/// The log's origin.
pub const ORIGIN: &str = "test.example/log";
/// The time of the first event; later ones are a minute apart.
pub const T0: u64 = 1_767_225_600_000;

/// A log with one person.
pub struct Log {
    pub key: SigningKey,
    pub person: SigningKey,
    pub tree: MemoryTree<Blake3Hasher>,
    pub map: StateMap,
    pub entries: Vec<(Entry, Opening)>,
}

impl Log {
    pub fn new() -> Self {
        Log {
            key: SigningKey::from_bytes(&[0x42; 32]),
            person: SigningKey::from_bytes(&[7; 32]),
            tree: MemoryTree::new(Blake3Hasher),
            map: StateMap::new(),
            entries: Vec::new(),
        }
    }

    /// The person's next event of ("example.com", "ai-training") after `head`, issued at `at`.
    pub fn event(&self, head: Option<&SignedEvent>, opt_in: bool, at: u64) -> SignedEvent {
        ConsentEvent::next(
            ORIGIN,
            self.person.verifying_key().to_bytes(),
            ("example.com", "ai-training"),
            opt_in,
            head.map(|h| (h.event.seq, h.event_hash())),
            at,
            None,
        )
        .sign(&self.person)
    }

    /// Appends `entry` (which may lie about its opening) and returns its index.
    pub fn append_entry(&mut self, entry: Entry, opening: Opening) -> u64 {
        let index = self.tree.push(&entry.to_bytes()).0;
        self.map.insert(
            entry.key,
            MapValue {
                index,
                leaf_hash: entry.leaf_hash(),
            },
        );
        self.entries.push((entry, opening));
        index
    }

    /// Appends `event`, integrated at its `issued_at` + 250 ms; returns its index.
    pub fn append(&mut self, event: SignedEvent) -> u64 {
        let at = event.event.issued_at + 250;
        let opening = Opening {
            nonce: [self.entries.len() as u8; 32],
            event,
        };
        self.append_entry(opening.entry(at), opening)
    }

    /// A log of one chain: an opt-in issued at `T0`, then an opt-out a minute later (each
    /// integrated 250 ms after it was issued). Returns it with the chain's state key.
    pub fn chain_of_two() -> (Log, Hash) {
        let mut log = Log::new();
        let first = log.event(None, true, T0);
        let second = log.event(Some(&first), false, T0 + 60_000);
        let key = first.event.state_key();
        log.append(first);
        log.append(second);
        (log, key)
    }

    /// The checkpoint of the whole log at `time`, signed and opened again.
    pub fn checkpoint(&self, time: u64) -> SignedCheckpoint {
        let text = Checkpoint {
            origin: ORIGIN,
            size: self.tree.size().0,
            root: self.tree.root(),
            map_root: self.map.root(),
            time,
        }
        .sign(&self.key);
        note::open(&text, &self.key.verifying_key()).expect("a checkpoint we signed opens")
    }

    /// Entry `index` with its opening and its inclusion proof in the whole log.
    pub fn proven(&self, index: u64) -> ProvenEvent {
        let (entry, opening) = &self.entries[index as usize];
        let path = prove_inclusion(
            &Blake3Hasher,
            &self.tree,
            LeafIndex(index),
            self.tree.size(),
        )
        .expect("stored");
        ProvenEvent {
            index,
            entry: entry.to_bytes().to_vec(),
            opening: OpeningJson::from(opening),
            inclusion: path.into_iter().map(HexHash).collect(),
        }
    }
}
