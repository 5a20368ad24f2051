//! A tiny log for the core's unit tests: fixed keys, events signed by one person, leaves in a
//! [`MemoryTree`] (genesis at 0, then events and map leaves), a [`StateMap`], checkpoints
//! signed by the log key. No I/O, no clock, no randomness.

use std::collections::HashMap;

use ed25519_dalek::SigningKey;

use crate::event::{ConsentEvent, SignedEvent};
use crate::hash::{Hash, HexHash};
use crate::leaf::{EventLeaf, GenesisLeaf, Leaf, MapLeaf, LEAF_VERSION};
use crate::map::{MapValue, StateMap};
use crate::note::{self, Checkpoint, SignedCheckpoint};
use crate::opening::Opening;
use crate::proof::anchor::{check_anchor, Anchor, ProvenLeaf};
use crate::proof::{OpeningJson, ProvenEvent};
use crate::tlog::{prove_inclusion, LeafIndex, MemoryTree, Sha256Hasher};
use crate::vrf::{VrfProof, VrfSecretKey};

/// The log's origin.
pub const ORIGIN: &str = "test.example/log";
/// The time of the first event; later ones are a minute apart.
pub const T0: u64 = 1_767_225_600_000;
/// The log's genesis time: a minute before the first event.
pub const GENESIS_TIME: u64 = T0 - 60_000;

/// A log with one person.
pub struct Log {
    pub key: SigningKey,
    /// The log's VRF key (its public half is in the genesis leaf).
    pub vrf: VrfSecretKey,
    pub person: SigningKey,
    pub tree: MemoryTree<Sha256Hasher>,
    pub map: StateMap,
    pub leaves: Vec<Leaf>,
    pub openings: HashMap<u64, Opening>,
    /// Every key's latest event leaf.
    pub heads: HashMap<Hash, u64>,
}

impl Log {
    /// A log holding only its genesis leaf.
    pub fn new() -> Self {
        let vrf = VrfSecretKey::from_random(&[0x24; 64]);
        let vrf_key = vrf.public_key().to_bytes();
        let mut log = Log {
            key: SigningKey::from_bytes(&[0x42; 32]),
            vrf,
            person: SigningKey::from_bytes(&[7; 32]),
            tree: MemoryTree::new(Sha256Hasher),
            map: StateMap::new(),
            leaves: Vec::new(),
            openings: HashMap::new(),
            heads: HashMap::new(),
        };
        log.push(Leaf::Genesis(GenesisLeaf {
            version: LEAF_VERSION,
            origin: ORIGIN.into(),
            vrf_key,
            genesis_time: GENESIS_TIME,
            witness_policy: None,
        }));
        log
    }

    /// Appends any leaf as it is; returns its index.
    pub fn push(&mut self, leaf: Leaf) -> u64 {
        let index = self.tree.push(&leaf.to_bytes()).0;
        self.leaves.push(leaf);
        index
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

    /// Appends an event leaf (which may lie about its opening), updates the map and the
    /// key's head, and returns its index.
    pub fn append_leaf(&mut self, leaf: EventLeaf, opening: Opening) -> u64 {
        let index = self.push(Leaf::Event(leaf));
        self.map.insert(
            leaf.key,
            MapValue {
                index,
                leaf_hash: leaf.leaf_hash(),
            },
        );
        self.heads.insert(leaf.key, index);
        self.openings.insert(index, opening);
        index
    }

    /// The state key of `event`'s triple under this log's VRF key, and its proof.
    pub fn key_of(&self, event: &SignedEvent) -> (Hash, VrfProof) {
        self.vrf.prove_state_key(&event.event.state_key_input())
    }

    /// The state key of the person's ("example.com", "ai-training") and its proof.
    pub fn person_key(&self) -> (Hash, VrfProof) {
        let subject = self.person.verifying_key().to_bytes();
        self.vrf.prove_state_key(&crate::vrf::StateKeyInput {
            origin: ORIGIN,
            subject: &subject,
            controller: "example.com",
            purpose: "ai-training",
        })
    }

    /// An opening of `event` with `nonce` and the VRF proof of its key.
    pub fn opening(&self, nonce: [u8; 32], event: SignedEvent) -> Opening {
        let vrf = self.key_of(&event).1;
        Opening { nonce, vrf, event }
    }

    /// The event leaf an honest log writes for `opening` at `integrated_at`.
    pub fn leaf_for(&self, opening: &Opening, integrated_at: u64) -> EventLeaf {
        let key = self.key_of(&opening.event).0;
        opening.leaf(integrated_at, key, self.heads.get(&key).copied())
    }

    /// Appends `event`, integrated at its `issued_at` + 250 ms; returns its index.
    pub fn append(&mut self, event: SignedEvent) -> u64 {
        let at = event.event.issued_at + 250;
        let opening = self.opening([self.leaves.len() as u8; 32], event);
        let leaf = self.leaf_for(&opening, at);
        self.append_leaf(leaf, opening)
    }

    /// A log of one chain: an opt-in issued at `T0`, then an opt-out a minute later (each
    /// integrated 250 ms after it was issued; leaves 1 and 2). Returns it with the chain's
    /// state key.
    pub fn chain_of_two() -> (Log, Hash) {
        let mut log = Log::new();
        let first = log.event(None, true, T0);
        let second = log.event(Some(&first), false, T0 + 60_000);
        let key = log.key_of(&first).0;
        log.append(first);
        log.append(second);
        (log, key)
    }

    /// Appends a map leaf at `time` with the current map, then signs the checkpoint of the
    /// whole log and opens it again.
    pub fn checkpoint(&mut self, time: u64) -> SignedCheckpoint {
        self.push(Leaf::Map(MapLeaf {
            version: LEAF_VERSION,
            time,
            map_root: self.map.root(),
        }));
        self.sign()
    }

    /// The checkpoint of the whole log as it is, signed and opened again.
    pub fn sign(&self) -> SignedCheckpoint {
        let text = Checkpoint {
            origin: ORIGIN,
            size: self.tree.size().0,
            root: self.tree.root(),
        }
        .sign(&self.key);
        note::open(&text, &self.key.verifying_key()).expect("a checkpoint we signed opens")
    }

    /// The index of the latest map leaf.
    pub fn last_map(&self) -> u64 {
        self.leaves
            .iter()
            .rposition(|l| matches!(l, Leaf::Map(_)))
            .expect("a map leaf") as u64
    }

    fn inclusion(&self, index: u64) -> Vec<HexHash> {
        prove_inclusion(
            &Sha256Hasher,
            &self.tree,
            LeafIndex(index),
            self.tree.size(),
        )
        .expect("stored")
        .into_iter()
        .map(HexHash)
        .collect()
    }

    /// Leaf `index` with its inclusion proof in the whole log.
    pub fn proven_leaf(&self, index: u64) -> ProvenLeaf {
        ProvenLeaf {
            index,
            leaf: self.leaves[index as usize].to_bytes(),
            inclusion: self.inclusion(index),
        }
    }

    /// Event leaf `index` with its opening and its inclusion proof in the whole log.
    pub fn proven(&self, index: u64) -> ProvenEvent {
        ProvenEvent {
            index,
            leaf: self.leaves[index as usize].to_bytes(),
            opening: OpeningJson::from(&self.openings[&index]),
            inclusion: self.inclusion(index),
        }
    }

    /// The log's public key.
    pub fn public(&self) -> ed25519_dalek::VerifyingKey {
        self.key.verifying_key()
    }

    /// The receipt of event leaf `index` under the checkpoint of the whole log as it is.
    pub fn receipt(&self, index: u64) -> crate::receipt::Receipt {
        let Leaf::Event(leaf) = self.leaves[index as usize] else {
            panic!("leaf {index} is not an event leaf");
        };
        let path = |i| self.inclusion(i).into_iter().map(|h| h.0).collect();
        crate::receipt::Receipt {
            index,
            leaf,
            opening: self.openings[&index].clone(),
            inclusion: path(index),
            anchor: std::sync::Arc::new(crate::receipt::ReceiptAnchor {
                checkpoint: self.sign().note,
                genesis: self.leaves[0].to_bytes(),
                genesis_inclusion: path(0),
            }),
        }
    }

    /// [`Log::chain_of_two`] and the receipts of its two events (leaves 1 and 2).
    pub fn with_receipts() -> (Log, Vec<crate::receipt::Receipt>) {
        let (log, _) = Log::chain_of_two();
        let receipts = vec![log.receipt(1), log.receipt(2)];
        (log, receipts)
    }

    /// The whole log's checkpoint with the genesis leaf and the latest map leaf, checked.
    pub fn anchor(&self) -> Anchor {
        check_anchor(
            self.sign(),
            &self.proven_leaf(0),
            &self.proven_leaf(self.last_map()),
        )
        .expect("an honest anchor")
    }
}
