//! The test vectors of docs/FORMAT.md: every value there is recomputed here from the inputs the
//! document states, and every value computed here must appear there. A change to any byte
//! layout, domain string or hash makes this test fail.
//!
//! The vectors describe one small format-v2 log: genesis (leaf 0), the map leaf `init` appends
//! (leaf 1), two events of one chain (leaves 2 and 3), a map leaf over both (leaf 4), the plain
//! checkpoint of those five leaves, and a consent proof against it.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use consentlog::core::cosignature::Cosigner;
use consentlog::core::event::{
    ConsentEvent, EventJson, SignedEvent, EVENT_VERSION, KIND_DECISION, SIGNER_SUBJECT,
};
use consentlog::core::hash::{to_hex, Hash, HexHash};
use consentlog::core::leaf::{GenesisLeaf, Leaf, MapLeaf, LEAF_VERSION};
use consentlog::core::map::{self, MapValue, StateMap, EMPTY};
use consentlog::core::note::{self, key_id, Checkpoint};
use consentlog::core::opening::{commitment, Opening};
use consentlog::core::proof::{
    self, ConsentProof, OpeningJson, ProvenEvent, ProvenLeaf, Question, State, PROOF_FORMAT,
};
use consentlog::core::receipt::{Receipt, ReceiptAnchor};
use consentlog::core::tlog::{
    check_inclusion, prove_inclusion, HashTile, LeafIndex, MemoryTree, Sha256Hasher, TreeHasher,
    TreeSize,
};
use consentlog::core::vkey::{Vkey, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use consentlog::core::vrf::VrfSecretKey;
use consentlog::core::witnessed::check_cosigned;
use ed25519_dalek::SigningKey;

const ORIGIN: &str = "example.org/consent";
const ISSUED_AT: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
/// The log was created a minute before event 1.
const GENESIS_TIME: u64 = ISSUED_AT - 60_000;
/// When the proof's question is asked: between the two events.
const PROOF_AT: u64 = ISSUED_AT + 30_000;

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

/// The witness of the witnessed receipt, and when it cosigned (POSIX seconds).
const WITNESS: &str = "witness.example/w1";
const COSIGNED_AT: u64 = 1_767_225_700;

/// A policy requiring witness w1 for the log.
fn receipt_policy(lk: &SigningKey, w: &Vkey) -> String {
    let log = Vkey::new(ORIGIN, TYPE_ED25519, lk.verifying_key()).unwrap();
    format!(
        "log {}\nwitness w1 {}\nquorum w1\n",
        log.to_text(),
        w.to_text()
    )
}

fn hexes(v: &[Hash]) -> String {
    serde_json::to_string(&v.iter().map(|h| HexHash(*h)).collect::<Vec<_>>()).unwrap()
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
    let vrf = VrfSecretKey::from_random(&[0x24; 64]);
    put("vrf_secret", to_hex(&vrf.to_bytes()));
    put("vrf_key", to_hex(&vrf.public_key().to_bytes()));
    let notice: Hash = *blake3::hash(b"We may use your posts to train our models.").as_bytes();
    put("notice", to_hex(&notice));

    // Events.
    let e1 = ConsentEvent {
        version: EVENT_VERSION,
        kind: KIND_DECISION,
        signer: SIGNER_SUBJECT,
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
    // The state key: the VRF output of (origin, subject, controller, purpose), with its proof.
    let (key, vrf_proof) = vrf.prove_state_key(&e1.state_key_input());
    put("state_key_alpha", to_hex(&e1.state_key_input().alpha()));
    put("state_key", to_hex(&key));
    put("vrf_proof", to_hex(&vrf_proof.0));
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

    // Leaves 0 to 4.
    let genesis = Leaf::Genesis(GenesisLeaf {
        version: LEAF_VERSION,
        origin: ORIGIN.into(),
        vrf_key: vrf.public_key().to_bytes(),
        genesis_time: GENESIS_TIME,
        witness_policy: None,
    });
    put("leaf0_bytes", to_hex(&genesis.to_bytes()));
    put("leaf0_hash", to_hex(&genesis.leaf_hash()));
    let map1 = Leaf::Map(MapLeaf {
        version: LEAF_VERSION,
        time: GENESIS_TIME,
        map_root: EMPTY,
    });
    put("leaf1_bytes", to_hex(&map1.to_bytes()));
    put("leaf1_hash", to_hex(&map1.leaf_hash()));

    let o1 = Opening {
        nonce: [0x07; 32],
        vrf: vrf_proof,
        event: s1.clone(),
    };
    let o2 = Opening {
        nonce: [0x08; 32],
        vrf: vrf_proof,
        event: s2.clone(),
    };
    let ev1 = o1.leaf(ISSUED_AT + 250, key, None);
    let ev2 = o2.leaf(ISSUED_AT + 60_250, key, Some(2));
    assert_eq!(
        ev1.commitment,
        commitment(&o1.nonce, s1.as_bytes()),
        "the leaf commits to its opening"
    );
    assert_eq!((ev2.seq, ev2.prev), (1, Some(2)));
    put("leaf2_commitment", to_hex(&ev1.commitment));
    put("leaf2_bytes", to_hex(&ev1.to_bytes()));
    put("leaf2_hash", to_hex(&ev1.leaf_hash()));
    put("leaf3_bytes", to_hex(&ev2.to_bytes()));
    put("leaf3_hash", to_hex(&ev2.leaf_hash()));

    // The state map over leaves 2 and 3: the key's latest event leaf is 3.
    let mut map = StateMap::new();
    map.insert(
        key,
        MapValue {
            index: 3,
            leaf_hash: ev2.leaf_hash(),
        },
    );
    put("map_root", to_hex(&map.root()));
    put(
        "map_proof_json",
        serde_json::to_string(&map.prove(&key)).unwrap(),
    );
    let map4 = Leaf::Map(MapLeaf {
        version: LEAF_VERSION,
        time: ISSUED_AT + 61_000,
        map_root: map.root(),
    });
    put("leaf4_bytes", to_hex(&map4.to_bytes()));
    put("leaf4_hash", to_hex(&map4.leaf_hash()));

    // The RFC 6962 tree.
    let leaves = [
        genesis.clone(),
        map1.clone(),
        Leaf::Event(ev1),
        Leaf::Event(ev2),
        map4.clone(),
    ];
    // §14: the entry bundle of the five leaves.
    let leaf_bytes: Vec<Vec<u8>> = leaves.iter().map(Leaf::to_bytes).collect();
    put(
        "entry_bundle_000_p_5",
        to_hex(
            &consentlog::core::tlog::tile::encode_bundle(leaf_bytes.iter().map(Vec::as_slice))
                .unwrap(),
        ),
    );
    let mut tree = MemoryTree::new(Sha256Hasher);
    for l in &leaves {
        tree.push(&l.to_bytes());
    }
    // §14: the hash tile of the five leaves, their leaf hashes.
    let tile = HashTile {
        level: 0,
        index: 0,
        width: 5,
    };
    put(
        "hash_tile_0_000_p_5",
        to_hex(&tile.read(&tree).unwrap().expect("a tile of the tree")),
    );
    put("empty_root", to_hex(&Sha256Hasher.empty_root()));
    let mut two = MemoryTree::new(Sha256Hasher);
    two.push(&genesis.to_bytes());
    two.push(&map1.to_bytes());
    put("root_size_2", to_hex(&two.root()));
    put("root_size_5", to_hex(&tree.root()));
    let path = |i: u64| prove_inclusion(&Sha256Hasher, &tree, LeafIndex(i), TreeSize(5)).unwrap();
    for i in [0, 2, 3, 4] {
        put(&format!("inclusion_{i}_in_5"), hexes(&path(i)));
    }

    // The plain checkpoint of the five leaves.
    put("log_key_id", to_hex(&key_id(ORIGIN, &lk.verifying_key())));
    let cp = Checkpoint {
        origin: ORIGIN,
        size: 5,
        root: tree.root(),
    };
    let note_text = cp.sign(&lk);
    put("checkpoint_note", note_text.replace('\n', "\\n"));

    // The receipt of event 2 (leaf 3) under that checkpoint: a c2sp.org/tlog-proof@v1.
    let r = Receipt {
        index: 3,
        leaf: ev2,
        opening: o2.clone(),
        inclusion: path(3),
        anchor: std::sync::Arc::new(ReceiptAnchor {
            checkpoint: note_text.clone(),
            genesis: genesis.to_bytes(),
            genesis_inclusion: path(0),
        }),
    };
    put("receipt_extra", to_hex(&r.extra()));
    put("receipt_text", r.to_text().replace('\n', "\\n"));

    // Its witnessed receipt (§7): the same proof, the checkpoint cosigned by witness w1.
    let wk = SigningKey::from_bytes(&[0x43; 32]);
    let wvkey = Vkey::new(WITNESS, TYPE_COSIGNATURE_V1, wk.verifying_key()).unwrap();
    put("witness_seed", to_hex(wk.as_bytes()));
    put("witness_vkey", wvkey.to_text());
    let cosignature = {
        use signed_note::Signer as _;
        let c = Cosigner {
            name: WITNESS,
            key: &wk,
            timestamp: COSIGNED_AT,
        };
        let body = signed_note::Note::from_bytes(note_text.as_bytes()).unwrap();
        let mut sig = c.key_id().to_be_bytes().to_vec();
        sig.extend(c.sign(body.text()).unwrap());
        format!("\u{2014} {WITNESS} {}\n", B64.encode(sig))
    };
    put("cosignature_line", cosignature.replace('\n', "\\n"));
    let witnessed = Receipt {
        anchor: std::sync::Arc::new(ReceiptAnchor {
            checkpoint: format!("{note_text}{cosignature}"),
            ..(*r.anchor).clone()
        }),
        ..r.clone()
    };
    put(
        "witnessed_receipt_text",
        witnessed.to_text().replace('\n', "\\n"),
    );
    put(
        "receipt_policy",
        receipt_policy(&lk, &wvkey).replace('\n', "\\n"),
    );

    // A consent proof at PROOF_AT: event 1 in force, shown with its direct successor.
    let proven_leaf = |i: u64| ProvenLeaf {
        index: i,
        leaf: leaves[i as usize].to_bytes(),
        inclusion: path(i).into_iter().map(HexHash).collect(),
    };
    let proven_event = |i: u64, o: &Opening| ProvenEvent {
        index: i,
        leaf: leaves[i as usize].to_bytes(),
        opening: OpeningJson::from(o),
        inclusion: path(i).into_iter().map(HexHash).collect(),
    };
    let p = ConsentProof {
        format: PROOF_FORMAT.into(),
        checkpoint: note_text,
        genesis: proven_leaf(0),
        map_leaf: proven_leaf(4),
        witnessed: None,
        subject: sk.verifying_key().to_bytes(),
        controller: "example.com".into(),
        purpose: "ai-training".into(),
        vrf_proof: vrf_proof.0,
        at: PROOF_AT,
        events: vec![proven_event(2, &o1), proven_event(3, &o2)],
        map: None,
        state: State::OptedIn.as_str().into(),
    };
    put("proof_json", serde_json::to_string(&p).unwrap());
    // §18: the person's key files.
    put(
        "secret_key_file",
        consentlog::keyfile::secret_file_text(&sk).replace('\n', "\\n"),
    );
    put(
        "public_key_file",
        consentlog::keyfile::public_file_text(&sk.verifying_key()).replace('\n', "\\n"),
    );
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

/// The documented values, read back with the verifier's own parsers, fit together: events
/// verify, leaves decode to what the text says, the inclusion paths lead to the checkpoint's
/// root, the map proof to the map leaf's root, and the proof verifies as opted in.
#[test]
fn vectors_decode_back() {
    let v = documented();
    let get = |n: &str| {
        v.iter()
            .find(|(k, _)| k == n)
            .unwrap_or_else(|| panic!("FORMAT.md lacks {n}"))
            .1
            .clone()
    };
    let bytes = |n: &str| hex::decode(get(n)).unwrap();
    let hash = |n: &str| -> Hash { bytes(n).try_into().unwrap() };

    let mut signed = bytes("event1_bytes");
    signed.extend(bytes("event1_signature"));
    let ev = SignedEvent::decode(&signed).unwrap();
    ev.check_self().unwrap();
    ev.check_log(ORIGIN).unwrap();
    assert_eq!(
        (ev.event.version, ev.event.kind, ev.event.signer),
        (2, 0, 0)
    );
    assert_eq!(to_hex(&ev.event_hash()), get("event1_hash"));
    let ev2 = EventJson::parse(&get("event2_json")).unwrap();
    ev2.check_self().unwrap();
    assert_eq!(to_hex(&ev2.event_hash()), get("event2_hash"));
    assert_eq!(ev2.event.prev, Some(ev.event_hash()));
    // The state key is the VRF output: the proof verifies under the genesis leaf's VRF key
    // for this triple, and gives the documented key.
    assert_eq!(
        to_hex(&ev.event.state_key_input().alpha()),
        get("state_key_alpha")
    );
    let vrf_key = consentlog::core::vrf::VrfPublicKey::from_bytes(
        hex::decode(get("vrf_key")).unwrap().try_into().unwrap(),
    )
    .unwrap();
    let proof = consentlog::core::vrf::VrfProof(bytes("vrf_proof").try_into().unwrap());
    let key = vrf_key
        .check_state_key(&ev.event.state_key_input(), &proof)
        .unwrap();
    assert_eq!(to_hex(&key), get("state_key"));

    // Leaves.
    let g = Leaf::decode_genesis(&bytes("leaf0_bytes")).unwrap();
    assert_eq!(
        (g.origin.as_str(), g.genesis_time, g.witness_policy),
        (ORIGIN, GENESIS_TIME, None)
    );
    assert_eq!(to_hex(&g.vrf_key), get("vrf_key"));
    let m1 = Leaf::decode_map(&bytes("leaf1_bytes")).unwrap();
    assert_eq!((m1.time, m1.map_root), (GENESIS_TIME, EMPTY));
    let l2 = Leaf::decode_event(&bytes("leaf2_bytes")).unwrap();
    let l3 = Leaf::decode_event(&bytes("leaf3_bytes")).unwrap();
    assert_eq!((l2.key, l2.prev, l2.seq), (key, None, 0));
    assert_eq!((l3.key, l3.prev, l3.seq), (key, Some(2), 1));
    assert_eq!(to_hex(&l2.commitment), get("leaf2_commitment"));
    let o1 = Opening {
        nonce: [0x07; 32],
        vrf: proof,
        event: ev.clone(),
    };
    assert_eq!(o1.commitment(), l2.commitment);
    let m4 = Leaf::decode_map(&bytes("leaf4_bytes")).unwrap();
    assert_eq!(to_hex(&m4.map_root), get("map_root"));
    for i in 0..5 {
        let b = bytes(&format!("leaf{i}_bytes"));
        assert_eq!(
            to_hex(&Leaf::decode(&b).unwrap().leaf_hash()),
            get(&format!("leaf{i}_hash"))
        );
    }

    // The map proof shows leaf 3 as the key's latest under the map leaf's root.
    let mp: map::MapProof = serde_json::from_str(&get("map_proof_json")).unwrap();
    let got = map::check(&m4.map_root, &key, &mp).unwrap().unwrap();
    assert_eq!((got.index, got.leaf_hash), (3, hash("leaf3_hash")));

    // The checkpoint opens under the log key; every documented path leads to its root.
    let lk = log_key().verifying_key();
    assert_eq!(to_hex(lk.as_bytes()), get("log_key"));
    let cp = note::open(&get("checkpoint_note").replace("\\n", "\n"), &lk).unwrap();
    assert_eq!((cp.origin.as_str(), cp.size), (ORIGIN, 5));
    assert_eq!(to_hex(&cp.root), get("root_size_5"));
    for i in [0u64, 2, 3, 4] {
        let path: Vec<HexHash> =
            serde_json::from_str(&get(&format!("inclusion_{i}_in_5"))).unwrap();
        let path: Vec<Hash> = path.into_iter().map(|h| h.0).collect();
        check_inclusion(
            &Sha256Hasher,
            LeafIndex(i),
            TreeSize(5),
            &hash(&format!("leaf{i}_hash")),
            &path,
            &cp.root,
        )
        .unwrap_or_else(|e| panic!("inclusion of leaf {i}: {e}"));
    }

    // The receipt is for leaf 3, and checks under the log key.
    let r = Receipt::parse(&get("receipt_text").replace("\\n", "\n")).unwrap();
    assert_eq!(to_hex(&r.extra()), get("receipt_extra"));
    let c = r.check(&lk).expect("the receipt checks");
    assert_eq!(
        (c.index, c.leaf_hash, c.leaf.integrated_at),
        (3, hash("leaf3_hash"), l3.integrated_at)
    );

    // The witnessed receipt: the same receipt, and its checkpoint meets the policy at the
    // cosignature's time but not a second before it; the plain receipt does not meet it.
    let w = Receipt::parse(&get("witnessed_receipt_text").replace("\\n", "\n")).unwrap();
    assert_eq!(w.extra(), r.extra());
    assert_eq!(w.inclusion, r.inclusion);
    assert_eq!(
        w.anchor.checkpoint,
        format!(
            "{}{}",
            get("checkpoint_note").replace("\\n", "\n"),
            get("cosignature_line").replace("\\n", "\n")
        )
    );
    w.check(&lk).expect("the witnessed receipt checks");
    let policy = consentlog::core::policy::Policy::parse(
        get("receipt_policy").replace("\\n", "\n").as_bytes(),
    )
    .unwrap();
    assert!(get("receipt_policy").contains(&get("witness_vkey")));
    let (_, verdict, newest) =
        check_cosigned(&policy, &lk, &w.anchor.checkpoint, COSIGNED_AT).expect("meets it");
    assert_eq!((verdict.size, newest), (5, COSIGNED_AT));
    assert!(check_cosigned(&policy, &lk, &w.anchor.checkpoint, COSIGNED_AT - 1).is_err());
    assert!(check_cosigned(&policy, &lk, &r.anchor.checkpoint, COSIGNED_AT).is_err());

    // The proof.
    let p: ConsentProof = serde_json::from_str(&get("proof_json")).unwrap();
    let q = Question {
        subject: Some(ev.event.subject),
        controller: Some("example.com".into()),
        purpose: Some("ai-training".into()),
        at: Some(PROOF_AT),
        now: Some(PROOF_AT),
    };
    let verdict = proof::check(&p, &lk, &q).unwrap();
    assert_eq!(verdict.state, State::OptedIn);
    assert_eq!((verdict.map_index, verdict.map_time), (4, m4.time));
    assert_eq!(verdict.checkpoint, cp);
}

/// The documented key files work through the binary: `pubkey` reads the secret key file and
/// prints the documented subject, which is the public key file's; `prove --subject` takes the
/// public key file and `pubkey` refuses it.
#[test]
fn documented_key_files_work_through_the_binary() {
    use crate::support::{run, s};
    use std::os::unix::fs::PermissionsExt;
    let doc = documented();
    let get = |k: &str| {
        doc.iter()
            .find(|(n, _)| n == k)
            .unwrap_or_else(|| panic!("FORMAT.md lacks {k}"))
            .1
            .replace("\\n", "\n")
    };
    let subject = doc.iter().find(|(n, _)| n == "subject").unwrap().1.clone();
    let tmp = tempfile::tempdir().unwrap();
    let sk = tmp.path().join("vector.key");
    let pk = tmp.path().join("vector.pub");
    std::fs::write(&sk, get("secret_key_file")).unwrap();
    std::fs::set_permissions(&sk, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::write(&pk, get("public_key_file")).unwrap();
    assert_eq!(
        run(&["pubkey", "--key", s(&sk)]).ok().stdout,
        format!("{subject}\n")
    );
    assert_eq!(
        get("public_key_file"),
        format!("consentlog public key v1\n{subject}\n")
    );
    run(&["pubkey", "--key", s(&pk)]).assert_fails_with("vector.pub is a public key");
}

/// Prints the vectors in FORMAT.md's form: `cargo test --test it -- --ignored vectors:: --nocapture`.
#[test]
#[ignore]
fn print_vectors() {
    for (k, v) in vectors() {
        println!("{k} = {v}");
    }
}
