//! The test vectors of docs/FORMAT.md: every value there is recomputed here from the inputs the
//! document states, and every value computed here must appear there. A change to any byte
//! layout, domain string or hash makes this test fail.

use consentlog::core::entry::{commitment, Entry, Opening, ENTRY_VERSION};
use consentlog::core::event::{state_key, ConsentEvent, EventJson, SignedEvent, EVENT_VERSION};
use consentlog::core::hash::{to_hex, Hash};
use consentlog::core::map::{MapValue, StateMap};
use consentlog::core::note::{key_id, Checkpoint};
use consentlog::core::receipt::{receipt_message, Receipt};
use consentlog::core::tlog::{
    prove_inclusion, Blake3Hasher, LeafIndex, MemoryTree, TreeHasher, TreeSize,
};
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "example.org/consent";
const ISSUED_AT: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z

fn subject_key() -> SigningKey {
    let mut seed = [0u8; 32];
    for (i, b) in seed.iter_mut().enumerate() {
        *b = i as u8;
    }
    SigningKey::from_bytes(&seed)
}

fn log_key() -> SigningKey {
    SigningKey::from_bytes(&[0x42; 32])
}

/// Every vector, by name, as the document lists them.
fn vectors() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = Vec::new();
    let mut put = |name: &str, value: String| v.push((name.to_string(), value));
    let sk = subject_key();
    let lk = log_key();
    put("subject_seed", to_hex(sk.as_bytes()));
    put("subject", to_hex(sk.verifying_key().as_bytes()));
    put("log_seed", to_hex(lk.as_bytes()));
    put("log_key", to_hex(lk.verifying_key().as_bytes()));
    let notice: Hash = *blake3::hash(b"We may use your posts to train our models.").as_bytes();
    put("notice", to_hex(&notice));

    let e1 = ConsentEvent {
        version: EVENT_VERSION,
        log: ORIGIN.into(),
        subject: sk.verifying_key().to_bytes(),
        controller: "example.com".into(),
        purpose: "ai-training".into(),
        decision: 1,
        seq: 0,
        prev: None,
        issued_at: ISSUED_AT,
        expires_at: Some(ISSUED_AT + 365 * 86_400_000),
        notice: Some(notice),
    };
    put("event1_bytes", to_hex(&e1.to_bytes()));
    let s1 = e1.clone().sign(&sk);
    put("event1_signature", to_hex(&s1.signature));
    put("event1_hash", to_hex(&s1.event_hash()));
    put("state_key", to_hex(&e1.state_key()));
    let e2 = ConsentEvent {
        decision: 0,
        seq: 1,
        prev: Some(s1.event_hash()),
        issued_at: ISSUED_AT + 60_000,
        expires_at: None,
        notice: None,
        ..e1.clone()
    };
    put("event2_bytes", to_hex(&e2.to_bytes()));
    let s2 = e2.sign(&sk);
    put("event2_signature", to_hex(&s2.signature));
    put("event2_hash", to_hex(&s2.event_hash()));
    put(
        "event2_json",
        serde_json::to_string(&EventJson::from(&s2)).unwrap(),
    );

    let o1 = Opening {
        nonce: [0x07; 32],
        event: s1.clone(),
    };
    let o2 = Opening {
        nonce: [0x08; 32],
        event: s2.clone(),
    };
    let en1 = o1.entry(ISSUED_AT + 250);
    let en2 = o2.entry(ISSUED_AT + 60_250);
    assert_eq!(en1.version, ENTRY_VERSION);
    assert_eq!(
        en1.commitment,
        commitment(&o1.nonce, s1.as_bytes()),
        "entry commits to its opening"
    );
    put("entry1_commitment", to_hex(&en1.commitment));
    put("entry1_bytes", to_hex(&en1.to_bytes()));
    put("entry1_leaf_hash", to_hex(&en1.leaf_hash()));
    put("entry2_bytes", to_hex(&en2.to_bytes()));
    put("entry2_leaf_hash", to_hex(&en2.leaf_hash()));

    let mut tree = MemoryTree::new(Blake3Hasher);
    tree.push_leaf_hash(en1.leaf_hash());
    tree.push_leaf_hash(en2.leaf_hash());
    put("empty_root", to_hex(&Blake3Hasher.empty_root()));
    put("root_size_2", to_hex(&tree.root()));
    let path = prove_inclusion(&Blake3Hasher, &tree, LeafIndex(1), TreeSize(2)).unwrap();
    put("inclusion_1_in_2", to_hex(&path[0]));

    let mut map = StateMap::new();
    map.insert(
        en1.key,
        MapValue {
            index: 1,
            leaf_hash: en2.leaf_hash(),
        },
    );
    put("map_root_1_key", to_hex(&map.root()));
    put(
        "map_proof_json",
        serde_json::to_string(&map.prove(&en1.key)).unwrap(),
    );

    let r = Receipt::sign(&lk, 1, en2.leaf_hash(), en2.integrated_at);
    put(
        "receipt_message",
        to_hex(&receipt_message(1, &en2.leaf_hash(), en2.integrated_at)),
    );
    put("receipt_json", serde_json::to_string(&r).unwrap());

    put("log_key_id", to_hex(&key_id(ORIGIN, &lk.verifying_key())));
    let cp = Checkpoint {
        origin: ORIGIN,
        size: 2,
        root: tree.root(),
        map_root: map.root(),
        time: ISSUED_AT + 61_000,
    };
    put("checkpoint_note", cp.sign(&lk).replace('\n', "\\n"));
    v
}

/// `name = value` lines of the ```vectors fenced blocks of docs/FORMAT.md.
fn documented() -> Vec<(String, String)> {
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/FORMAT.md"))
        .expect("docs/FORMAT.md");
    let mut out = Vec::new();
    let mut inside = false;
    for line in doc.lines() {
        if line.trim_start().starts_with("```vectors") {
            inside = true;
        } else if line.trim_start().starts_with("```") {
            inside = false;
        } else if inside {
            if let Some((k, val)) = line.split_once(" = ") {
                out.push((k.trim().to_string(), val.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn format_md_vectors_match_the_code() {
    let doc = documented();
    let computed = vectors();
    assert!(
        doc.len() >= computed.len(),
        "FORMAT.md lists too few vectors"
    );
    for (name, value) in &computed {
        let found = doc.iter().find(|(k, _)| k == name);
        match found {
            None => panic!("FORMAT.md lacks vector {name} = {value}"),
            Some((_, d)) => assert_eq!(d, value, "vector {name} differs from FORMAT.md"),
        }
    }
    for (name, _) in &doc {
        assert!(
            computed.iter().any(|(k, _)| k == name),
            "FORMAT.md lists vector {name} that no test computes"
        );
    }
}

#[test]
fn vectors_decode_back() {
    let v = vectors();
    let get = |n: &str| v.iter().find(|(k, _)| k == n).unwrap().1.clone();
    let bytes = |n: &str| hex::decode(get(n)).unwrap();
    let mut signed = bytes("event1_bytes");
    signed.extend(bytes("event1_signature"));
    let ev = SignedEvent::decode(&signed).unwrap();
    ev.check_self().unwrap();
    assert_eq!(to_hex(&ev.event_hash()), get("event1_hash"));
    let e = Entry::decode(&bytes("entry1_bytes")).unwrap();
    assert_eq!(to_hex(&e.leaf_hash()), get("entry1_leaf_hash"));
    let ev2 = EventJson::parse(&get("event2_json")).unwrap();
    ev2.check_self().unwrap();
    assert_eq!(to_hex(&ev2.event_hash()), get("event2_hash"));
    let key = state_key(&ev.event.subject, "example.com", "ai-training");
    assert_eq!(to_hex(&key), get("state_key"));
}

/// Prints the vectors in FORMAT.md's form: `cargo test --test it -- --ignored vectors:: --nocapture`.
#[test]
#[ignore]
fn print_vectors() {
    for (k, v) in vectors() {
        println!("{k} = {v}");
    }
}
