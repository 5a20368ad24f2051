//! Startup integrity and fsck: damaged stored data (a leaf, an opening, a stored node hash,
//! a checkpoint, a stored map value) is caught and named, and never served as a valid proof.
//!
//! The ledger of [`build`]: leaf 0 is the genesis leaf, leaf 1 init's map leaf, leaves 2-10
//! the events (person `j % 3` made event `j`, at leaf `j + 2`), leaf 11 the map leaf of the
//! checkpoint.

use std::path::Path;

use consentlog::core::proof::{check, Question};
use consentlog::keyfile;
use consentlog::ledger::{node_key, Ledger, Outcome};
use consentlog::store::{Table, WriteBatch};
use ed25519_dalek::SigningKey;

use crate::support::ledger::next_event;
use crate::support::{run, s, wait_unlocked, Person};

const C: &str = "example.com";
const P: &str = "ai-training";

fn decide(l: &Ledger, key: &SigningKey, opt_in: bool) {
    let who = Person::with_key(key.clone(), C, P);
    let ev = next_event(l, &who, C, P, opt_in, None);
    assert!(matches!(
        l.append(vec![Ok(ev)]).unwrap()[0],
        Outcome::Accepted(_)
    ));
}

/// A ledger of 9 events from 3 people, checkpointed (12 leaves); returns the people.
fn build(dir: &Path) -> Vec<SigningKey> {
    let l = Ledger::init(
        dir,
        "integrity.example/log",
        consentlog::testing::engine_from_env().as_str(),
    )
    .unwrap();
    let people: Vec<SigningKey> = (0..3).map(|_| keyfile::generate()).collect();
    for round in 0..3 {
        for p in &people {
            decide(&l, p, round % 2 == 0);
        }
    }
    l.checkpoint_waiting().unwrap();
    assert_eq!(l.size(), 12);
    drop(l);
    wait_unlocked(dir);
    people
}

/// Changes one stored value (flips the last bit of byte `at`).
fn damage(dir: &Path, table: Table, key: &[u8], at: usize) {
    let s = consentlog::ledger::open_store(dir).unwrap();
    let mut v = s.get(table, key).unwrap().expect("stored value");
    let at = at.min(v.len() - 1);
    v[at] ^= 1;
    let mut b = WriteBatch::new();
    b.put(table, key.to_vec(), v);
    s.commit(b).unwrap();
}

fn fsck(dir: &Path) -> (i32, String) {
    let r = run(&["fsck", "--dir", s(dir)]);
    (r.code, r.all())
}

#[test]
fn a_clean_ledger_passes_fsck() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    build(&dir);
    let (code, text) = fsck(&dir);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("fsck OK"), "{text}");
}

#[test]
fn a_damaged_leaf_is_never_served_and_fsck_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    build(&dir);
    // Event leaf 6 (person 1's second event): byte 10 is the first of its state key.
    damage(&dir, Table::Leaf, &6u64.to_be_bytes(), 10);
    // Opening checks the latest checkpoint against the stored nodes and map values, not
    // every leaf: a damaged leaf in the middle of the log is caught when it would be served.
    let l = Ledger::open(&dir).expect("open reads no leaf but the last ones");
    let subject = l.opening(6).unwrap().unwrap().event.event.subject;
    let err = l
        .history_in(&l.latest(), &subject)
        .expect_err("a history over a damaged leaf must not be served");
    assert!(err.to_string().contains("leaf 6"), "{err}");
    drop(l);
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("leaf 6"), "{text}");
}

#[test]
fn a_damaged_opening_is_never_served_and_fsck_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let people = build(&dir);
    // Leaf 5 is person 0's second event; flip a byte of its nonce.
    damage(&dir, Table::Opening, &5u64.to_be_bytes(), 5);
    let l = Ledger::open(&dir).unwrap();
    let subject = people[0].verifying_key().to_bytes();
    let snap = l.latest();
    let t = l.event_leaf(5).unwrap().unwrap().integrated_at;
    let err = l
        .prove_consent_in(&snap, &subject, C, P, t)
        .expect_err("a proof over a damaged opening must not be served");
    assert!(err.to_string().contains("leaf 5"), "{err}");
    assert!(l.history_in(&snap, &subject).is_err());
    // Other people's proofs are still served and valid.
    let other = people[1].verifying_key().to_bytes();
    let p = l
        .prove_consent_in(&snap, &other, C, P, snap.map_leaf.time)
        .unwrap();
    check(&p, &l.public_key(), &Question::default()).unwrap();
    drop(l);
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("leaf 5"), "{text}");
    assert!(text.contains("commitment"), "{text}");
}

#[test]
fn a_damaged_node_hash_is_never_served_and_fsck_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let people = build(&dir);
    // In a tree of 12 leaves node (3, 0) covers leaves 0..8 and is read to compute the root,
    // so the cheap startup check already refuses.
    damage(&dir, Table::Node, &node_key(3, 0), 0);
    let err = Ledger::open(&dir)
        .err()
        .expect("damaged node must be caught at open");
    assert!(err.to_string().contains("tree root"), "{err}");
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("level 3, index 0"), "{text}");
    let _ = people;
}

#[test]
fn a_damaged_node_off_the_frontier_is_never_served() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let l = Ledger::init(
        &dir,
        "integrity.example/log",
        consentlog::testing::engine_from_env().as_str(),
    )
    .unwrap();
    let people: Vec<SigningKey> = (0..4).map(|_| keyfile::generate()).collect();
    for p in &people {
        decide(&l, p, true);
    }
    l.checkpoint_waiting().unwrap();
    // Genesis, init's map leaf, 4 events, a map leaf.
    assert_eq!(l.size(), 7);
    drop(l);
    // In a tree of 7 leaves node (1, 0) is below node (2, 0), which is what opening reads.
    damage(&dir, Table::Node, &node_key(1, 0), 3);
    let l = Ledger::open(&dir).unwrap();
    let snap = l.latest();
    // Leaves 2 and 3 (people 0 and 1) need node (1, 0) as a sibling in their inclusion
    // paths.
    let subject = people[0].verifying_key().to_bytes();
    let err = l
        .prove_consent_in(&snap, &subject, C, P, snap.map_leaf.time)
        .expect_err("a proof over a damaged node must not be served");
    assert!(
        err.to_string().contains("does not match checkpoint root"),
        "{err}"
    );
    drop(l);
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("level 1, index 0"), "{text}");
}

#[test]
fn a_damaged_checkpoint_stops_the_ledger_and_fsck_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    build(&dir);
    let l = Ledger::open(&dir).unwrap();
    let n = l.checkpoints().unwrap().len() as u64;
    drop(l);
    // Flip a byte of the root line of the latest checkpoint ("integrity.example/log\n12\n"
    // is 25 bytes).
    damage(&dir, Table::Checkpoint, &(n - 1).to_be_bytes(), 25);
    let err = Ledger::open(&dir)
        .err()
        .expect("a damaged checkpoint must not open");
    assert!(
        err.to_string().contains(&format!("checkpoint {}", n - 1)),
        "{err}"
    );
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains(&format!("checkpoint {}", n - 1)), "{text}");
}

#[test]
fn serve_refuses_a_log_key_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    build(&dir);
    std::fs::set_permissions(dir.join("log.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = run(&["serve", "--dir", s(&dir), "--listen", "127.0.0.1:0"]);
    assert_ne!(out.code, 0);
    let err = &out.stderr;
    assert!(err.contains("readable by group or others"), "{err}");
    // The key itself never appears in the message.
    let key = std::fs::read_to_string(dir.join("log.key")).unwrap();
    assert!(!err.contains(key.trim()), "{err}");
}

/// Every command that reads the ledger's own secrets (`log.key`, `vrf.key`) refuses one that
/// group or others can read, naming the file and `chmod 600`, and never printing the key; once
/// the mode is fixed the same commands work.
#[test]
fn commands_that_read_the_ledgers_secret_keys_refuse_them_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let people = build(&dir);
    let subject = hex::encode(people[0].verifying_key().as_bytes());
    let d = s(&dir);
    let export = tmp.path().join("export.bin");
    let copy = tmp.path().join("copy");
    let commands: Vec<Vec<&str>> = vec![
        vec!["checkpoint", "--dir", d],
        vec![
            "prove",
            "--dir",
            d,
            "--subject",
            &subject,
            "--controller",
            C,
            "--purpose",
            P,
        ],
        vec!["history", "--dir", d, "--subject", &subject],
        vec!["leaves", "--dir", d],
        vec!["export", "--dir", d, "--out", s(&export)],
        vec![
            "migrate",
            "--from",
            d,
            "--to",
            s(&copy),
            "--backend",
            "redb",
        ],
        vec!["serve", "--dir", d, "--listen", "127.0.0.1:0"],
    ];
    for name in ["log.key", "vrf.key"] {
        let file = dir.join(name);
        let secret = std::fs::read_to_string(&file).unwrap();
        for mode in [0o644, 0o640, 0o604] {
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
            for cmd in &commands {
                let out = run(cmd);
                let err = &out.stderr;
                assert_ne!(out.code, 0, "{cmd:?} with {name} mode {mode:o}: {err}");
                assert!(err.contains(name), "{cmd:?}: {err}");
                assert!(err.contains("chmod 600"), "{cmd:?}: {err}");
                assert!(!err.contains(secret.trim()), "{cmd:?}: {err}");
                assert!(!out.stdout.contains(secret.trim()), "{cmd:?}");
            }
        }
        assert!(
            !export.exists() && !copy.exists(),
            "written with an exposed key"
        );
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    // With both back at 0600, the ledger commands work again.
    for cmd in &commands[..5] {
        let out = run(cmd);
        assert_eq!(out.code, 0, "{cmd:?}: {}", out.stderr);
    }
}

#[test]
fn a_damaged_map_value_is_caught_at_open_and_while_serving_and_fsck_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    build(&dir);
    let (key, subject) = {
        let l = Ledger::open(&dir).unwrap();
        let o = l.opening(2).unwrap().unwrap();
        (l.event_leaf(2).unwrap().unwrap().key, o.event.event.subject)
    };
    // At rest: opening rebuilds the state map from its stored values and compares the root
    // with the latest checkpoint's map leaf. (Byte 20 is in the value's leaf hash.)
    damage(&dir, Table::MapValue, &key, 20);
    let msg = Ledger::open(&dir)
        .err()
        .expect("a damaged map value must not open")
        .to_string();
    assert!(
        msg.contains("stored map (its map leaf's root) at size 12")
            && msg.contains("does not match the latest checkpoint"),
        "{msg}"
    );
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    assert!(
        text.contains(&format!(
            "map value of key {}",
            consentlog::core::hash::to_hex(&key)
        )),
        "{text}"
    );
    damage(&dir, Table::MapValue, &key, 20); // flipped back
    let (code, text) = fsck(&dir);
    assert_eq!(code, 0, "{text}");
    // While serving: the values loaded for a proof must hash to the map's node in memory.
    let l = Ledger::open(&dir).unwrap();
    let snap = l.latest();
    let store = l.store();
    let mut v = store.get(Table::MapValue, &key).unwrap().unwrap();
    v[20] ^= 1;
    let mut b = WriteBatch::new();
    b.put(Table::MapValue, key.to_vec(), v);
    store.commit(b).unwrap();
    let err = l
        .prove_consent_in(&snap, &subject, C, P, snap.map_leaf.time)
        .expect_err("a proof over a damaged map value must not be served");
    assert!(err.to_string().contains("damaged storage"), "{err}");
    assert!(l.history_in(&snap, &subject).is_err());
}

#[test]
fn a_ledger_without_its_map_values_does_not_open_and_fsck_names_each_key() {
    // Format v2 keeps every key's map value on disk from the start (v1 ledgers, which could
    // lack them, are refused, not converted): a ledger whose values are gone is damaged. It
    // does not open (its map no longer has the latest map leaf's root), and fsck names every
    // key whose value is missing.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("l");
    let people = build(&dir);
    let keys: Vec<_> = {
        let l = consentlog::ledger::Ledger::open(&dir).unwrap();
        people
            .iter()
            .map(|p| {
                l.state_key(&p.verifying_key().to_bytes(), C, P)
                    .unwrap()
                    .unwrap()
                    .0
            })
            .collect()
    };
    wait_unlocked(&dir);
    {
        let s = consentlog::ledger::open_store(&dir).unwrap();
        assert_eq!(s.scan(Table::MapValue, &[], None).count(), 3);
        let mut b = WriteBatch::new();
        for r in s.scan(Table::MapValue, &[], None) {
            b.delete(Table::MapValue, r.unwrap().0);
        }
        s.commit(b).unwrap();
        assert_eq!(s.scan(Table::MapValue, &[], None).count(), 0);
    }
    let msg = Ledger::open(&dir)
        .err()
        .expect("a ledger without its map values must not open")
        .to_string();
    assert!(msg.contains("stored map (its map leaf's root)"), "{msg}");
    let (code, text) = fsck(&dir);
    assert_ne!(code, 0, "{text}");
    for key in &keys {
        let want = format!(
            "map value of key {} is missing",
            consentlog::core::hash::to_hex(key)
        );
        assert!(text.contains(&want), "{want}: {text}");
    }
}

fn migrate(from: &Path, to: &Path, engine: &str) -> (i32, String) {
    let r = run(&[
        "migrate",
        "--from",
        s(from),
        "--to",
        s(to),
        "--backend",
        engine,
    ]);
    (r.code, r.all())
}

/// The engine the suite does not run on by default.
fn other_engine() -> &'static str {
    match consentlog::testing::engine_from_env().as_str() {
        "sled" => "redb",
        _ => "sled",
    }
}

#[test]
fn migrate_copies_a_ledger_to_the_other_engine_unchanged() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    let people = build(&src);
    let engine = other_engine();
    let (code, text) = migrate(&src, &dst, engine);
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("migrated 12 leaves"), "{text}");
    assert_eq!(
        std::fs::read_to_string(dst.join("engine")).unwrap().trim(),
        engine
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dst.join("log.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the copied log key must stay private");
    }
    let (code, text) = fsck(&dst);
    assert_eq!(code, 0, "{text}");

    // Everything anyone can see is the same: leaves, openings, checkpoints, proofs.
    let (a, b) = (Ledger::open(&src).unwrap(), Ledger::open(&dst).unwrap());
    assert_eq!(a.public_key(), b.public_key());
    assert_eq!(a.checkpoints().unwrap(), b.checkpoints().unwrap());
    let bytes = |l: &Ledger| -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        l.read_range(0, u64::MAX, true)
            .unwrap()
            .into_iter()
            .map(|(e, o)| (e.to_bytes(), o.map(|o| o.to_bytes())))
            .collect()
    };
    let leaves = bytes(&a);
    assert_eq!(leaves.len(), 12);
    // Every event leaf's opening, and only those.
    assert_eq!(leaves.iter().filter(|(_, o)| o.is_some()).count(), 9);
    assert_eq!(leaves, bytes(&b));
    let (sa, sb) = (a.latest(), b.latest());
    assert_eq!(sa.map_leaf, sb.map_leaf);
    for p in &people {
        let subject = p.verifying_key().to_bytes();
        let t = sa.map_leaf.time;
        let pa = a.prove_consent_in(&sa, &subject, C, P, t).unwrap();
        let pb = b.prove_consent_in(&sb, &subject, C, P, t).unwrap();
        assert_eq!(
            serde_json::to_string(&pa).unwrap(),
            serde_json::to_string(&pb).unwrap()
        );
        check(&pb, &b.public_key(), &Question::default()).unwrap();
    }
    drop(a);
    // The copy is a working ledger: it takes the next events.
    decide(&b, &people[0], true);
    b.checkpoint_waiting().unwrap();
    drop(b);
    let (code, text) = fsck(&dst);
    assert_eq!(code, 0, "{text}");

    // A second migrate into the same directory is refused and changes nothing.
    let (code, text) = migrate(&src, &dst, engine);
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("not empty"), "{text}");
    let (code, text) = fsck(&dst);
    assert_eq!(code, 0, "{text}");
}

#[test]
fn migrate_of_a_damaged_ledger_leaves_no_ledger_behind() {
    let tmp = tempfile::tempdir().unwrap();
    let (src, dst) = (tmp.path().join("src"), tmp.path().join("dst"));
    build(&src);
    damage(&src, Table::Opening, &5u64.to_be_bytes(), 5);
    let (code, text) = migrate(&src, &dst, other_engine());
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("leaf 5"), "{text}");
    assert!(text.contains("not marked as a ledger"), "{text}");
    assert!(
        !dst.join("engine").exists(),
        "a failed copy must not be openable"
    );
    assert!(Ledger::open(&dst).is_err());
    // Not a ledger at all.
    let (code, text) = migrate(&tmp.path().join("nothing"), &tmp.path().join("x"), "redb");
    assert_ne!(code, 0, "{text}");
    assert!(text.contains("not a consentlog ledger"), "{text}");
}
