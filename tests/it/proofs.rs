//! Consent proofs end to end: proofs built by a real ledger verify and give the right state at
//! any time, and no change to their cryptographic material, their question or their
//! checkpoint turns them into a proof of another verdict.

use std::collections::HashMap;

use consentlog::core::entry::Entry;
use consentlog::core::event::{state_key, SignedEvent};
use consentlog::core::hash::{Hash, HexHash};
use consentlog::core::map::{self, MapLeaf, MapProof, EMPTY};
use consentlog::core::note::{self, Checkpoint, NoteError};
use consentlog::core::proof::{
    check, ConsentProof, EventError, ProofError, Question, State, Verdict,
};
use consentlog::core::reject::Reject;
use consentlog::keyfile;
use consentlog::ledger::{Ledger, Outcome};
use ed25519_dalek::VerifyingKey;
use proptest::prelude::*;

use crate::support::ledger::*;
use crate::support::*;

const C: &str = "shop.example";
const P: &str = "newsletter";

fn verify(l: &Ledger, p: &ConsentProof) -> Result<Verdict, ProofError> {
    check(p, &l.public_key(), &Question::default())
}

fn state_of(l: &Ledger, p: &ConsentProof) -> State {
    match verify(l, p) {
        Ok(v) => v.state,
        Err(e) => panic!("proof does not verify: {e}\n{}", to_json(p)),
    }
}

fn to_json(p: &ConsentProof) -> String {
    serde_json::to_string_pretty(p).unwrap()
}

fn entry_of(pe: &consentlog::core::proof::ProvenEvent) -> Entry {
    Entry::decode(&pe.entry).unwrap()
}

fn event_of(pe: &consentlog::core::proof::ProvenEvent) -> SignedEvent {
    SignedEvent::decode(&pe.opening.event).unwrap()
}

/// The reference semantics, written from the specification: the event in force at `at` is
/// the last one integrated at or before `at`.
#[derive(Debug, Clone, Copy)]
struct ModelEvent {
    integrated_at: u64,
    opt_in: bool,
    expires_at: Option<u64>,
}

fn model_state(events: &[ModelEvent], at: u64) -> State {
    match events.iter().rev().find(|e| e.integrated_at <= at) {
        None => State::NoRecord,
        Some(e) if !e.opt_in => State::OptedOut,
        Some(ModelEvent {
            expires_at: Some(x),
            ..
        }) if at >= *x => State::Expired,
        Some(_) => State::OptedIn,
    }
}

fn model_of(appended: &[&Appended]) -> Vec<ModelEvent> {
    appended
        .iter()
        .map(|a| ModelEvent {
            integrated_at: a.integrated_at(),
            opt_in: a.event.event.decision == 1,
            expires_at: a.event.event.expires_at,
        })
        .collect()
}

/// `p` asked about `at`, claiming `state`.
fn claiming(p: &ConsentProof, at: u64, state: State) -> ConsentProof {
    let mut q = p.clone();
    q.at = at;
    q.state = state.as_str().into();
    q
}

/// `q` claiming each state in turn is refused every time (`q` keeps the last claim).
#[track_caller]
fn refused_in_every_state(l: &Ledger, q: &mut ConsentProof, what: &str) {
    for s in ALL_STATES {
        q.state = s.as_str().into();
        assert!(verify(l, q).is_err(), "{what}, state {s:?}");
    }
}

const ALL_STATES: [State; 4] = [
    State::OptedIn,
    State::Expired,
    State::OptedOut,
    State::NoRecord,
];

// ---------------------------------------------------------------------------------------------
// 1. The historical case.

#[test]
fn grant_then_revoke_at_every_time() {
    let l = TestLedger::new();
    add_noise(&l, 6);
    let alice = Person::new();
    let subj = alice.subject();
    let g = grant(&l, &alice, C, P);
    let r = revoke(&l, &alice, C, P);
    add_noise(&l, 3);
    let (t1, t2) = (g.integrated_at(), r.integrated_at());
    assert!(t1 < t2, "the clock steps separate the integration times");
    l.wait_past(t2 + 1);
    let model = model_of(&[&g, &r]);

    // Before the grant: no record, shown by the seq-0 event integrated after `at`.
    for at in [0, t1 - 2, t1 - 1] {
        let p = l.prove_consent(&subj, C, P, Some(at)).unwrap();
        assert_eq!(p.state, "no_record");
        assert_eq!(p.events.len(), 1, "only the key's first event");
        assert!(p.map.is_none(), "no map proof with a later first event");
        assert_eq!(event_of(&p.events[0]).event.seq, 0);
        assert_eq!(p.events[0].index, g.receipt.index);
        assert!(entry_of(&p.events[0]).integrated_at > at);
        let v = verify(&l, &p).unwrap();
        assert_eq!(v.state, State::NoRecord);
        assert!(!v.state.held(false));
        assert!(v.state.held(true), "default_allow applies to no_record");
        assert_eq!(v.state, model_state(&model, at));
    }

    // From the grant up to just before the revocation: opted in, with the successor.
    for at in [t1, t1 + 1, (t1 + t2) / 2, t2 - 1] {
        let p = l.prove_consent(&subj, C, P, Some(at)).unwrap();
        assert_eq!(p.state, "opted_in", "at {at}");
        assert_eq!(p.events.len(), 2);
        assert!(p.map.is_none());
        assert_eq!(p.events[0].index, g.receipt.index);
        assert_eq!(p.events[1].index, r.receipt.index);
        assert_eq!(entry_of(&p.events[0]).leaf_hash(), g.receipt.leaf_hash);
        assert_eq!(entry_of(&p.events[1]).leaf_hash(), r.receipt.leaf_hash);
        let v = verify(&l, &p).unwrap();
        assert_eq!(v.state, State::OptedIn);
        assert!(v.state.held(false) && v.state.held(true));
        assert_eq!(v.state, model_state(&model, at));
    }

    // From the revocation on: opted out, with the map proof that it is the latest entry.
    let now = l.now_ms();
    for at in [t2, t2 + 1, now] {
        let p = l.prove_consent(&subj, C, P, Some(at)).unwrap();
        assert_eq!(p.state, "opted_out", "at {at}");
        assert_eq!(p.events.len(), 1);
        assert_eq!(p.events[0].index, r.receipt.index);
        let v = verify(&l, &p).unwrap();
        let m = map::check(
            &v.checkpoint.map_root,
            &alice.state_key(C, P),
            p.map.as_ref().unwrap(),
        )
        .unwrap()
        .expect("membership");
        assert_eq!(m.index, r.receipt.index);
        assert_eq!(m.leaf_hash, r.receipt.leaf_hash);
        assert_eq!(v.state, State::OptedOut);
        assert!(!v.state.held(false) && !v.state.held(true));
        assert_eq!(v.state, model_state(&model, at));
    }

    // Default `at` is now; a future `at` is refused.
    let p = l.prove_consent(&subj, C, P, None).unwrap();
    assert_eq!(state_of(&l, &p), State::OptedOut);
    assert!(l
        .prove_consent(&subj, C, P, Some(l.now_ms() + 60_000))
        .is_err());

    // The JSON form round-trips and still verifies.
    let p = l.prove_consent(&subj, C, P, Some(t1)).unwrap();
    let back: ConsentProof = serde_json::from_str(&serde_json::to_string(&p).unwrap()).unwrap();
    assert_eq!(back, p);
    assert_eq!(state_of(&l, &back), State::OptedIn);
}

#[test]
fn expiring_opt_in() {
    let l = TestLedger::new();
    add_noise(&l, 4);
    let bob = Person::new();
    let expires = l.now_ms() + 150;
    let g = append(&l, &bob, C, P, true, Some(expires));
    let t = g.integrated_at();
    assert!(t < expires);
    l.wait_past(expires + 2);
    let model = model_of(&[&g]);

    for (at, want) in [
        (t - 1, State::NoRecord),
        (t, State::OptedIn),
        (expires - 1, State::OptedIn),
        (expires, State::Expired),
        (expires + 1, State::Expired),
        (l.now_ms(), State::Expired),
    ] {
        let p = l.prove_consent(&bob.subject(), C, P, Some(at)).unwrap();
        let got = state_of(&l, &p);
        assert_eq!(got, want, "at {at}");
        assert_eq!(got, model_state(&model, at));
        assert_eq!(p.state, want.as_str());
    }
    assert!(State::OptedIn.held(false) && State::OptedIn.held(true));
    assert!(!State::Expired.held(false));
    assert!(
        State::Expired.held(true),
        "default_allow: expired counts as held"
    );

    // A revocation after the expiry: opted out from then on, expired before.
    let r = revoke(&l, &bob, C, P);
    l.wait_past(r.integrated_at());
    let model = model_of(&[&g, &r]);
    for at in [t, expires, r.integrated_at() - 1, r.integrated_at()] {
        let p = l.prove_consent(&bob.subject(), C, P, Some(at)).unwrap();
        assert_eq!(state_of(&l, &p), model_state(&model, at), "at {at}");
    }
}

#[test]
fn triple_that_never_existed() {
    // Empty ledger: the map is empty, the absence proof has no leaf and no sibling.
    let l = TestLedger::new();
    let who = Person::new();
    let p = l.prove_consent(&who.subject(), C, P, None).unwrap();
    assert!(p.events.is_empty());
    let m = p.map.clone().expect("absence proof");
    assert_eq!(m.leaf, None);
    assert!(m.siblings.is_empty());
    assert_eq!(state_of(&l, &p), State::NoRecord);

    // A busy ledger: the same person has other purposes; the asked one is absent.
    add_noise(&l, 10);
    grant(&l, &who, C, "other-purpose");
    grant(&l, &who, "other.controller", P);
    let at = l.now_ms();
    for i in 0..30 {
        let purpose = format!("never-{i}");
        let p = l
            .prove_consent(&who.subject(), C, &purpose, Some(at))
            .unwrap();
        assert!(p.events.is_empty());
        assert_eq!(p.state, "no_record");
        let v = verify(&l, &p).unwrap();
        assert_eq!(v.state, State::NoRecord);
        let m = p.map.as_ref().unwrap();
        let key = who.state_key(C, &purpose);
        assert_eq!(map::check(&v.checkpoint.map_root, &key, m).unwrap(), None);
        if let Some(leaf) = &m.leaf {
            assert_ne!(leaf.key, key);
        }
    }
    // Both shapes of absence proof (stopping at another key's leaf, or at an empty subtree).
    let (with_leaf, empty) = absence_proofs(&l, &who.subject(), None);
    for p in [&with_leaf, &empty] {
        assert_eq!(state_of(&l, p), State::NoRecord);
    }
}

/// Absence proofs for `subject`'s purposes `never-<i>` under controller C: one that stops at
/// another key's leaf and one that stops at an empty subtree, both with siblings. A tree
/// whose branches have no single-child runs has no empty subtree on any path, so this adds
/// unrelated keys until both shapes occur.
fn absence_proofs(
    l: &TestLedger,
    subject: &[u8; 32],
    at: Option<u64>,
) -> (ConsentProof, ConsentProof) {
    for _ in 0..20 {
        let at = at.unwrap_or_else(|| {
            let t = l.now_ms();
            l.wait_past(t);
            t
        });
        let (mut with_leaf, mut empty) = (None, None);
        for i in 0..300 {
            let purpose = format!("never-{i}");
            let p = l.prove_consent(subject, C, &purpose, Some(at)).unwrap();
            let m = p.map.as_ref().unwrap();
            match (&m.leaf, m.siblings.is_empty()) {
                (Some(_), false) if with_leaf.is_none() => with_leaf = Some(p),
                (None, false) if empty.is_none() => empty = Some(p),
                _ => {}
            }
            if let (Some(a), Some(b)) = (&with_leaf, &empty) {
                if a.checkpoint == b.checkpoint {
                    return (a.clone(), b.clone());
                }
            }
        }
        add_noise(l, 8);
    }
    panic!("no absence proofs of both shapes");
}

// ---------------------------------------------------------------------------------------------
// Fixture for the tamper tests.

struct Fixture {
    l: TestLedger,
    alice: Person,
    g: Appended,
    r: Appended,
    /// Proofs by name.
    proofs: Vec<(&'static str, ConsentProof)>,
    /// A valid proof made after the grant and before the revocation (older checkpoint).
    early: ConsentProof,
    /// The model of alice's (C, P) key.
    model: Vec<ModelEvent>,
}

impl Fixture {
    fn proof(&self, name: &str) -> ConsentProof {
        self.proofs
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| p.clone())
            .unwrap()
    }
}

fn fixture() -> Fixture {
    let l = TestLedger::new();
    add_noise(&l, 9);
    let alice = Person::new();
    let g = grant(&l, &alice, C, P);
    add_noise(&l, 2);
    l.wait_past(g.integrated_at());
    let early = l
        .prove_consent(&alice.subject(), C, P, Some(l.now_ms()))
        .unwrap();
    assert_eq!(early.events.len(), 1);
    assert!(early.map.is_some());
    l.advance(2);
    let r = revoke(&l, &alice, C, P);
    add_noise(&l, 4);
    l.wait_past(r.integrated_at() + 1);
    let (t1, t2) = (g.integrated_at(), r.integrated_at());
    let subj = alice.subject();
    // Absence proofs of both shapes first (this may add keys to the ledger).
    let (with_leaf, empty) = absence_proofs(&l, &subj, Some(t2));
    let proofs = vec![
        (
            "two_events",
            l.prove_consent(&subj, C, P, Some(t1)).unwrap(),
        ),
        (
            "membership",
            l.prove_consent(&subj, C, P, Some(t2)).unwrap(),
        ),
        (
            "seq0_only",
            l.prove_consent(&subj, C, P, Some(t1 - 1)).unwrap(),
        ),
        ("absent_leaf", with_leaf),
        ("absent_empty", empty),
    ];
    assert!(
        proofs
            .iter()
            .all(|(_, p)| p.checkpoint == proofs[0].1.checkpoint),
        "one checkpoint for all"
    );
    let model = model_of(&[&g, &r]);
    for (name, p) in &proofs {
        let v = verify(&l, p).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(v.state.as_str(), p.state);
    }
    let shape = |name: &str| {
        let p = proofs.iter().find(|(n, _)| *n == name).unwrap().1.clone();
        (p.events.len(), p.map.is_some())
    };
    assert_eq!(shape("two_events"), (2, false));
    assert_eq!(shape("membership"), (1, true));
    assert_eq!(shape("seq0_only"), (1, false));
    assert_eq!(shape("absent_leaf"), (0, true));
    Fixture {
        l,
        alice,
        g,
        r,
        proofs,
        early,
        model,
    }
}

// ---------------------------------------------------------------------------------------------
// 2. Bit flips in the cryptographic material.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Part {
    Index(usize),
    Entry(usize),
    Nonce(usize),
    Event(usize),
    Inclusion(usize, usize),
    MapLeafKey,
    MapLeafIndex,
    MapLeafHash,
    MapSibling(usize),
    Checkpoint,
}

fn parts(p: &ConsentProof) -> Vec<(Part, usize)> {
    let mut v = Vec::new();
    for (i, e) in p.events.iter().enumerate() {
        v.push((Part::Index(i), 8));
        v.push((Part::Entry(i), e.entry.len()));
        v.push((Part::Nonce(i), 32));
        v.push((Part::Event(i), e.opening.event.len()));
        for j in 0..e.inclusion.len() {
            v.push((Part::Inclusion(i, j), 32));
        }
    }
    if let Some(m) = &p.map {
        if m.leaf.is_some() {
            v.push((Part::MapLeafKey, 32));
            v.push((Part::MapLeafIndex, 8));
            v.push((Part::MapLeafHash, 32));
        }
        for j in 0..m.siblings.len() {
            v.push((Part::MapSibling(j), 32));
        }
    }
    v.push((Part::Checkpoint, p.checkpoint.len()));
    v
}

fn leaf(q: &mut ConsentProof) -> &mut MapLeaf {
    q.map.as_mut().unwrap().leaf.as_mut().unwrap()
}

/// `p` with `mask` xored into byte `byte` of `part`; None when the checkpoint text would no
/// longer be UTF-8 (it could not be carried in JSON).
fn flip(p: &ConsentProof, part: Part, byte: usize, mask: u8) -> Option<ConsentProof> {
    let mut q = p.clone();
    match part {
        Part::Index(i) => q.events[i].index ^= u64::from(mask) << (8 * byte),
        Part::Entry(i) => q.events[i].entry[byte] ^= mask,
        Part::Nonce(i) => q.events[i].opening.nonce[byte] ^= mask,
        Part::Event(i) => q.events[i].opening.event[byte] ^= mask,
        Part::Inclusion(i, j) => q.events[i].inclusion[j].0[byte] ^= mask,
        Part::MapLeafKey => leaf(&mut q).key[byte] ^= mask,
        Part::MapLeafIndex => leaf(&mut q).index ^= u64::from(mask) << (8 * byte),
        Part::MapLeafHash => leaf(&mut q).leaf_hash[byte] ^= mask,
        Part::MapSibling(j) => q.map.as_mut().unwrap().siblings[j].0[byte] ^= mask,
        Part::Checkpoint => {
            let mut b = std::mem::take(&mut q.checkpoint).into_bytes();
            b[byte] ^= mask;
            q.checkpoint = String::from_utf8(b).ok()?;
        }
    }
    Some(q)
}

/// Whether `e` is the kind of failure a change of `part` should cause.
fn expected_failure(part: Part, e: &ProofError) -> bool {
    match part {
        Part::Index(i)
        | Part::Entry(i)
        | Part::Nonce(i)
        | Part::Event(i)
        | Part::Inclusion(i, _) => matches!(e, ProofError::Event { pos, .. } if *pos == i),
        Part::MapLeafKey | Part::MapLeafIndex | Part::MapLeafHash | Part::MapSibling(_) => {
            matches!(e, ProofError::Map(_))
        }
        Part::Checkpoint => matches!(e, ProofError::Checkpoint(_)),
    }
}

#[test]
fn every_bit_flip_invalidates_the_proof() {
    let f = fixture();
    let key = f.l.public_key();
    let mut report = Vec::new();
    let mut total = 0usize;
    for (name, p) in &f.proofs {
        let original = verify(&f.l, p).unwrap().state;
        let mut wrong_verdict = Vec::new();
        let mut still_valid = Vec::new();
        let mut odd_error = Vec::new();
        let mut skipped = 0usize;
        for (part, len) in parts(p) {
            for byte in 0..len {
                for bit in 0..8 {
                    let Some(q) = flip(p, part, byte, 1 << bit) else {
                        skipped += 1;
                        continue;
                    };
                    total += 1;
                    match check(&q, &key, &Question::default()) {
                        Ok(v) if v.state != original => {
                            wrong_verdict.push((part, byte, bit, v.state))
                        }
                        Ok(v) => still_valid.push((part, byte, bit, v.state)),
                        Err(e) if !expected_failure(part, &e) => {
                            odd_error.push((part, byte, bit, e.to_string()))
                        }
                        Err(_) => {}
                    }
                }
            }
        }
        assert!(
            wrong_verdict.is_empty(),
            "{name}: flips that give another verdict than {original:?}: {wrong_verdict:?}"
        );
        if !still_valid.is_empty() || !odd_error.is_empty() {
            report.push(format!(
                "{name}: still valid after {still_valid:?}; unexpected errors {odd_error:?}"
            ));
        }
        // Only the top bit of an ASCII byte, and some bits of the em dash of the signature
        // line, make the text invalid UTF-8.
        assert!(
            skipped <= p.checkpoint.len() + 3 * 8,
            "{name}: {skipped} flips skipped"
        );
    }
    assert!(report.is_empty(), "{}", report.join("\n"));
    assert!(total > 10_000, "{total} mutations checked");
}

/// Changes of shape rather than of bits: dropped, added, swapped or duplicated parts.
#[test]
fn structural_changes_invalidate_the_proof() {
    let f = fixture();
    let key = f.l.public_key();
    for (name, p) in &f.proofs {
        let original = verify(&f.l, p).unwrap().state;
        let mut variants: Vec<(String, ConsentProof)> = Vec::new();
        for i in 0..p.events.len() {
            let mut q = p.clone();
            q.events[i].inclusion.push(HexHash(EMPTY));
            variants.push((format!("inclusion {i} longer"), q));
            if !p.events[i].inclusion.is_empty() {
                let mut q = p.clone();
                q.events[i].inclusion.pop();
                variants.push((format!("inclusion {i} shorter"), q));
                let mut q = p.clone();
                q.events[i].inclusion.reverse();
                if q != *p {
                    variants.push((format!("inclusion {i} reversed"), q));
                }
            }
            let mut q = p.clone();
            q.events[i].entry.push(0);
            variants.push((format!("entry {i} longer"), q));
            let mut q = p.clone();
            q.events[i].entry.pop();
            variants.push((format!("entry {i} shorter"), q));
            let mut q = p.clone();
            q.events[i].opening.event.push(0);
            variants.push((format!("event {i} longer"), q));
            let mut q = p.clone();
            q.events[i]
                .opening
                .event
                .truncate(p.events[i].opening.event.len() - 1);
            variants.push((format!("event {i} shorter"), q));
            let mut q = p.clone();
            q.events.push(p.events[i].clone());
            variants.push((format!("event {i} repeated"), q));
            let mut q = p.clone();
            q.events.remove(i);
            variants.push((format!("event {i} removed"), q));
        }
        if p.events.len() == 2 {
            let mut q = p.clone();
            q.events.swap(0, 1);
            variants.push(("events swapped".into(), q));
            // The successor's opening and entry with the first event's index and path.
            let mut q = p.clone();
            q.events[0].index = p.events[1].index;
            q.events[0].inclusion = p.events[1].inclusion.clone();
            variants.push(("first event's position replaced".into(), q));
        }
        if let Some(m) = &p.map {
            let mut q = p.clone();
            q.map.as_mut().unwrap().siblings.push(HexHash(EMPTY));
            variants.push(("map: extra empty sibling".into(), q));
            let mut q = p.clone();
            q.map.as_mut().unwrap().siblings.insert(0, HexHash(EMPTY));
            variants.push(("map: extra empty sibling at the top".into(), q));
            if !m.siblings.is_empty() {
                let mut q = p.clone();
                q.map.as_mut().unwrap().siblings.pop();
                variants.push(("map: last sibling removed".into(), q));
                let mut q = p.clone();
                q.map.as_mut().unwrap().siblings.remove(0);
                variants.push(("map: first sibling removed".into(), q));
            }
            if m.leaf.is_some() {
                let mut q = p.clone();
                q.map.as_mut().unwrap().leaf = None;
                variants.push(("map: leaf removed".into(), q));
            } else {
                // Claim some key is in the subtree where the proof stops.
                let mut q = p.clone();
                q.map.as_mut().unwrap().leaf = Some(MapLeaf {
                    key: state_key(&p.subject, &p.controller, &p.purpose),
                    index: 0,
                    leaf_hash: [0; 32],
                });
                variants.push(("map: leaf added".into(), q));
            }
            let mut q = p.clone();
            q.map = Some(MapProof {
                leaf: None,
                siblings: vec![],
            });
            variants.push(("map: empty proof".into(), q));
        } else {
            let mut q = p.clone();
            q.map = f.proof("membership").map;
            variants.push(("map: another proof's map added".into(), q));
        }
        // Checkpoint text: trailing or leading whitespace, a missing final newline.
        for (what, text) in [
            ("checkpoint: extra newline", format!("{}\n", p.checkpoint)),
            ("checkpoint: leading newline", format!("\n{}", p.checkpoint)),
            (
                "checkpoint: no final newline",
                p.checkpoint.trim_end_matches('\n').to_string(),
            ),
            ("checkpoint: empty", String::new()),
        ] {
            let mut q = p.clone();
            q.checkpoint = text;
            variants.push((what.into(), q));
        }
        for (what, q) in variants {
            if let Ok(v) = check(&q, &key, &Question::default()) {
                panic!(
                    "{name}: {what} still verifies (state {:?}, original {original:?})",
                    v.state
                )
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// 3. Removing parts, swapping in other proofs' parts, older checkpoints, other questions.

#[test]
fn removing_the_successor_or_the_map_invalidates() {
    let f = fixture();
    let two = f.proof("two_events");
    let mut q = two.clone();
    q.events.pop();
    let e = verify(&f.l, &q).unwrap_err();
    assert!(matches!(e, ProofError::Map(_)), "{e}");
    // ... also with the state claim adjusted, and with both events dropped.
    refused_in_every_state(&f.l, &mut q, "successor removed");
    let mut q = two.clone();
    q.events.clear();
    refused_in_every_state(&f.l, &mut q, "events removed");

    for name in ["membership", "absent_leaf", "absent_empty"] {
        let mut q = f.proof(name);
        q.map = None;
        let e = verify(&f.l, &q).unwrap_err();
        assert!(matches!(e, ProofError::Map(_)), "{name}: {e}");
        refused_in_every_state(&f.l, &mut q, &format!("{name}: map removed"));
    }

    // The membership proof stripped of its event: the map shows the key present.
    let mut q = f.proof("membership");
    q.events.clear();
    q.state = "no_record".into();
    assert!(matches!(verify(&f.l, &q), Err(ProofError::Map(_))));
}

#[test]
fn other_map_proofs_are_refused() {
    let f = fixture();
    let membership = f.proof("membership");
    let key = f.alice.state_key(C, P);
    // Map proofs of other keys under the same checkpoint.
    let mut others: Vec<(String, MapProof)> = Vec::new();
    for name in ["absent_leaf", "absent_empty"] {
        others.push((name.into(), f.proof(name).map.unwrap()));
    }
    let snap = f.l.latest();
    for i in 0..5 {
        let k = f.alice.state_key(C, &format!("never-{i}"));
        others.push((
            format!("absence of never-{i}"),
            f.l.prove_key(&snap, &k).unwrap(),
        ));
    }
    // The same key from the older checkpoint (when the grant was its head).
    others.push((
        "same key, older checkpoint".into(),
        f.early.map.clone().unwrap(),
    ));
    // An older snapshot's map for the current key is the same as `early`'s; the current map's
    // proof of the same key is the genuine one.
    assert_eq!(
        f.l.prove_key(&snap, &key).unwrap(),
        membership.map.clone().unwrap()
    );

    for (what, m) in &others {
        if Some(m) == membership.map.as_ref() {
            // An absence proof that stops at alice's own leaf is her membership proof.
            continue;
        }
        let mut q = membership.clone();
        q.map = Some(m.clone());
        refused_in_every_state(&f.l, &mut q, &format!("membership with {what}"));
        // Absence claims with another key's proof.
        let mut q = membership.clone();
        q.events.clear();
        q.map = Some(m.clone());
        q.state = "no_record".into();
        assert!(verify(&f.l, &q).is_err(), "absence with {what}");
    }

    // The early proof (grant + map at the older checkpoint) with its events moved onto the new
    // checkpoint: paths and map are for the older tree.
    let mut q = f.early.clone();
    q.checkpoint = membership.checkpoint.clone();
    refused_in_every_state(&f.l, &mut q, "early proof on the new checkpoint");
    // The grant alone with the current membership map (shows the revoke as head).
    let mut q = f.proof("two_events");
    q.events.pop();
    q.map = membership.map.clone();
    assert!(verify(&f.l, &q).is_err());
}

#[test]
fn older_checkpoints_are_refused() {
    let f = fixture();
    let key = f.l.public_key();
    let notes = f.l.checkpoints().unwrap();
    assert!(notes.len() >= 2);
    let (t1, t2) = (f.g.integrated_at(), f.r.integrated_at());

    // The early proof is genuine for its time.
    let early_at = f.early.at;
    assert!(early_at >= t1 && early_at < t2);
    assert_eq!(state_of(&f.l, &f.early), State::OptedIn);
    let early_cp = note::open(&f.early.checkpoint, &key).unwrap();
    assert!(early_cp.time < t2, "checkpoints come before later entries");

    // ... but moved to a time after the revocation, its checkpoint is too old.
    for at in [t2, t2 + 1, early_cp.time + 1] {
        let mut q = f.early.clone();
        q.at = at;
        for s in ALL_STATES {
            q.state = s.as_str().into();
            let e = verify(&f.l, &q).unwrap_err();
            assert!(
                matches!(e, ProofError::CheckpointTooOld { .. }),
                "at {at}: {e}"
            );
        }
    }

    // Every proof with every stored checkpoint older than its `at`.
    for (name, p) in &f.proofs {
        for text in &notes {
            let cp = note::open(text, &key).unwrap();
            if cp.note == p.checkpoint {
                continue;
            }
            let mut q = p.clone();
            q.checkpoint = text.clone();
            let res = verify(&f.l, &q);
            if cp.time < p.at {
                assert!(
                    matches!(res, Err(ProofError::CheckpointTooOld { time, at }) if time == cp.time && at == p.at),
                    "{name} with checkpoint of time {}: {res:?}",
                    cp.time
                );
            } else {
                assert!(res.is_err(), "{name} with another checkpoint verifies");
            }
        }
    }
}

#[test]
fn other_questions_are_refused() {
    let f = fixture();
    let key = f.l.public_key();
    let bob = Person::new();
    for (name, p) in &f.proofs {
        let same = Question {
            subject: Some(p.subject),
            controller: Some(p.controller.clone()),
            purpose: Some(p.purpose.clone()),
            at: Some(p.at),
        };
        assert!(check(p, &key, &same).is_ok(), "{name}: its own question");
        let others = [
            Question {
                subject: Some(bob.subject()),
                ..same.clone()
            },
            Question {
                controller: Some("other.example".into()),
                ..same.clone()
            },
            Question {
                purpose: Some("analytics".into()),
                ..same.clone()
            },
            Question {
                at: Some(p.at + 1),
                ..same.clone()
            },
            Question {
                at: Some(p.at - 1),
                ..same.clone()
            },
            Question {
                at: Some(0),
                ..Question::default()
            },
        ];
        for q in &others {
            let e = check(p, &key, q).unwrap_err();
            assert!(matches!(e, ProofError::Question(_)), "{name} {q:?}: {e}");
        }

        // The same changes made inside the proof (no question asked). Proofs with events
        // fail: the events belong to another triple. An absence proof also proves absent
        // every other key whose path runs into the same empty or one-key subtree, so it may
        // stay valid, but then only as a true no_record for the new triple.
        let snap = f.l.latest();
        assert_eq!(
            snap.checkpoint.note, p.checkpoint,
            "no checkpoint since the fixture"
        );
        let mut changed: Vec<ConsentProof> = Vec::new();
        for i in 0..24 {
            let mut q = p.clone();
            q.controller = format!("other-{i}.example");
            changed.push(q);
            let mut q = p.clone();
            q.purpose = format!("analytics-{i}");
            changed.push(q);
            let mut q = p.clone();
            q.subject = Person::new().subject();
            changed.push(q);
        }
        let mut q = p.clone();
        q.subject = bob.subject();
        changed.push(q);
        for q in &changed {
            match verify(&f.l, q) {
                Err(_) => {}
                Ok(v) => {
                    assert!(p.events.is_empty(), "{name}: verifies for {q:?}");
                    assert_eq!(v.state, State::NoRecord);
                    let k = state_key(&q.subject, &q.controller, &q.purpose);
                    let leaf = f.l.prove_key(&snap, &k).unwrap().leaf;
                    assert!(
                        leaf.is_none_or(|l| l.key != k),
                        "{name}: the new triple is absent"
                    );
                }
            }
        }
        let mut q = p.clone();
        q.controller = "Shop.Example".into();
        assert!(matches!(verify(&f.l, &q), Err(ProofError::Name(_))));
        let mut q = p.clone();
        q.format = "consentlog-proof/v2".into();
        assert!(matches!(verify(&f.l, &q), Err(ProofError::Format(_))));
    }
}

#[test]
fn the_state_field_must_match() {
    let f = fixture();
    for (name, p) in &f.proofs {
        let actual = verify(&f.l, p).unwrap().state;
        for s in ALL_STATES {
            let mut q = p.clone();
            q.state = s.as_str().into();
            let res = verify(&f.l, &q);
            if s == actual {
                assert!(res.is_ok(), "{name}");
            } else {
                assert!(
                    matches!(res, Err(ProofError::StateMismatch { .. })),
                    "{name}: {s:?}: {res:?}"
                );
            }
        }
        for bad in ["", "OPTED_IN", "opted-in", "held", "opted_in "] {
            let mut q = p.clone();
            q.state = bad.into();
            assert!(verify(&f.l, &q).is_err(), "{name}: state {bad:?}");
        }
    }
}

#[test]
fn changing_at_never_gives_a_wrong_verdict() {
    let f = fixture();
    let (t1, t2) = (f.g.integrated_at(), f.r.integrated_at());
    let mut accepted = 0;
    let mut all = vec![f.early.clone()];
    all.extend(f.proofs.iter().map(|(_, p)| p.clone()));
    for p in &all {
        let cp_time = note::open(&p.checkpoint, &f.l.public_key()).unwrap().time;
        let absent = p.purpose != P;
        let mut ats = vec![0, 1, t1 - 1, t1, t1 + 1, t2 - 1, t2, t2 + 1, p.at, cp_time];
        ats.extend([cp_time + 1, u64::MAX, p.at.saturating_sub(1), p.at + 1]);
        for at in ats {
            let want = if absent {
                State::NoRecord
            } else {
                model_state(&f.model, at)
            };
            for s in ALL_STATES {
                match verify(&f.l, &claiming(p, at, s)) {
                    Ok(v) => {
                        accepted += 1;
                        assert_eq!(v.state, want, "at {at} (proof at {})", p.at);
                        assert!(at <= cp_time);
                    }
                    Err(_) => assert!(
                        s != want || at > cp_time || at != p.at,
                        "the unchanged proof must verify"
                    ),
                }
            }
        }
    }
    assert!(accepted > all.len(), "some moved proofs stay valid");

    // Every single-bit change of `at`, with the state claim left as is or set to each state.
    for p in &all {
        let absent = p.purpose != P;
        for bit in 0..64 {
            let at = p.at ^ (1u64 << bit);
            let want = if absent {
                State::NoRecord
            } else {
                model_state(&f.model, at)
            };
            for s in ALL_STATES {
                if let Ok(v) = verify(&f.l, &claiming(p, at, s)) {
                    assert_eq!(v.state, want, "at bit {bit} flipped (proof at {})", p.at);
                }
            }
        }
    }
}

/// A ledger closed and opened again keeps answering with valid proofs, including from the
/// latest checkpoint's snapshot when entries were appended after it (its map is rebuilt by
/// replaying the log up to the checkpoint's size).
#[test]
fn proofs_after_reopening_the_ledger() {
    let l = TestLedger::new();
    add_noise(&l, 5);
    let alice = Person::new();
    let g = grant(&l, &alice, C, P);
    add_noise(&l, 3);
    let cp = l.checkpoint().unwrap();
    let r = revoke(&l, &alice, C, P);
    add_noise(&l, 2);
    let mut l = l;
    l.reopen();
    let snap = l.latest();
    assert_eq!(snap.checkpoint, cp);
    assert!(snap.checkpoint.size < l.size());
    let subj = alice.subject();
    let p = l
        .prove_consent_in(&snap, &subj, C, P, snap.checkpoint.time)
        .unwrap();
    assert_eq!(p.events.len(), 1);
    assert_eq!(state_of(&l, &p), State::OptedIn);
    assert_eq!(snap.checkpoint.map_root, {
        let v = verify(&l, &p).unwrap();
        v.checkpoint.map_root
    });

    // New appends are integrated after everything before the reopening.
    let g2 = grant(&l, &alice, C, P);
    assert!(g2.integrated_at() > r.integrated_at());
    assert!(g2.integrated_at() > cp.time);
    l.wait_past(g2.integrated_at());
    let model = model_of(&[&g, &r, &g2]);
    for at in [
        g.integrated_at() - 1,
        g.integrated_at(),
        r.integrated_at(),
        g2.integrated_at() - 1,
        g2.integrated_at(),
    ] {
        let p = l.prove_consent(&subj, C, P, Some(at)).unwrap();
        assert_eq!(state_of(&l, &p), model_state(&model, at), "at {at}");
    }
    let h = l.history(&subj).unwrap();
    consentlog::core::history::check(&h, &l.public_key(), Some(&subj)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// 4. Other logs.

#[test]
fn proofs_of_other_logs_are_refused() {
    let a = TestLedger::new();
    let b = TestLedger::new(); // same origin, another key
    let c = TestLedger::with_origin("other.example/log");
    let alice = Person::new();
    // The very same signed event goes into A and B (same origin).
    let ev = next_event(&a, &alice, C, P, true, None);
    for l in [&a, &b] {
        let out = l.append(vec![Ok(ev.clone())]).unwrap();
        assert!(matches!(out[..], [Outcome::Accepted(_)]));
    }
    // C refuses it: its origin is another.
    let out = c.append(vec![Ok(ev.clone())]).unwrap();
    assert!(matches!(out[..], [Outcome::Rejected(_)]));
    grant(&c, &alice, C, P);
    for l in [&a, &b, &c] {
        l.advance(3);
    }
    let subj = alice.subject();
    let pa = a.prove_consent(&subj, C, P, None).unwrap();
    let pb = b.prove_consent(&subj, C, P, None).unwrap();
    let pc = c.prove_consent(&subj, C, P, None).unwrap();
    let absent_b = b.prove_consent(&subj, C, "never", None).unwrap();
    let absent_c = c.prove_consent(&subj, C, "never", None).unwrap();
    assert_eq!(state_of(&a, &pa), State::OptedIn);
    assert_eq!(state_of(&b, &pb), State::OptedIn);
    assert_eq!(state_of(&c, &pc), State::OptedIn);
    assert_eq!(state_of(&b, &absent_b), State::NoRecord);
    assert_eq!(state_of(&c, &absent_c), State::NoRecord);

    for p in [&pb, &pc, &absent_b, &absent_c] {
        let e = verify(&a, p).unwrap_err();
        assert!(
            matches!(e, ProofError::Checkpoint(NoteError::NoSignature { .. })),
            "{e}"
        );
    }
    // A's events on B's checkpoint (same origin, same event, other nonce and tree).
    let mut q = pa.clone();
    q.checkpoint = pb.checkpoint.clone();
    assert!(verify(&b, &q).is_err());
    assert!(verify(&a, &q).is_err());

    // B's signature line added to A's note is ignored under A's key (a witness-style extra
    // line) and does not verify under B's key (it signs B's body).
    let b_sig = pb.checkpoint.split("\n\n").nth(1).unwrap();
    let mut q = pa.clone();
    q.checkpoint = format!("{}{}", pa.checkpoint, b_sig);
    assert_eq!(state_of(&a, &q), State::OptedIn);
    assert!(matches!(
        verify(&b, &q),
        Err(ProofError::Checkpoint(NoteError::BadSignature))
    ));
}

/// A checkpoint signed with A's own key but naming another origin: the note opens, but the
/// events name A's origin, so the proof is refused.
#[test]
fn events_must_name_the_checkpoint_origin() {
    let a = TestLedger::new();
    add_noise(&a, 3);
    let alice = Person::new();
    grant(&a, &alice, C, P);
    let p = a.prove_consent(&alice.subject(), C, P, None).unwrap();
    let key = a.public_key();
    let cp = note::open(&p.checkpoint, &key).unwrap();
    let log_key = keyfile::read(&a.dir.join("log.key"), false).unwrap();
    let forged = Checkpoint {
        origin: "other.example/log",
        size: cp.size,
        root: cp.root,
        map_root: cp.map_root,
        time: cp.time,
    }
    .sign(&log_key);
    assert_eq!(
        note::open(&forged, &key).unwrap().origin,
        "other.example/log"
    );
    let mut q = p.clone();
    q.checkpoint = forged;
    let e = verify(&a, &q).unwrap_err();
    assert!(
        matches!(
            &e,
            ProofError::Event {
                pos: 0,
                reason: EventError::Event(Reject::Log { .. })
            }
        ),
        "{e}"
    );
}

// ---------------------------------------------------------------------------------------------
// 5. Random histories against the model.

#[derive(Debug, Clone)]
struct Op {
    /// Which of the keys.
    key: usize,
    opt_in: bool,
    /// Expiry offset after issued_at, for an opt-in.
    expires_in: Option<u64>,
    /// Start a new append batch before this op (otherwise same batch, same integrated_at).
    new_batch: bool,
}

fn op() -> impl Strategy<Value = Op> {
    (
        0..3usize,
        any::<bool>(),
        prop::option::weighted(0.3, 1..40u64),
        prop::bool::weighted(0.7),
    )
        .prop_map(|(key, opt_in, expires_in, new_batch)| Op {
            key,
            opt_in,
            expires_in: expires_in.filter(|_| opt_in),
            new_batch,
        })
}

fn run_model_case(ops: Vec<Op>, query_offsets: Vec<u64>) -> Result<(), TestCaseError> {
    let l = TestLedger::new();
    let people = [Person::new(), Person::new()];
    // Keys: (person, purpose).
    let keys = [(0usize, "p-a"), (0, "p-b"), (1, "p-a")];
    // Our own heads: (seq of next, prev hash).
    let mut heads: HashMap<usize, (u64, Hash)> = HashMap::new();
    let mut model: Vec<Vec<ModelEvent>> = vec![Vec::new(); keys.len() + 1];
    let mut batches: Vec<Vec<&Op>> = Vec::new();
    for o in &ops {
        if o.new_batch || batches.is_empty() {
            batches.push(Vec::new());
        }
        batches.last_mut().unwrap().push(o);
    }
    let mut times = Vec::new();
    for batch in batches {
        let mut evs = Vec::new();
        let mut meta = Vec::new();
        for o in batch {
            let (person, purpose) = keys[o.key];
            let who = &people[person];
            let (seq, prev) = match heads.get(&o.key) {
                None => (0, None),
                Some((s, h)) => (*s, Some(*h)),
            };
            let issued_at = l.now_ms();
            let ev = who
                .event()
                .controller(C)
                .purpose(purpose)
                .opt_in(o.opt_in)
                .seq(seq)
                .prev(prev)
                .issued_at(issued_at)
                .expires_at(o.expires_in.map(|d| issued_at + d))
                .sign();
            heads.insert(o.key, (seq + 1, ev.event_hash()));
            meta.push((o.key, ev.event.expires_at, o.opt_in));
            evs.push(Ok(ev));
        }
        let out = l.append(evs).unwrap();
        for ((k, expires_at, opt_in), o) in meta.into_iter().zip(out) {
            let Outcome::Accepted(r) = o else {
                return Err(TestCaseError::fail(format!("not accepted: {o:?}")));
            };
            model[k].push(ModelEvent {
                integrated_at: r.integrated_at,
                opt_in,
                expires_at,
            });
            times.push(r.integrated_at);
            if let Some(x) = expires_at {
                times.extend([x - 1, x]);
            }
        }
        l.advance(2);
    }
    let first = *times.iter().min().unwrap();
    let last = *times.iter().max().unwrap();
    let mut ats: Vec<u64> = times.iter().flat_map(|t| [t - 1, *t, t + 1]).collect();
    ats.extend(
        query_offsets
            .iter()
            .map(|o| first - 3 + o % (last - first + 10)),
    );
    ats.sort();
    ats.dedup();
    l.wait_past(*ats.last().unwrap());
    let key = l.public_key();
    for (k, &(person, purpose)) in keys.iter().enumerate() {
        let subj = people[person].subject();
        for &at in &ats {
            let p = l.prove_consent(&subj, C, purpose, Some(at)).unwrap();
            let v = check(&p, &key, &Question::default())
                .map_err(|e| TestCaseError::fail(format!("key {k} at {at}: {e}")))?;
            prop_assert_eq!(v.state, model_state(&model[k], at), "key {} at {}", k, at);
        }
    }
    // A key never written.
    let p = l
        .prove_consent(&people[1].subject(), C, "p-b", Some(last))
        .unwrap();
    prop_assert_eq!(
        check(&p, &key, &Question::default()).map(|v| v.state),
        Ok(State::NoRecord)
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 16,
        max_shrink_iters: 32,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn proofs_match_the_model(
        ops in prop::collection::vec(op(), 1..9),
        query_offsets in prop::collection::vec(any::<u64>(), 0..6),
    ) {
        run_model_case(ops, query_offsets)?;
    }
}

/// The checked verdict's checkpoint is the proof's own, so callers can read its origin.
#[test]
fn verdict_reports_the_checkpoint() {
    let l = TestLedger::new();
    let alice = Person::new();
    grant(&l, &alice, C, P);
    let p = l.prove_consent(&alice.subject(), C, P, None).unwrap();
    let v = verify(&l, &p).unwrap();
    assert_eq!(v.checkpoint.note, p.checkpoint);
    assert_eq!(v.checkpoint.origin, ORIGIN);
    assert!(v.checkpoint.time >= p.at);
    assert_eq!(v.checkpoint.size, l.size());
    let _: &VerifyingKey = &l.public_key();
}

// ---------------------------------------------------------------------------------------------
// Found while writing these tests.

/// Runs `f` on 8 threads, `n` times each, and returns the errors.
fn on_threads(n: usize, f: impl Fn() -> Result<(), String> + Sync) -> Vec<String> {
    std::thread::scope(|s| {
        let workers: Vec<_> = (0..8)
            .map(|_| s.spawn(|| (0..n).filter_map(|_| f().err()).collect::<Vec<_>>()))
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    })
}

/// `Ledger::init` used to drop its sled store and reopen it at once (`Ledger::open`); sled 0.34
/// releases its exclusive lock on `db/db` only when its background threads let go of the file,
/// so under parallel load the reopen failed now and then with `could not acquire lock on
/// ".../db/db": WouldBlock` (about 1 in 500 inits on 8 threads). The working tree now builds
/// the ledger from the store it opened; this guards against the race coming back.
#[test]
fn init_never_fails_on_the_sled_lock() {
    let failures = on_threads(25, || {
        let dir = tempfile::tempdir().unwrap();
        Ledger::init(
            &dir.path().join("ledger"),
            ORIGIN,
            consentlog::testing::engine_from_env().as_str(),
        )
        .map(drop)
        .map_err(|e| e.to_string())
    });
    assert!(
        failures.is_empty(),
        "{} of 200 inits failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
}

/// Closing a ledger and opening it again in the same process races with sled's lock release
/// in the same way. `SledStore::open` retries on `sled::Error::Io(e)` with
/// `e.kind() == WouldBlock`, but sled 0.34.7 reports the lock failure as
/// `io::Error::new(ErrorKind::Other, "could not acquire lock on ...: ... WouldBlock ...")`
/// (sled src/config.rs), so the retry never fires and `Ledger::open` fails.
#[test]
fn reopen_never_fails_on_the_sled_lock() {
    let failures = on_threads(40, || {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger");
        let l = match Ledger::init(
            &path,
            ORIGIN,
            consentlog::testing::engine_from_env().as_str(),
        ) {
            Ok(l) => l,
            Err(e) => return Err(format!("init: {e}")),
        };
        l.checkpoint().map_err(|e| e.to_string())?;
        drop(l);
        Ledger::open(&path)
            .map(drop)
            .map_err(|e| format!("open: {e}"))
    });
    assert!(
        failures.is_empty(),
        "{} of 320 reopens failed, e.g. {:?}",
        failures.len(),
        failures.first()
    );
}
