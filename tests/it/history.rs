//! A person's history: built by a real ledger it verifies; removing, reordering or altering
//! anything in it (its events, map proofs, genesis leaf, map leaf or checkpoint) makes
//! `history::check` fail. Events after the history's map leaf are shown, checked and reported
//! as not yet proven complete.

use consentlog::core::hash::{to_hex, HexHash};
use consentlog::core::history::{check, ChainError, CheckedHistory, History, HistoryError};
use consentlog::core::map::{MapProof, EMPTY};
use consentlog::core::note;
use consentlog::core::proof::{AnchorError, ProvenEvent, ProvenLeaf};

use consentlog::ledger::Ledger;

use crate::support::ledger::*;
use crate::support::*;

struct Fixture {
    l: TestLedger,
    alice: Person,
    bob: Person,
    h: History,
    /// Per (controller, purpose): the appended events in order.
    chains: Vec<(&'static str, &'static str, Vec<Appended>)>,
}

fn fixture() -> Fixture {
    let l = TestLedger::new();
    add_noise(&l, 5);
    let alice = Person::new();
    let bob = Person::new();
    let specs: [(&str, &str, &[bool]); 3] = [
        ("shop.example", "newsletter", &[true, false, true]),
        ("shop.example", "analytics", &[true]),
        ("bank.example", "marketing", &[false, true]),
    ];
    let mut chains: Vec<(&'static str, &'static str, Vec<Appended>)> =
        specs.iter().map(|(c, p, _)| (*c, *p, Vec::new())).collect();
    // Interleave the chains, and bob's events, in the log.
    for step in 0..3 {
        for (n, (c, p, decisions)) in specs.iter().enumerate() {
            if let Some(&d) = decisions.get(step) {
                chains[n].2.push(append(&l, &alice, c, p, d, None));
                append(&l, &bob, c, p, !d, None);
            }
        }
        add_noise(&l, 2);
    }
    l.wait_past(l.now_ms());
    let h = l.history(&alice.subject()).unwrap();
    Fixture {
        l,
        alice,
        bob,
        h,
        chains,
    }
}

fn verify(f: &Fixture, h: &History) -> Result<(), HistoryError> {
    check(h, &f.l.public_key(), Some(&f.alice.subject())).map(|_| ())
}

/// The chain of `checked` for (controller, purpose).
fn chain<'a>(
    checked: &'a CheckedHistory,
    c: &str,
    p: &str,
) -> &'a consentlog::core::history::CheckedChain {
    checked
        .chains
        .iter()
        .find(|ch| ch.controller == c && ch.purpose == p)
        .unwrap_or_else(|| panic!("chain {c}/{p} missing"))
}

#[test]
fn history_with_several_chains_verifies() {
    let f = fixture();
    let checked = check(&f.h, &f.l.public_key(), Some(&f.alice.subject())).unwrap();
    check(&f.h, &f.l.public_key(), None).unwrap();
    assert_eq!(checked.chains.len(), 3);
    let snap = f.l.latest();
    assert_eq!(checked.anchor.checkpoint.note, f.h.checkpoint);
    assert_eq!(checked.anchor.checkpoint, snap.checkpoint);
    assert_eq!(
        (checked.anchor.map_index, checked.anchor.map),
        (snap.map_index, snap.map_leaf)
    );
    assert_eq!(checked.anchor.genesis, *f.l.genesis());
    assert_eq!(checked.anchor.genesis.origin, ORIGIN);
    for (c, p, appended) in &f.chains {
        let ch = chain(&checked, c, p);
        let evs = &ch.events;
        assert_eq!(evs.len(), appended.len(), "{c}/{p}");
        assert_eq!(
            ch.proven,
            evs.len(),
            "{c}/{p}: every event is before the map leaf"
        );
        for (i, (got, want)) in evs.iter().zip(appended).enumerate() {
            assert_eq!(got.event, want.event, "{c}/{p} event {i}");
            assert_eq!(got.index, want.receipt.index);
            assert!(got.index < checked.anchor.map_index);
            assert_eq!(got.leaf_hash, want.receipt.leaf.leaf_hash());
            assert_eq!(got.leaf.integrated_at, want.integrated_at());
            assert_eq!(got.event.event.seq, i as u64);
            assert_eq!(got.leaf.seq, i as u64);
            // The public leaf links the chain: each names the index of the one before it.
            let prev = i.checked_sub(1).map(|j| appended[j].receipt.index);
            assert_eq!(got.leaf.prev, prev, "{c}/{p} event {i}");
        }
    }
    // JSON round trip.
    let back: History = serde_json::from_str(&serde_json::to_string(&f.h).unwrap()).unwrap();
    assert_eq!(back, f.h);
    verify(&f, &back).unwrap();

    // Bob's history verifies too and holds only his events.
    let hb = f.l.history(&f.bob.subject()).unwrap();
    let cb = check(&hb, &f.l.public_key(), Some(&f.bob.subject())).unwrap();
    assert_eq!(cb.chains.len(), 3);
    assert!(cb
        .chains
        .iter()
        .flat_map(|ch| &ch.events)
        .all(|e| e.event.event.subject == f.bob.subject()));

    // Someone without events: an empty history.
    let nobody = Person::new();
    let hn = f.l.history(&nobody.subject()).unwrap();
    assert!(hn.chains.is_empty());
    check(&hn, &f.l.public_key(), Some(&nobody.subject())).unwrap();
}

#[test]
fn history_of_another_subject_fails() {
    let f = fixture();
    for other in [f.bob.subject(), Person::new().subject(), [0; 32]] {
        let e = check(&f.h, &f.l.public_key(), Some(&other)).unwrap_err();
        assert!(matches!(e, HistoryError::Subject { .. }), "{e}");
    }
    // The subject field changed to bob's: the events are alice's.
    let mut h = f.h.clone();
    h.subject = f.bob.subject();
    assert!(check(&h, &f.l.public_key(), Some(&f.bob.subject())).is_err());
    assert!(check(&h, &f.l.public_key(), None).is_err());
    // Bob's chains under alice's subject.
    let mut h = f.l.history(&f.bob.subject()).unwrap();
    h.subject = f.alice.subject();
    assert!(verify(&f, &h).is_err());
}

/// The chain with at least `min` events.
fn long_chain(h: &History, min: usize) -> usize {
    h.chains.iter().position(|c| c.events.len() >= min).unwrap()
}

#[test]
fn removing_or_reordering_events_fails() {
    let f = fixture();
    let n = long_chain(&f.h, 3);
    let len = f.h.chains[n].events.len();
    let mut variants: Vec<(String, History)> = Vec::new();
    for i in 0..len {
        let mut h = f.h.clone();
        h.chains[n].events.remove(i);
        variants.push((format!("event {i} of {len} removed"), h));
    }
    for i in 0..len {
        for j in i + 1..len {
            let mut h = f.h.clone();
            h.chains[n].events.swap(i, j);
            variants.push((format!("events {i} and {j} swapped"), h));
        }
    }
    let mut h = f.h.clone();
    h.chains[n].events.reverse();
    variants.push(("events reversed".into(), h));
    let mut h = f.h.clone();
    h.chains[n].events.clear();
    variants.push(("all events removed".into(), h));
    let mut h = f.h.clone();
    let last = h.chains[n].events[len - 1].clone();
    h.chains[n].events.push(last);
    variants.push(("last event repeated".into(), h));
    let mut h = f.h.clone();
    let first = h.chains[n].events[0].clone();
    h.chains[n].events.insert(1, first);
    variants.push(("first event repeated".into(), h));
    // An event of another chain moved in.
    let other = (n + 1) % f.h.chains.len();
    let mut h = f.h.clone();
    let ev = h.chains[other].events[0].clone();
    h.chains[n].events.push(ev);
    variants.push(("another chain's event appended".into(), h));
    // A chain repeated.
    let mut h = f.h.clone();
    h.chains.push(h.chains[n].clone());
    variants.push(("chain repeated".into(), h));
    // Chains' names swapped.
    let mut h = f.h.clone();
    let (c0, p0) = (h.chains[0].controller.clone(), h.chains[0].purpose.clone());
    h.chains[0].controller = h.chains[1].controller.clone();
    h.chains[0].purpose = h.chains[1].purpose.clone();
    h.chains[1].controller = c0;
    h.chains[1].purpose = p0;
    variants.push(("chain names swapped".into(), h));
    let mut h = f.h.clone();
    h.format = "consentlog-history/v1".into();
    variants.push(("format".into(), h));

    for (what, h) in variants {
        assert!(verify(&f, &h).is_err(), "{what} still verifies");
    }
}

#[test]
fn dropping_or_replacing_the_map_proof_fails() {
    let f = fixture();
    let snap = f.l.latest();
    assert_eq!(snap.checkpoint.note, f.h.checkpoint);
    for n in 0..f.h.chains.len() {
        let mut maps: Vec<(String, MapProof)> = vec![
            (
                "empty proof (absence in an empty map)".into(),
                MapProof {
                    leaf: None,
                    siblings: vec![],
                },
            ),
            (
                "absence proof of another purpose".into(),
                f.l.prove_key(&snap, &f.alice.state_key(&f.l, "shop.example", "never"))
                    .unwrap(),
            ),
        ];
        for m in 0..f.h.chains.len() {
            if m != n {
                maps.push((format!("chain {m}'s map"), f.h.chains[m].map.clone()));
            }
        }
        let mut with_extra = f.h.chains[n].map.clone();
        with_extra.siblings.push(HexHash(EMPTY));
        maps.push(("extra empty sibling".into(), with_extra));
        let mut no_leaf = f.h.chains[n].map.clone();
        no_leaf.leaf = None;
        maps.push(("leaf removed".into(), no_leaf));
        for (what, m) in maps {
            if m == f.h.chains[n].map {
                // An absence proof that stops at this chain's leaf is its membership proof.
                continue;
            }
            let mut h = f.h.clone();
            h.chains[n].map = m;
            let e = verify(&f, &h).unwrap_err();
            assert!(
                matches!(&e, HistoryError::Chain { chain, reason: ChainError::Map(_), .. } if *chain == n),
                "chain {n}, {what}: {e}"
            );
        }
        // The map proof of the chain without its last event (an older head): invalid both
        // with the full chain and with the chain cut back to that head.
        if f.h.chains[n].events.len() >= 2 {
            let mut h = f.h.clone();
            h.chains[n].events.pop();
            assert!(verify(&f, &h).is_err(), "chain {n} cut");
        }
    }
}

#[test]
fn history_under_an_older_checkpoint_fails() {
    let f = fixture();
    let notes = f.l.checkpoints().unwrap();
    for text in notes.iter().filter(|t| **t != f.h.checkpoint) {
        let mut h = f.h.clone();
        h.checkpoint = text.clone();
        assert!(
            matches!(verify(&f, &h), Err(HistoryError::Anchor(_))),
            "the genesis and map leaf paths are for another tree"
        );
        // Anchored consistently on the older checkpoint (its own map leaf, the paths of its
        // tree): the events' paths and the map proofs are still for the newer tree.
        let size = note::open(text, &f.l.public_key()).unwrap().size;
        h.genesis = proven_leaf(&f.l, 0, size);
        h.map_leaf = proven_leaf(&f.l, size - 1, size);
        check(&h, &f.l.public_key(), None).map(drop).unwrap_err();
    }
    // A later checkpoint after more appends: paths and map proofs are for the older tree.
    let n = long_chain(&f.h, 3);
    let (c, p) = (
        f.h.chains[n].controller.clone(),
        f.h.chains[n].purpose.clone(),
    );
    append(&f.l, &f.alice, &c, &p, false, None);
    f.l.wait_past(f.l.now_ms());
    let newer = f.l.history(&f.alice.subject()).unwrap();
    assert_ne!(newer.checkpoint, f.h.checkpoint);
    verify(&f, &newer).unwrap();
    // The old history with the new checkpoint, and vice versa.
    let mut h = f.h.clone();
    h.checkpoint = newer.checkpoint.clone();
    assert!(verify(&f, &h).is_err());
    let mut h = newer.clone();
    h.checkpoint = f.h.checkpoint.clone();
    assert!(verify(&f, &h).is_err());
    // The new history minus its newest event, with the old chain's map proof: stale head.
    let mut h = newer.clone();
    let m = h
        .chains
        .iter()
        .position(|ch| ch.controller == c && ch.purpose == p)
        .unwrap();
    h.chains[m].events.pop();
    h.chains[m].map = f.h.chains[n].map.clone();
    assert!(verify(&f, &h).is_err());
    // Another log's key.
    let other = TestLedger::new();
    assert!(matches!(
        check(&f.h, &other.public_key(), None),
        Err(HistoryError::Checkpoint(
            note::NoteError::NoSignature { .. }
        ))
    ));
}

/// Byte `i` of each field xored with a bit that moves with `i`, so every bit position of the
/// field is changed somewhere.
fn alter(pe: &ProvenEvent, part: usize, i: usize) -> Option<ProvenEvent> {
    let mut pe = pe.clone();
    let mask = 1u8 << (i % 8);
    match part {
        0 => *pe.leaf.get_mut(i)? ^= mask,
        1 => *pe.opening.nonce.get_mut(i)? ^= mask,
        2 => *pe.opening.event.get_mut(i)? ^= mask,
        3 => pe.inclusion.get_mut(i / 32)?.0[i % 32] ^= mask,
        4 if i < 8 => pe.index ^= u64::from(mask) << (8 * i),
        _ => return None,
    }
    Some(pe)
}

#[test]
fn altering_any_byte_of_an_event_fails() {
    let f = fixture();
    let mut checked = 0;
    for n in 0..f.h.chains.len() {
        for e in 0..f.h.chains[n].events.len() {
            let pe = &f.h.chains[n].events[e];
            for part in 0..5 {
                for i in 0.. {
                    let Some(altered) = alter(pe, part, i) else {
                        break;
                    };
                    let mut h = f.h.clone();
                    h.chains[n].events[e] = altered;
                    checked += 1;
                    match verify(&f, &h) {
                        Ok(()) => panic!("chain {n} event {e} part {part} byte {i}: still valid"),
                        Err(HistoryError::Chain { chain, .. }) if chain == n => {}
                        Err(other) => panic!("chain {n} event {e}: unexpected {other}"),
                    }
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
    // Map proof fields and the checkpoint text, every byte.
    for n in 0..f.h.chains.len() {
        let map = &f.h.chains[n].map;
        for j in 0..map.siblings.len() {
            for i in 0..32 {
                let mut h = f.h.clone();
                h.chains[n].map.siblings[j].0[i] ^= 1 << (i % 8);
                assert!(verify(&f, &h).is_err(), "chain {n} sibling {j} byte {i}");
            }
        }
        for i in 0..32 {
            let mut h = f.h.clone();
            let leaf = h.chains[n].map.leaf.as_mut().unwrap();
            leaf.key[i] ^= 1 << (i % 8);
            assert!(verify(&f, &h).is_err(), "chain {n} leaf key byte {i}");
            let mut h = f.h.clone();
            let leaf = h.chains[n].map.leaf.as_mut().unwrap();
            leaf.leaf_hash[i] ^= 1 << (i % 8);
            assert!(verify(&f, &h).is_err(), "chain {n} leaf hash byte {i}");
        }
        for i in 0..8 {
            let mut h = f.h.clone();
            h.chains[n].map.leaf.as_mut().unwrap().index ^= 1 << (8 * i + i % 8);
            assert!(verify(&f, &h).is_err(), "chain {n} leaf index byte {i}");
        }
    }
    // The genesis leaf, the map leaf and their inclusion paths, every bit.
    let anchors: [(&str, AnchorLeaf); 2] = [
        ("genesis", |h| &mut h.genesis),
        ("map leaf", |h| &mut h.map_leaf),
    ];
    for (what, get) in anchors {
        let mut probe = f.h.clone();
        let (len, hashes) = (get(&mut probe).leaf.len(), get(&mut probe).inclusion.len());
        assert!(hashes > 0, "{what} has an inclusion path");
        for i in 0..len {
            for bit in 0..8 {
                let mut h = f.h.clone();
                get(&mut h).leaf[i] ^= 1 << bit;
                assert!(
                    matches!(verify(&f, &h), Err(HistoryError::Anchor(_))),
                    "{what} byte {i} bit {bit}"
                );
            }
        }
        for j in 0..hashes {
            for i in 0..32 {
                let mut h = f.h.clone();
                get(&mut h).inclusion[j].0[i] ^= 1 << (i % 8);
                assert!(
                    matches!(verify(&f, &h), Err(HistoryError::Anchor(_))),
                    "{what} inclusion hash {j} byte {i}"
                );
            }
        }
        for bit in 0..64 {
            let mut h = f.h.clone();
            get(&mut h).index ^= 1 << bit;
            assert!(
                matches!(verify(&f, &h), Err(HistoryError::Anchor(_))),
                "{what} index bit {bit}"
            );
        }
    }
    let bytes = f.h.checkpoint.as_bytes().to_vec();
    for i in 0..bytes.len() {
        for bit in 0..7 {
            let mut b = bytes.clone();
            b[i] ^= 1 << bit;
            let Ok(text) = String::from_utf8(b) else {
                continue;
            };
            let mut h = f.h.clone();
            h.checkpoint = text;
            assert!(
                matches!(verify(&f, &h), Err(HistoryError::Checkpoint(_))),
                "checkpoint byte {i} bit {bit}"
            );
        }
    }
}

/// The history format cannot show that a whole (controller, purpose) chain is missing: the
/// map is keyed by state keys, which do not reveal their subject. Dropping a chain verifies.
#[test]
fn dropping_a_whole_chain_is_not_detected() {
    let f = fixture();
    for n in 0..f.h.chains.len() {
        let mut h = f.h.clone();
        h.chains.remove(n);
        assert!(
            verify(&f, &h).is_ok(),
            "documented limitation: a history need not list every chain"
        );
    }
    let mut h = f.h.clone();
    h.chains.clear();
    assert!(verify(&f, &h).is_ok());
}

/// Leaf `index` of `l` with its inclusion path in the tree of the first `size` leaves.
fn proven_leaf(l: &Ledger, index: u64, size: u64) -> ProvenLeaf {
    ProvenLeaf {
        index,
        leaf: l.leaf(index).unwrap().expect("stored leaf").to_bytes(),
        inclusion: l.prove_inclusion(index, Some(size)).unwrap().path,
    }
}

/// A ledger where alice's chain (C1, P1) has one event before the map leaf `m1` and one after
/// it, and her chain (C2, P2) only one after it; a later map leaf `m2` covers everything.
struct Pending {
    l: TestLedger,
    alice: Person,
    /// The history at `m2`: every event proven complete.
    full: History,
    /// The same history anchored on `m1` (under the same checkpoint, which ends at `m2`): the
    /// events after `m1` are shown but not yet proven complete.
    pending: History,
    /// The history the ledger gives as of `m1`, under `m1`'s own checkpoint.
    at_m1: History,
    m1: u64,
}

const C1: &str = "shop.example";
const P1: &str = "newsletter";
const C2: &str = "bank.example";
const P2: &str = "marketing";

fn pending() -> Pending {
    let l = TestLedger::new();
    add_noise(&l, 3);
    let alice = Person::new();
    grant(&l, &alice, C1, P1);
    add_noise(&l, 2);
    l.checkpoint();
    let snap1 = l.latest();
    revoke(&l, &alice, C1, P1);
    grant(&l, &alice, C2, P2);
    add_noise(&l, 2);
    let full = l.history(&alice.subject()).unwrap();
    let size = l.latest().checkpoint.size;
    assert!(snap1.checkpoint.size < size);
    let mut pending = full.clone();
    pending.map_leaf = proven_leaf(&l, snap1.map_index, size);
    for ch in &mut pending.chains {
        ch.map = l
            .prove_key(&snap1, &alice.state_key(&l, &ch.controller, &ch.purpose))
            .unwrap();
    }
    let at_m1 = l.history_in(&snap1, &alice.subject()).unwrap();
    Pending {
        m1: snap1.map_index,
        l,
        alice,
        full,
        pending,
        at_m1,
    }
}

/// A history shows the events after its map leaf too; they are checked (signatures,
/// inclusion, links) but reported as not yet proven complete, since the map at the map leaf
/// cannot cover them.
#[test]
fn events_after_the_map_leaf_are_not_yet_proven_complete() {
    let f = pending();
    let key = f.l.public_key();
    let subject = f.alice.subject();

    let full = check(&f.full, &key, Some(&subject)).unwrap();
    assert_eq!(full.chains.len(), 2);
    for ch in &full.chains {
        assert_eq!(
            ch.proven,
            ch.events.len(),
            "{}/{}",
            ch.controller,
            ch.purpose
        );
    }

    let pending = check(&f.pending, &key, Some(&subject)).unwrap();
    assert_eq!(pending.anchor.map_index, f.m1);
    assert_eq!(pending.anchor.checkpoint, full.anchor.checkpoint);
    let a = chain(&pending, C1, P1);
    assert_eq!((a.events.len(), a.proven), (2, 1));
    assert!(a.events[0].index < f.m1 && a.events[1].index > f.m1);
    let b = chain(&pending, C2, P2);
    assert_eq!(
        (b.events.len(), b.proven),
        (1, 0),
        "the map shows the key absent"
    );

    // As of m1, the ledger's own history holds only what came before it.
    let at_m1 = check(&f.at_m1, &key, Some(&subject)).unwrap();
    assert_eq!(at_m1.anchor.map_index, f.m1);
    assert_eq!(at_m1.chains.len(), 1);
    assert_eq!(
        (at_m1.chains[0].events.len(), at_m1.chains[0].proven),
        (1, 1)
    );

    let n = |h: &History, c: &str, p: &str| {
        h.chains
            .iter()
            .position(|ch| ch.controller == c && ch.purpose == p)
            .unwrap()
    };
    let (na, nb) = (n(&f.pending, C1, P1), n(&f.pending, C2, P2));
    let fails = |h: &History| check(h, &key, Some(&subject)).is_err();

    // Not yet proven means exactly that: a pending event can be left off the end unnoticed.
    let mut h = f.pending.clone();
    h.chains[na].events.pop();
    let cut = check(&h, &key, None).unwrap();
    assert_eq!(
        (chain(&cut, C1, P1).events.len(), chain(&cut, C1, P1).proven),
        (1, 1)
    );
    // ... but an event before the map leaf cannot.
    let mut h = f.pending.clone();
    h.chains[na].events.remove(0);
    assert!(fails(&h), "proven event removed");
    // A chain whose only events are pending, emptied: refused (a chain has events).
    let mut h = f.pending.clone();
    h.chains[nb].events.clear();
    assert!(fails(&h), "empty chain");
    // The map proofs of m2 with the map leaf m1, and those of m1 with m2, do not fit.
    for (c, p) in [(C1, P1), (C2, P2)] {
        let (np, nf) = (n(&f.pending, c, p), n(&f.full, c, p));
        let mut h = f.pending.clone();
        h.chains[np].map = f.full.chains[nf].map.clone();
        assert!(fails(&h), "{c}/{p}: m2's map proof at m1");
        let mut h = f.full.clone();
        h.chains[nf].map = f.pending.chains[np].map.clone();
        assert!(fails(&h), "{c}/{p}: m1's map proof at m2");
    }
    // A pending event moved before the map leaf's place in the chain (swapped): refused.
    let mut h = f.pending.clone();
    h.chains[na].events.swap(0, 1);
    assert!(fails(&h));
    // The map leaf claimed to be at another index, or replaced by an event leaf.
    let mut h = f.pending.clone();
    h.map_leaf.index += 1;
    assert!(matches!(
        check(&h, &key, None),
        Err(HistoryError::Anchor(AnchorError::MapInclusion(_)))
    ));
    let mut h = f.pending.clone();
    let ev = &f.pending.chains[na].events[0];
    h.map_leaf = ProvenLeaf {
        index: ev.index,
        leaf: ev.leaf.clone(),
        inclusion: ev.inclusion.clone(),
    };
    assert!(matches!(
        check(&h, &key, None),
        Err(HistoryError::Anchor(AnchorError::Map(_)))
    ));
}

/// `consentlog verify-history` says how far the history is complete, and names each event's
/// leaf and event hash; `history --dir` answers as of the newest map leaf and says how to get a
/// newer one.
#[test]
fn verify_history_cli_reports_the_map_leaf_and_pending_events() {
    let mut f = pending();
    let key = f.l.public_key();
    let state = f.l.path("seen.json");
    let alice_hex = f.alice.hex();
    let verify_cli = |h: &History, name: &str, extra: &[&str]| {
        let file = f.l.path(name);
        std::fs::write(&file, serde_json::to_string_pretty(h).unwrap()).unwrap();
        let args = [
            &[
                "verify-history",
                "--log-key",
                &f.l.log_key,
                "--state",
                s(&state),
                "--subject",
                &alice_hex,
                s(&file),
            ][..],
            extra,
        ]
        .concat();
        run(&args)
    };
    let checked = check(&f.pending, &key, None).unwrap();
    let r = verify_cli(&f.pending, "pending.json", &[]).ok();
    let out = r.stdout.clone();
    assert!(out.contains("history valid: 2 chain(s)"), "{r:#?}");
    assert!(out.contains("complete up to the map leaf at"), "{r:#?}");
    assert!(
        out.contains(&format!("({})", checked.anchor.map.time)),
        "the map leaf's time in ms: {r:#?}"
    );
    assert!(
        out.contains("the last 1 not yet proven complete (after the map leaf)"),
        "{r:#?}"
    );
    for ch in &checked.chains {
        for e in &ch.events {
            let line = format!(
                "(leaf {}, event hash {})",
                e.index,
                to_hex(&e.event.event_hash())
            );
            assert!(out.contains(&line), "{line} in {r:#?}");
        }
    }
    let j = verify_cli(&f.pending, "pending.json", &["--json"]).ok();
    let v: serde_json::Value = serde_json::from_str(j.stdout.lines().next().unwrap()).unwrap();
    assert_eq!(v["valid"], true);
    assert_eq!(v["map_leaf"], f.m1);
    let proven: Vec<(u64, u64)> = v["chains"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["events"].as_u64().unwrap(),
                c["proven_complete"].as_u64().unwrap(),
            )
        })
        .collect();
    assert!(proven.contains(&(2, 1)) && proven.contains(&(1, 0)), "{v}");
    let r = verify_cli(&f.full, "full.json", &[]).ok();
    assert!(!r.stdout.contains("not yet proven"), "{r:#?}");
    // A tampered history is refused with exit 2.
    let mut bad = f.pending.clone();
    bad.chains[0].events[0].opening.nonce[0] ^= 1;
    verify_cli(&bad, "bad.json", &[]).assert_fails_with("history INVALID");

    // `history --dir` reads as of the newest map leaf: an event appended after it is left out
    // until `consentlog checkpoint` appends a newer one.
    append(&f.l, &f.alice, C1, P1, true, None);
    // The binary reads the system clock, which the ledger's manual clock has run ahead of.
    wall_past(f.l.now_ms());
    f.l.close();
    let dir = f.l.d().to_string();
    let subject = f.alice.hex();
    let before = run(&["history", "--dir", &dir, "--subject", &subject]).ok();
    assert!(
        before.stderr.contains("consentlog checkpoint"),
        "{before:#?}"
    );
    let h: History = serde_json::from_str(&before.stdout).unwrap();
    let events = |h: &History| h.chains.iter().map(|c| c.events.len()).sum::<usize>();
    assert_eq!(events(&h), 3);
    run(&["checkpoint", "--dir", &dir]).ok();
    let after = run(&["history", "--dir", &dir, "--subject", &subject]).ok();
    let h2: History = serde_json::from_str(&after.stdout).unwrap();
    assert_eq!(events(&h2), 4);
    assert_ne!(h2.checkpoint, h.checkpoint);
    for h in [&h, &h2] {
        let c = check(h, &key, Some(&f.alice.subject())).unwrap();
        assert!(c.chains.iter().all(|ch| ch.proven == ch.events.len()));
    }
}

/// Picks the genesis leaf or the map leaf of a history.
type AnchorLeaf = fn(&mut History) -> &mut ProvenLeaf;
