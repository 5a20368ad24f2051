//! The append rules, one test per rule: each rejected event names its rule and changes
//! nothing (size, head, checkpoint roots, every stored table, and the same after reopening);
//! duplicates get their existing receipt; the events of a batch are judged one by one.

use std::collections::BTreeMap;
use std::sync::{Arc, Barrier};

use crate::support::ledger::*;
use crate::support::*;
use consentlog::core::codec::{self, DecodeError};
use consentlog::core::event::{ConsentEvent, EventJson, SignedEvent};
use consentlog::core::hash::to_hex;
use consentlog::core::hash::JsonError;
use consentlog::core::receipt::Receipt;
use consentlog::core::reject::{MalformedEvent, Reject};
use consentlog::ledger::{Outcome, CHUNK};

/// The group order L, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

/// The signature with S replaced by S + L (same R): verifies under lax Ed25519, not strictly.
fn malleate(sig: &[u8; 64]) -> [u8; 64] {
    let mut out = *sig;
    let mut carry = 0u16;
    for i in 0..32 {
        let s = sig[32 + i] as u16 + L[i] as u16 + carry;
        out[32 + i] = s as u8;
        carry = s >> 8;
    }
    assert_eq!(carry, 0, "S + L fits in 256 bits");
    out
}

fn accepted(o: &Outcome) -> Receipt {
    match o {
        Outcome::Accepted(r) => r.clone(),
        other => panic!("expected Accepted, got {other:?}"),
    }
}

fn rejected(o: &Outcome) -> Reject {
    match o {
        Outcome::Rejected(r) => r.clone(),
        other => panic!("expected Rejected, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// Baseline

#[test]
fn valid_chain_is_accepted_with_checkable_receipts() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    // Leaf 0 is the genesis leaf and leaf 1 init's map leaf: events start at FIRST.
    let r0 = accept(&l, e0.clone());
    assert_eq!(r0.index, FIRST);
    let e1 = p.next(&e0, 0);
    let r1 = accept(&l, e1.clone());
    assert_eq!(r1.index, FIRST + 1);
    let e2 = p.next(&e1, 1);
    let r2 = accept(&l, e2.clone());
    assert_eq!(r2.index, FIRST + 2);
    assert!(
        r0.leaf.integrated_at <= r1.leaf.integrated_at
            && r1.leaf.integrated_at <= r2.leaf.integrated_at
    );
    assert_eq!(l.size(), FIRST + 3);
    let head = l.head(&key_of(&l, &e0.event)).unwrap().expect("head");
    assert_eq!(
        (head.index, head.seq, head.event_hash),
        (FIRST + 2, 2, e2.event_hash())
    );
    // Each event leaf names its key's previous one, publicly.
    let leaf = l.event_leaf(FIRST + 2).unwrap().unwrap();
    assert_eq!((leaf.prev, leaf.seq), (Some(FIRST + 1), 2));
    // A receipt under another key does not check.
    let other = consentlog::keyfile::generate().verifying_key();
    assert!(r0.check(&other).is_err());
    // A tampered receipt does not check.
    let mut bad = r1.clone();
    bad.leaf.integrated_at += 1;
    assert!(bad.check(&l.public_key()).is_err());
    drop(l);
    let l = open_ledger(&dir);
    for r in [r0, r1, r2] {
        check_receipt(&l, &r);
    }
}

// ---------------------------------------------------------------------------------------------
// One test per rule

#[test]
fn version_other_than_2_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    let key = p.event().state_key(&l);
    // Format v1 events (version 1) are not accepted.
    for v in [0u8, 1, 3, 255] {
        let ev = p.event().version(v).sign();
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "version", &[&format!("version {v}")]);
        assert_eq!(r, Reject::Version(v));
        l = l2;
    }
    accept(&l, p.first());
}

#[test]
fn reserved_kinds_and_signers_are_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    let key = p.event().state_key(&l);
    for k in [1u8, 2, 255] {
        let ev = p.sign(ConsentEvent {
            kind: k,
            ..p.event().build()
        });
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "kind", &["reserved"]);
        assert_eq!(r, Reject::Kind(k));
        let ev = p.sign(ConsentEvent {
            signer: k,
            ..p.event().build()
        });
        let (l3, r) = expect_reject(l2, &dir, &key, Ok(ev), "signer", &["reserved"]);
        assert_eq!(r, Reject::Signer(k));
        l = l3;
    }
    // The JSON line names them; another spelling is refused as malformed.
    let line = event_json(&p.first());
    for (field, bad) in [("kind", "erasure"), ("signer", "controller")] {
        let edited = line.replace(
            &format!(
                "\"{field}\":\"{}\"",
                if field == "kind" {
                    "decision"
                } else {
                    "subject"
                }
            ),
            &format!("\"{field}\":\"{bad}\""),
        );
        assert_ne!(edited, line);
        let r = EventJson::parse(&edited).unwrap_err();
        assert_eq!(r.code(), field, "{r}");
    }
    accept(&l, p.first());
}

#[test]
fn log_other_than_origin_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    for log in [
        "other.example/log",
        "",
        "test.example/log/",
        "test.example/lo",
        "TEST.example/log",
        " test.example/log",
    ] {
        let ev = p.event().log(log).sign();
        let key = key_of(&l, &ev.event);
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "log", &[ORIGIN]);
        assert_eq!(
            r,
            Reject::Log {
                got: log.to_string(),
                want: ORIGIN.to_string()
            }
        );
        assert!(r.to_string().contains(&format!("{log:?}")), "{r}");
        l = l2;
    }
    accept(&l, p.first());
}

fn bad_names() -> Vec<(String, &'static str)> {
    vec![
        (String::new(), "got 0"),
        ("a".repeat(129), "got 129"),
        ("a".repeat(1000), "got 1000"),
        ("Example.com".into(), "'E'"),
        ("example com".into(), "' '"),
        ("exämple".into(), "'ä'"),
        ("a*b".into(), "'*'"),
        ("a\nb".into(), "'\\n'"),
        ("a\0".into(), "'\\0'"),
        ("a+b".into(), "'+'"),
        ("a@b".into(), "'@'"),
        ("\u{212a}".into(), "'\u{212a}'"), // Kelvin sign: lowercases to 'k'
    ]
}

fn good_names() -> Vec<String> {
    vec![
        "a".into(),
        "a".repeat(128),
        "abcdefghijklmnopqrstuvwxyz0123456789._:/-".into(),
        "-".into(),
        "https://example.com/x".into(),
    ]
}

#[test]
fn controller_outside_charset_or_length_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    for (c, why) in bad_names() {
        let ev = p.event().controller(&c).sign();
        let key = key_of(&l, &ev.event);
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "controller", &["controller", why]);
        assert!(matches!(r, Reject::Controller(_)), "{r:?}");
        l = l2;
    }
    for c in good_names() {
        let ev = p.event().controller(&c).sign();
        accept(&l, ev);
    }
}

#[test]
fn purpose_outside_charset_or_length_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    for (c, why) in bad_names() {
        let ev = p.event().purpose(&c).sign();
        let key = key_of(&l, &ev.event);
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "purpose", &["purpose", why]);
        assert!(matches!(r, Reject::Purpose(_)), "{r:?}");
        l = l2;
    }
    for c in good_names() {
        let ev = p.event().purpose(&c).sign();
        accept(&l, ev);
    }
}

#[test]
fn decision_byte_other_than_0_or_1_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    let key = p.event().state_key(&l);
    for d in [2u8, 3, 0x80, 255] {
        let ev = p.event().decision(d).sign();
        let (l2, r) = expect_reject(
            l,
            &dir,
            &key,
            Ok(ev),
            "decision",
            &[&format!("decision byte {d}")],
        );
        assert_eq!(r, Reject::Decision(d));
        l = l2;
    }
    // Both known decisions are accepted.
    let e0 = p.event().decision(0).sign();
    accept(&l, e0.clone());
    accept(&l, p.next(&e0, 1));
}

#[test]
fn weak_small_order_key_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    let mut lax_valid = [0u8; 64];
    lax_valid[0] = 1; // R = identity, S = 0: R == [S]B - [k]A for A of small order and k = 8m
    for subject in small_order_points() {
        let ev = p.event().subject(subject).build();
        let key = key_of(&l, &ev);
        for sig in [lax_valid, [7u8; 64], [0u8; 64]] {
            let signed = SignedEvent::from_parts(ev.clone(), sig);
            let (l2, r) = expect_reject(l, &dir, &key, Ok(signed), "weak_key", &["weak"]);
            assert_eq!(r, Reject::WeakKey, "subject {}", to_hex(&subject));
            l = l2;
        }
    }
    // The identity key with R = identity, S = 0 passes a lax (cofactored) check of the
    // equation for any message: a weak key would let anyone speak for that "person".
    let identity = small_order_points()[0];
    let vk = ed25519_dalek::VerifyingKey::from_bytes(&identity).unwrap();
    assert!(vk.is_weak());
    let msg = p.event().subject(identity).build().signing_message();
    assert!(
        ed25519_dalek::Verifier::verify(
            &vk,
            &msg,
            &ed25519_dalek::Signature::from_bytes(&lax_valid)
        )
        .is_ok(),
        "sanity: the forged signature verifies laxly"
    );
}

#[test]
fn invalid_point_as_key_is_rejected_under_weak_key_rule() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    // y = 2 is not on the curve (no x with x^2 = (y^2-1)/(dy^2+1)).
    let mut subject = [0u8; 32];
    subject[0] = 2;
    assert!(ed25519_dalek::VerifyingKey::from_bytes(&subject).is_err());
    let ev = p.event().subject(subject).build();
    let key = key_of(&l, &ev);
    let (_l, r) = expect_reject(
        l,
        &dir,
        &key,
        Ok(SignedEvent::from_parts(ev, [0; 64])),
        "weak_key",
        &["subject"],
    );
    assert_eq!(r, Reject::BadKey);
}

#[test]
fn malleated_signature_s_plus_l_is_rejected() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let good = p.first();
    let key = key_of(&l, &good.event);
    let bad_sig = malleate(&good.signature);
    let bad = SignedEvent::from_parts(good.event.clone(), bad_sig);
    assert_ne!(bad.as_bytes(), good.as_bytes());
    // Sanity: S + L is the classic malleation that only a strict check refuses.
    let (l, r) = expect_reject(l, &dir, &key, Ok(bad.clone()), "signature", &["signature"]);
    assert_eq!(r, Reject::Signature);
    // With the original logged, the malleated copy is neither a duplicate nor a seq conflict:
    // it fails on its signature, which is checked first.
    let r0 = accept(&l, good.clone());
    let (l, r) = expect_reject(l, &dir, &key, Ok(bad), "signature", &["signature"]);
    assert_eq!(r, Reject::Signature);
    match append_one(&l, good) {
        Outcome::Duplicate(r) => assert_eq!(r, r0),
        other => panic!("expected Duplicate, got {other:?}"),
    }
}

#[test]
fn wrong_signature_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    let other = Person::new();
    let good = p.first();
    let key = key_of(&l, &good.event);
    let mut flipped_r = good.signature;
    flipped_r[0] ^= 1;
    let mut flipped_s = good.signature;
    flipped_s[40] ^= 0x10;
    let by_other = {
        use ed25519_dalek::Signer;
        other.key.sign(&good.event.signing_message()).to_bytes()
    };
    let no_domain = {
        use ed25519_dalek::Signer;
        p.key.sign(&good.event.to_bytes()).to_bytes()
    };
    let mut changed = good.event.clone();
    changed.issued_at += 1;
    let cases = vec![
        SignedEvent::from_parts(good.event.clone(), flipped_r),
        SignedEvent::from_parts(good.event.clone(), flipped_s),
        SignedEvent::from_parts(good.event.clone(), by_other),
        SignedEvent::from_parts(good.event.clone(), no_domain),
        SignedEvent::from_parts(good.event.clone(), [0u8; 64]),
        SignedEvent::from_parts(changed, good.signature),
    ];
    for ev in cases {
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "signature", &["signature"]);
        assert_eq!(r, Reject::Signature);
        l = l2;
    }
    accept(&l, good);
}

#[test]
fn seq_not_continuing_the_head_is_rejected() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    let key = key_of(&l, &e0.event);

    // Too high for a first event.
    let ev = p.event().seq(1).sign();
    let (l, r) = expect_reject(l, &dir, &key, Ok(ev), "seq", &["seq 1", "expected 0"]);
    assert_eq!(
        r,
        Reject::Seq {
            expected: 0,
            got: 1
        }
    );
    assert!(r.is_conflict());

    accept(&l, e0.clone());
    // Too high after the first: skips seq 1.
    let ev = p.next_event(&e0, 0).seq(2).sign();
    let (l, r) = expect_reject(l, &dir, &key, Ok(ev), "seq", &["seq 2", "expected 1"]);
    assert_eq!(
        r,
        Reject::Seq {
            expected: 1,
            got: 2
        }
    );
    let ev = p.next_event(&e0, 0).seq(u64::MAX).sign();
    let (l, r) = expect_reject(l, &dir, &key, Ok(ev), "seq", &["expected 1"]);
    assert_eq!(
        r,
        Reject::Seq {
            expected: 1,
            got: u64::MAX
        }
    );

    let e1 = p.next(&e0, 0);
    accept(&l, e1.clone());
    // Too low: another event at seq 1 continuing e0 (a fork of the chain).
    let fork = p
        .next_event(&e0, 1)
        .issued_at(e1.event.issued_at + 1)
        .sign();
    assert_ne!(fork.event_hash(), e1.event_hash());
    let (l, r) = expect_reject(l, &dir, &key, Ok(fork), "seq", &["seq 1", "expected 2"]);
    assert_eq!(
        r,
        Reject::Seq {
            expected: 2,
            got: 1
        }
    );

    // Replayed seq 0 with new content.
    let mut again = e0.event.clone();
    again.issued_at += 7;
    let again = p.sign(again);
    let (l, r) = expect_reject(l, &dir, &key, Ok(again), "seq", &["seq 0", "expected 2"]);
    assert_eq!(
        r,
        Reject::Seq {
            expected: 2,
            got: 0
        }
    );

    // The head is unmoved: seq 2 continuing e1 is still accepted.
    accept(&l, p.next(&e1, 1));
}

#[test]
fn prev_not_the_heads_event_hash_is_rejected() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    let key = key_of(&l, &e0.event);

    // prev present on seq 0.
    let ev = p.event().prev(Some([9; 32])).sign();
    let (l, r) = expect_reject(
        l,
        &dir,
        &key,
        Ok(ev),
        "prev",
        &["prev", "none", &to_hex(&[9; 32])],
    );
    assert!(r.is_conflict());

    accept(&l, e0.clone());
    let want = to_hex(&e0.event_hash());
    // prev missing on seq 1.
    let ev = p.next_event(&e0, 0).prev(None).sign();
    let (l, r) = expect_reject(l, &dir, &key, Ok(ev), "prev", &["prev none", &want]);
    assert_eq!(
        r,
        Reject::Prev {
            expected: want.clone(),
            got: "none".into()
        }
    );
    // prev wrong on seq 1: random, the hash of the unsigned event bytes, another person's.
    let q = Person::new();
    let q0 = q.first();
    let wrongs = [
        [0u8; 32],
        *blake3::hash(&e0.event.to_bytes()).as_bytes(),
        q0.event_hash(),
        key_of(&l, &e0.event),
    ];
    let mut l = l;
    for w in wrongs {
        let ev = p.next_event(&e0, 0).prev(Some(w)).sign();
        let (l2, r) = expect_reject(l, &dir, &key, Ok(ev), "prev", &[&to_hex(&w), &want]);
        assert_eq!(
            r,
            Reject::Prev {
                expected: want.clone(),
                got: to_hex(&w)
            }
        );
        l = l2;
    }
    accept(&l, p.next(&e0, 0));
}

#[test]
fn issued_at_more_than_5_minutes_off_is_rejected() {
    let (_tmp, dir, mut l) = new_ledger();
    let p = Person::new();
    let key = p.event().state_key(&l);
    let t = l.now_ms();
    for issued_at in [
        t - 6 * MINUTE_MS,
        t + 6 * MINUTE_MS,
        t - 5 * MINUTE_MS - 2_000,
        t + 5 * MINUTE_MS + 2_000,
        0,
        u64::MAX,
    ] {
        let ev = p.event().issued_at(issued_at).sign();
        let (l2, r) = expect_reject(
            l,
            &dir,
            &key,
            Ok(ev),
            "issued_at",
            &[&format!("({issued_at})"), "issued_at", "5 minutes"],
        );
        match r {
            Reject::IssuedAt {
                issued_at: got,
                now,
            } => {
                assert_eq!(got, issued_at);
                assert!(now >= t && now <= now_ms(), "now {now} is the ledger clock");
            }
            other => panic!("{other:?}"),
        }
        l = l2;
    }
    // 4 minutes either way, and just inside 5 minutes, are accepted.
    let t = l.now_ms();
    let e0 = p.event().issued_at(t - 4 * MINUTE_MS).sign();
    accept(&l, e0.clone());
    let e1 = p.next_event(&e0, 0).issued_at(t + 4 * MINUTE_MS).sign();
    accept(&l, e1.clone());
    let e2 = p
        .next_event(&e1, 1)
        .issued_at(t - 5 * MINUTE_MS + 3_000)
        .sign();
    accept(&l, e2.clone());
    let e3 = p
        .next_event(&e2, 0)
        .issued_at(t + 5 * MINUTE_MS - 3_000)
        .sign();
    accept(&l, e3);
}

#[test]
fn expires_at_on_opt_out_or_not_after_issued_at_is_rejected() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let key = p.event().state_key(&l);
    let base = p.event();
    let issued_at = base.ev.issued_at;
    // On an opt-out, even a sensible future time.
    let ev = base
        .clone()
        .decision(0)
        .expires_at(Some(issued_at + 60 * MINUTE_MS))
        .sign();
    let (l, r) = expect_reject(
        l,
        &dir,
        &key,
        Ok(ev),
        "expires_at",
        &["expires_at", "opt-in"],
    );
    assert!(matches!(r, Reject::ExpiresAt(_)));
    let mut l = l;
    // On an opt-in: equal to, or before, issued_at.
    for x in [issued_at, issued_at - 1, 0] {
        let ev = base.clone().expires_at(Some(x)).sign();
        let (l2, _) = expect_reject(
            l,
            &dir,
            &key,
            Ok(ev),
            "expires_at",
            &[&format!("({x})"), "expires_at", "not after issued_at"],
        );
        l = l2;
    }
    // One millisecond after issued_at is fine on an opt-in; an opt-out without it is fine.
    let e0 = base.expires_at(Some(issued_at + 1)).sign();
    accept(&l, e0.clone());
    accept(&l, p.next(&e0, 0));
}

#[test]
fn first_failing_rule_is_reported_in_spec_order() {
    let (_tmp, _dir, l) = new_ledger();
    let p = Person::new();
    let t = now_ms();
    let mut ev = p
        .event()
        .version(3)
        .log("other.example/log")
        .subject(small_order_points()[0])
        .controller("Bad Controller")
        .purpose("")
        .decision(2)
        .seq(1)
        .prev(Some([1; 32]))
        .issued_at(t - 10 * MINUTE_MS)
        .expires_at(Some(t - 20 * MINUTE_MS))
        .build();
    ev.kind = 1;
    ev.signer = 1;
    let mut sig = [3u8; 64];
    #[allow(clippy::type_complexity)]
    let steps: Vec<(&str, Box<dyn Fn(&mut ConsentEvent, &mut [u8; 64])>)> = vec![
        ("version", Box::new(|e, _| e.version = 2)),
        ("log", Box::new(|e, _| e.log = ORIGIN.into())),
        ("kind", Box::new(|e, _| e.kind = 0)),
        ("signer", Box::new(|e, _| e.signer = 0)),
        (
            "controller",
            Box::new(|e, _| e.controller = CONTROLLER.into()),
        ),
        ("purpose", Box::new(|e, _| e.purpose = PURPOSE.into())),
        ("decision", Box::new(|e, _| e.decision = 1)),
        ("weak_key", Box::new(|e, _| e.subject = p.subject())),
        ("signature", Box::new(|_, _| {})),
        ("seq", Box::new(|e, _| e.seq = 0)),
        ("prev", Box::new(|e, _| e.prev = None)),
        ("issued_at", Box::new(|e, _| e.issued_at = now_ms())),
        ("expires_at", Box::new(|e, _| e.expires_at = None)),
    ];
    for (code, fix) in steps {
        let signed =
            if code == "seq" || code == "prev" || code == "issued_at" || code == "expires_at" {
                p.sign(ev.clone())
            } else {
                SignedEvent::from_parts(ev.clone(), sig)
            };
        let r = rejected(&append_one(&l, signed));
        assert_eq!(r.code(), code, "{r}");
        fix(&mut ev, &mut sig);
    }
    assert_eq!(l.size(), FIRST);
    accept(&l, p.sign(ev));
}

// ---------------------------------------------------------------------------------------------
// Strict decoding

fn json_of(ev: &SignedEvent) -> serde_json::Value {
    serde_json::to_value(EventJson::from(ev)).unwrap()
}

#[test]
fn json_lines_parse_strictly_and_malformed_ones_are_rejected() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let good = p
        .event()
        .prev(None)
        .expires_at(Some(now_ms() + MINUTE_MS))
        .notice(Some([0xab; 32]))
        .sign();
    let key = key_of(&l, &good.event);
    let line = serde_json::to_string(&EventJson::from(&good)).unwrap();
    let parsed = EventJson::parse(&line).expect("round trip");
    assert_eq!(parsed.as_bytes(), good.as_bytes());

    let obj = json_of(&good);
    let edit = |f: &dyn Fn(&mut serde_json::Map<String, serde_json::Value>)| -> String {
        let mut v = obj.clone();
        f(v.as_object_mut().unwrap());
        serde_json::to_string(&v).unwrap()
    };
    let subj = to_hex(&good.event.subject);
    let sig = to_hex(&good.signature);
    let malformed: Vec<(String, &str)> = vec![
        (
            edit(&|m| {
                m.insert("extra".into(), 1.into());
            }),
            "unknown field",
        ),
        (
            edit(&|m| {
                m.insert("subject".into(), subj.to_uppercase().into());
            }),
            "invalid character",
        ),
        (
            edit(&|m| {
                m.insert("signature".into(), sig[1..].into());
            }),
            "odd length",
        ),
        (
            edit(&|m| {
                m.insert("signature".into(), sig[2..].into());
            }),
            "expected 64",
        ),
        (
            edit(&|m| {
                m.insert("prev".into(), format!("0x{}", &subj[2..]).into());
            }),
            "invalid character",
        ),
        (
            edit(&|m| {
                m.insert("notice".into(), "".into());
            }),
            "expected 32",
        ),
        (
            edit(&|m| {
                m.remove("seq");
            }),
            "missing field",
        ),
        (
            edit(&|m| {
                m.insert("seq".into(), (-1).into());
            }),
            "invalid value",
        ),
        (
            edit(&|m| {
                m.insert("seq".into(), "0".into());
            }),
            "invalid type",
        ),
        (
            edit(&|m| {
                m.insert("seq".into(), 0.5.into());
            }),
            "invalid type",
        ),
        (
            edit(&|m| {
                m.insert("version".into(), 256.into());
            }),
            "invalid value",
        ),
        (
            edit(&|m| {
                m.insert("subject".into(), serde_json::Value::Null);
            }),
            "invalid type",
        ),
        (
            line.replace("\"seq\":0", "\"seq\":0,\"seq\":0"),
            "duplicate field",
        ),
        (format!("{line} x"), "trailing characters"),
        ("".into(), "EOF"),
        ("not json".into(), "expected"),
        ("[]".into(), "got an array"),
        ("{}".into(), "missing field"),
    ];
    let bad_decision: Vec<String> = ["yes", "Opt-In", "optin", "1", "opt-in ", ""]
        .iter()
        .map(|d| {
            edit(&|m| {
                m.insert("decision".into(), (*d).into());
            })
        })
        .collect();

    let before = observe(&l, &key);
    let mut batch = Vec::new();
    for (text, _) in &malformed {
        batch.push(EventJson::parse(text));
    }
    for text in &bad_decision {
        batch.push(EventJson::parse(text));
    }
    let out = l.append(batch).unwrap();
    for ((text, word), o) in malformed.iter().zip(&out) {
        let r = rejected(o);
        assert!(matches!(r, Reject::Malformed(_)), "{text}: {r:?}");
        assert_eq!(r.code(), "malformed");
        assert!(
            r.to_string().contains(word),
            "{text}: message {r} does not mention {word:?}"
        );
    }
    for ((text, d), o) in bad_decision
        .iter()
        .zip(["yes", "Opt-In", "optin", "1", "opt-in ", ""])
        .zip(&out[malformed.len()..])
    {
        let r = rejected(o);
        assert_eq!(r, Reject::DecisionName(d.to_string()), "{text}");
        assert_eq!(r.code(), "decision");
        assert!(r.to_string().contains(&format!("{d:?}")), "{r}");
    }
    let l = assert_unchanged(l, &dir, &key, &before);

    // The JSON spelling does not matter, only the event bytes: reordered keys and spaces
    // parse to the same event, and a resubmission is a duplicate.
    let r0 = accept(&l, parsed);
    let mut pairs: Vec<(String, serde_json::Value)> =
        obj.as_object().unwrap().clone().into_iter().collect();
    pairs.reverse();
    let spaced = format!(
        "{{ {} }}",
        pairs
            .iter()
            .map(|(k, v)| format!("{:?} : {}", k, v))
            .collect::<Vec<_>>()
            .join(" , ")
    );
    let again = EventJson::parse(&spaced).expect("reordered JSON parses");
    match append_one(&l, again) {
        Outcome::Duplicate(r) => assert_eq!(r, r0),
        other => panic!("expected Duplicate, got {other:?}"),
    }
}

/// Offset of the `prev` Option tag in bytes(ConsentEvent).
fn prev_tag_offset(e: &ConsentEvent) -> usize {
    1 + 1 + 1 + 8 + e.log.len() + 32 + 8 + e.controller.len() + 8 + e.purpose.len() + 1 + 8
}

#[test]
fn binary_events_decode_strictly() {
    let p = Person::new();
    let ev = p.event().expires_at(Some(now_ms() + MINUTE_MS)).sign();
    let bytes = ev.as_bytes().to_vec();
    assert_eq!(SignedEvent::decode(&bytes).unwrap(), ev);

    // Trailing bytes.
    for extra in [&[0u8][..], &[0, 0, 0], &[1; 64]] {
        let mut b = bytes.clone();
        b.extend_from_slice(extra);
        assert_eq!(
            SignedEvent::decode(&b),
            Err(DecodeError::TrailingBytes(extra.len())),
            "{} trailing bytes",
            extra.len()
        );
    }
    // Every truncation.
    for n in 0..bytes.len() {
        let r = SignedEvent::decode(&bytes[..n]);
        assert!(r.is_err(), "truncated to {n} bytes decoded: {r:?}");
        if n < 64 {
            assert!(
                matches!(&r, Err(DecodeError::SignedEventTooShort { len }) if *len == n),
                "{r:?}"
            );
        }
    }
    // Option tags other than 0 and 1 (prev, expires_at, notice).
    let prev_at = prev_tag_offset(&ev.event);
    assert_eq!(bytes[prev_at], 0, "prev is None");
    let exp_at = prev_at + 1 + 8;
    assert_eq!(bytes[exp_at], 1, "expires_at is Some");
    let notice_at = exp_at + 1 + 8;
    assert_eq!(bytes[notice_at], 0, "notice is None");
    assert_eq!(notice_at + 1 + 64, bytes.len());
    for at in [prev_at, exp_at, notice_at] {
        for tag in [2u8, 3, 0xff] {
            let mut b = bytes.clone();
            b[at] = tag;
            let r = SignedEvent::decode(&b);
            assert!(
                matches!(r, Err(DecodeError::Malformed(_))),
                "tag {tag} at {at}: {r:?}"
            );
        }
    }
    // Invalid UTF-8 in a string, and a length prefix far beyond the input.
    let ctl_at = 1 + 8 + ev.event.log.len() + 32 + 8;
    let mut b = bytes.clone();
    b[ctl_at] = 0xff;
    assert!(matches!(
        SignedEvent::decode(&b),
        Err(DecodeError::Malformed(_))
    ));
    let mut b = bytes.clone();
    b[1..9].copy_from_slice(&u64::MAX.to_le_bytes());
    assert!(matches!(
        SignedEvent::decode(&b),
        Err(DecodeError::Malformed(_))
    ));
    let mut b = bytes.clone();
    b[1..9].copy_from_slice(&5000u64.to_le_bytes());
    assert!(matches!(
        SignedEvent::decode(&b),
        Err(DecodeError::Malformed(_))
    ));

    // Canonical: every single-byte change either fails to decode or decodes to an event
    // whose own encoding is exactly the changed bytes (one event, one byte string).
    let mut decoded = 0;
    for i in 0..bytes.len() {
        for v in 0..=255u8 {
            if v == bytes[i] {
                continue;
            }
            let mut b = bytes.clone();
            b[i] = v;
            if let Ok(e) = SignedEvent::decode(&b) {
                decoded += 1;
                assert_eq!(e.as_bytes(), &b[..]);
                let again = SignedEvent::from_parts(e.event.clone(), e.signature);
                assert_eq!(again.as_bytes(), &b[..], "byte {i} = {v} is not canonical");
            }
        }
    }
    assert!(decoded > 0);
}

#[test]
fn codec_refuses_non_canonical_encodings() {
    // The codec's re-encoding check, on a type where decoding is not injective: a map whose
    // keys are out of order (or repeated) decodes but re-encodes differently.
    let mut m = BTreeMap::new();
    m.insert(1u8, 10u8);
    m.insert(2u8, 20u8);
    let canonical = codec::encode(&m);
    assert_eq!(codec::decode::<BTreeMap<u8, u8>>(&canonical).unwrap(), m);
    // len u64 = 2, then (2, 20), (1, 10): swapped order.
    let mut swapped = 2u64.to_le_bytes().to_vec();
    swapped.extend_from_slice(&[2, 20, 1, 10]);
    assert_eq!(
        codec::decode::<BTreeMap<u8, u8>>(&swapped),
        Err(DecodeError::NonCanonical)
    );
    let mut repeated = 2u64.to_le_bytes().to_vec();
    repeated.extend_from_slice(&[1, 10, 1, 10]);
    assert_eq!(
        codec::decode::<BTreeMap<u8, u8>>(&repeated),
        Err(DecodeError::NonCanonical)
    );
    // A bool is 0 or 1 only; trailing bytes are refused.
    assert!(codec::decode::<bool>(&[2]).is_err());
    assert_eq!(
        codec::decode::<u8>(&[1, 0]),
        Err(DecodeError::TrailingBytes(1))
    );
}

// ---------------------------------------------------------------------------------------------
// Duplicates

#[test]
fn resubmitted_event_is_a_duplicate_with_the_identical_receipt() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    let r0 = accept(&l, e0.clone());
    let e1 = p.next(&e0, 0);
    let r1 = accept(&l, e1.clone());
    let size = l.size();
    let fp = store_fingerprint(&l);

    // Ed25519 is deterministic: signing the same content again gives the same bytes.
    let resigned = p.sign(e0.event.clone());
    assert_eq!(resigned.as_bytes(), e0.as_bytes());
    for (ev, r) in [(e0.clone(), &r0), (resigned, &r0), (e1.clone(), &r1)] {
        match append_one(&l, ev) {
            // The same leaf and opening, under a checkpoint of the log as it is now.
            Outcome::Duplicate(d) => {
                assert_eq!((d.index, d.leaf, &d.opening), (r.index, r.leaf, &r.opening));
                assert_eq!(
                    d.anchor.checkpoint,
                    l.receipt(r.index).unwrap().anchor.checkpoint
                );
                check_receipt(&l, &d);
            }
            other => panic!("expected Duplicate, got {other:?}"),
        }
    }
    // e0 is a duplicate although the head has moved past it (not a seq conflict).
    assert_eq!(l.size(), size);
    assert_eq!(store_fingerprint(&l), fp);

    // The same after reopening.
    drop(l);
    let l = open_ledger(&dir);
    match append_one(&l, e0.clone()) {
        Outcome::Duplicate(d) => {
            assert_same_entry(&d, &r0);
            assert!(d.check(&l.public_key()).is_ok());
        }
        other => panic!("expected Duplicate, got {other:?}"),
    }
    assert_eq!(l.size(), size);
    assert_eq!(store_fingerprint(&l), fp);
}

#[test]
fn duplicate_within_one_batch_gets_the_same_receipt() {
    let (_tmp, _dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    let e1 = p.next(&e0, 0);
    let out = l
        .append(vec![
            Ok(e0.clone()),
            Ok(e0.clone()),
            Ok(e1.clone()),
            Ok(e0.clone()),
            Ok(e1.clone()),
        ])
        .unwrap();
    let receipt = |o: &Outcome| match o {
        Outcome::Accepted(r) | Outcome::Duplicate(r) => r.clone(),
        Outcome::Rejected(r) => panic!("rejected: {r}"),
    };
    let r0 = accepted(&out[0]);
    let r1 = receipt(&out[2]);
    assert_eq!(receipt(&out[1]), r0);
    assert_eq!(receipt(&out[3]), r0);
    assert_eq!(receipt(&out[4]), r1);
    assert_eq!((r0.index, r1.index), (FIRST, FIRST + 1));
    assert_eq!(l.size(), FIRST + 2, "a repeat is logged once");
    check_receipt(&l, &r0);
    check_receipt(&l, &r1);
}

#[test]
fn duplicate_within_one_batch_is_reported_as_duplicate() {
    let (_tmp, _dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    let out = l.append(vec![Ok(e0.clone()), Ok(e0.clone())]).unwrap();
    let r0 = accepted(&out[0]);
    match &out[1] {
        Outcome::Duplicate(r) => assert_eq!(*r, r0),
        other => panic!("the repeat within the batch should be Duplicate, got {other:?}"),
    }
}

#[test]
fn same_seq_with_different_content_is_a_seq_conflict() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let e0 = p.first();
    let key = key_of(&l, &e0.event);
    accept(&l, e0.clone());
    // A second valid event with the same seq (and prev None), differing only in issued_at.
    let mut twin = e0.event.clone();
    twin.issued_at += 1;
    let twin = p.sign(twin);
    assert!(twin.check_self().is_ok());
    assert_ne!(twin.signature, e0.signature);
    let (l, r) = expect_reject(
        l,
        &dir,
        &key,
        Ok(twin.clone()),
        "seq",
        &["seq 0", "expected 1"],
    );
    assert!(r.is_conflict());
    // Also in the same batch as the original on a fresh key: first wins, twin conflicts.
    let q = Person::new();
    let a = q.first();
    let mut b = a.event.clone();
    b.decision = 0;
    let b = q.sign(b);
    let out = l.append(vec![Ok(a.clone()), Ok(b)]).unwrap();
    accepted(&out[0]);
    assert_eq!(
        rejected(&out[1]),
        Reject::Seq {
            expected: 1,
            got: 0
        }
    );
}

#[test]
fn concurrent_submissions_of_one_event_log_it_once() {
    let (_tmp, _dir, l) = new_ledger();
    let l = Arc::new(l);
    for _ in 0..5 {
        let p = Person::new();
        let ev = p.first();
        // A twin with the same seq: at most one of the two chains' first events wins.
        let mut twin = ev.event.clone();
        twin.issued_at += 1;
        let twin = p.sign(twin);
        let barrier = Arc::new(Barrier::new(4));
        let handles: Vec<_> = (0..4)
            .map(|i| {
                let l = l.clone();
                let ev = if i == 3 { twin.clone() } else { ev.clone() };
                let barrier = barrier.clone();
                std::thread::spawn(move || {
                    barrier.wait();
                    append_one(&l, ev)
                })
            })
            .collect();
        let outs: Vec<Outcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
        let mut receipts = Vec::new();
        for o in &outs[..3] {
            match o {
                Outcome::Accepted(r) | Outcome::Duplicate(r) => receipts.push(r.clone()),
                Outcome::Rejected(r) => {
                    assert!(r.is_conflict(), "{r}");
                }
            }
        }
        let accepted_count = outs
            .iter()
            .filter(|o| matches!(o, Outcome::Accepted(_)))
            .count();
        assert_eq!(accepted_count, 1, "exactly one submission is new: {outs:?}");
        assert!(receipts.windows(2).all(|w| w[0] == w[1]), "{receipts:?}");
        if let Outcome::Rejected(r) = &outs[3] {
            assert_eq!(r.code(), "seq");
            assert_eq!(receipts.len(), 3);
        } else {
            assert!(
                receipts.is_empty(),
                "twin won, the others conflict: {outs:?}"
            );
        }
    }
    assert_eq!(l.size(), FIRST + 5);
}

// ---------------------------------------------------------------------------------------------
// Batches

#[test]
fn batch_events_are_judged_independently_in_order() {
    let (_tmp, dir, l) = new_ledger();
    let p = Person::new();
    let q = Person::new();
    let good0 = p.first();
    let bad = q.event().decision(2).sign();
    let good1 = p.next(&good0, 0);
    let out = l
        .append(vec![Ok(good0.clone()), Ok(bad), Ok(good1.clone())])
        .unwrap();
    let r0 = accepted(&out[0]);
    assert_eq!(rejected(&out[1]).code(), "decision");
    let r1 = accepted(&out[2]);
    assert_eq!(
        (r0.index, r1.index),
        (FIRST, FIRST + 1),
        "a rejected event takes no index"
    );
    assert_eq!(l.size(), FIRST + 2);
    assert_eq!(
        l.head(&key_of(&l, &good0.event))
            .unwrap()
            .unwrap()
            .event_hash,
        good1.event_hash()
    );
    assert!(l.head(&q.event().state_key(&l)).unwrap().is_none());

    // Out of order: the continuation before its predecessor is rejected, the predecessor is not.
    let a0 = q.first();
    let a1 = q.next(&a0, 0);
    let out = l.append(vec![Ok(a1.clone()), Ok(a0.clone())]).unwrap();
    assert_eq!(
        rejected(&out[0]),
        Reject::Seq {
            expected: 0,
            got: 1
        }
    );
    accepted(&out[1]);

    // A continuation of a rejected event is rejected too; a parse error does not stop the rest.
    let r = Person::new();
    let r0bad = r.event().log("elsewhere.example/log").sign();
    let r1 = r.next_event(&r0bad, 0).log(ORIGIN).sign();
    let out = l
        .append(vec![
            Ok(r0bad),
            Ok(r1),
            EventJson::parse("{"),
            Ok(a1.clone()),
        ])
        .unwrap();
    assert_eq!(rejected(&out[0]).code(), "log");
    assert_eq!(
        rejected(&out[1]),
        Reject::Seq {
            expected: 0,
            got: 1
        }
    );
    assert_eq!(rejected(&out[2]).code(), "malformed");
    let ra1 = accepted(&out[3]);
    assert_eq!(ra1.index, FIRST + 3);

    // An all-rejected batch writes nothing.
    let key = key_of(&l, &good0.event);
    let before = observe(&l, &key);
    let out = l
        .append(vec![Ok(good0.clone()), Ok(p.next(&good0, 1))])
        .unwrap();
    assert!(matches!(out[0], Outcome::Duplicate(_)));
    assert_eq!(rejected(&out[1]).code(), "seq");
    let l = assert_unchanged(l, &dir, &key, &before);
    assert_eq!(l.size(), FIRST + 4);
    // An empty batch is fine.
    assert!(l.append(vec![]).unwrap().is_empty());
}

#[test]
fn batch_larger_than_a_chunk_chains_and_dedups_across_chunks() {
    let (_tmp, dir, l) = new_ledger();
    let people: Vec<Person> = (0..CHUNK + 2).map(|_| Person::new()).collect();
    let mut batch: Vec<Result<SignedEvent, Reject>> = Vec::with_capacity(CHUNK + 8);
    for p in &people[..CHUNK - 1] {
        batch.push(Ok(p.first()));
    }
    // Last of chunk 1 and first of chunk 2 form one chain; then a repeat of event 0.
    let a = &people[CHUNK - 1];
    let a0 = a.first();
    let a1 = a.next(&a0, 0);
    batch.push(Ok(a0.clone())); // position CHUNK - 1
    batch.push(Ok(a1.clone())); // position CHUNK
    let first = match &batch[0] {
        Ok(e) => e.clone(),
        Err(_) => unreachable!(),
    };
    batch.push(Ok(first.clone())); // repeat of position 0
    batch.push(Ok(a1.clone())); // repeat within chunk 2
    let n = batch.len();
    let out = l.append(batch).unwrap();
    assert_eq!(out.len(), n);
    let r_first = accepted(&out[0]);
    for (i, o) in out[..CHUNK + 1].iter().enumerate() {
        let r = accepted(o);
        assert_eq!(r.index, FIRST + i as u64);
        assert!(r.check(&l.public_key()).is_ok());
    }
    match &out[CHUNK + 1] {
        Outcome::Duplicate(r) => assert_same_entry(r, &r_first),
        other => panic!("expected Duplicate of entry 0, got {other:?}"),
    }
    match &out[CHUNK + 2] {
        Outcome::Accepted(r) | Outcome::Duplicate(r) => {
            assert_eq!(r.index, FIRST + CHUNK as u64)
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(l.size(), FIRST + CHUNK as u64 + 1);
    drop(l);
    let l = open_ledger(&dir);
    assert_eq!(l.size(), FIRST + CHUNK as u64 + 1);
    let head = l.head(&key_of(&l, &a0.event)).unwrap().unwrap();
    assert_eq!((head.index, head.seq), (FIRST + CHUNK as u64, 1));
    check_receipt(&l, &accepted(&out[CHUNK]));
}

#[test]
fn json_array_form_is_refused() {
    let p = Person::new();
    let ev = p.first();
    let obj = json_of(&ev);
    let arr: Vec<serde_json::Value> = EVENT_JSON_KEYS.iter().map(|k| obj[*k].clone()).collect();
    let text = serde_json::to_string(&arr).unwrap();
    let r = EventJson::parse(&text);
    assert!(
        matches!(r, Err(Reject::Malformed(_))),
        "a positional JSON array {text} parsed as an event: {r:?}"
    );
}

#[test]
fn json_missing_prev_or_notice_is_refused() {
    let p = Person::new();
    let ev = p.first();
    for k in ["prev", "notice"] {
        let mut obj = json_of(&ev);
        obj.as_object_mut().unwrap().remove(k);
        let text = serde_json::to_string(&obj).unwrap();
        let r = EventJson::parse(&text);
        assert!(
            matches!(&r, Err(Reject::Malformed(MalformedEvent::Json(JsonError::Parse(m)))) if m.contains(&format!("missing field `{k}`"))),
            "without {k}: {r:?}"
        );
    }
}

#[test]
fn json_missing_expires_at_is_refused() {
    let p = Person::new();
    let ev = p.first();
    let mut obj = json_of(&ev);
    obj.as_object_mut().unwrap().remove("expires_at");
    let text = serde_json::to_string(&obj).unwrap();
    let r = EventJson::parse(&text);
    assert!(
        matches!(&r, Err(Reject::Malformed(MalformedEvent::Json(JsonError::Parse(m)))) if m.contains("missing field `expires_at`")),
        "without expires_at: {r:?}"
    );
}

/// The small-order (weak) Ed25519 point encodings: identity, order 2, order 4 (two) and
/// the order-8 ones, canonical encodings only.
fn small_order_points() -> Vec<[u8; 32]> {
    let hexes = [
        // identity (0, 1)
        "0100000000000000000000000000000000000000000000000000000000000000",
        // order 2: (0, -1)
        "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        // order 4: (±sqrt(-1), 0)
        "0000000000000000000000000000000000000000000000000000000000000000",
        "0000000000000000000000000000000000000000000000000000000000000080",
        // order 8
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a",
        "26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85",
        "c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa",
    ];
    hexes.iter().map(|h| h32(h)).collect()
}
