//! State keys hide who (issue 11, attack 4): given a person's public key and the names they
//! used, nothing public finds their leaves. Everything public is collected from a real server
//! (every unauthenticated route) and from `consentlog export --no-openings`, then searched for
//! the person's key and for every state key anyone could compute without the log's VRF secret
//! key. As a control, the real state key (which only the log can compute) is found.

use crate::support::*;
use consentlog::core::hash::to_hex;
use consentlog::core::vrf::{StateKeyInput, VrfSecretKey};
use consentlog::ledger::Ledger;

/// Every public answer of the server, concatenated.
fn public_bytes(srv: &Server, size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let mut get = |path: String| {
        let r = srv.get(&path);
        assert_eq!(r.status, 200, "{path}: {r:#?}");
        out.extend_from_slice(r.body.as_bytes());
    };
    get("/v1/checkpoint".into());
    get("/v1/checkpoints?from=0".into());
    get(format!("/v1/entries?start=0&end={size}"));
    get("/metrics".into());
    get("/v1/openapi.json".into());
    get("/".into());
    for i in 0..size {
        get(format!("/v1/proofs/inclusion?index={i}&size={size}"));
    }
    get(format!("/v1/proofs/consistency?old=2&new={size}"));
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

/// Raw bytes, and lowercase hex and standard base64 as the formats write them.
fn encodings(b: &[u8; 32]) -> Vec<Vec<u8>> {
    use base64::Engine;
    vec![
        b.to_vec(),
        to_hex(b).into_bytes(),
        base64::engine::general_purpose::STANDARD
            .encode(b)
            .into_bytes(),
    ]
}

#[test]
fn nothing_public_finds_a_person_from_their_key_and_names() {
    let mut srv = Server::start(&["--checkpoint-interval", "20"]);
    let o = srv.origin.clone();
    let mut alice = Person::on(CONTROLLER, PURPOSE);
    let mut alice_ads = Person::with_key(alice.key.clone(), "ads.example", "cawg.data_mining");
    let mut bob = Person::on(CONTROLLER, PURPOSE);
    let mut last = 0;
    for opt_in in [true, false, true] {
        srv.append(&alice.step(&o, opt_in));
        srv.append(&bob.step(&o, opt_in));
        last = srv.append(&alice_ads.step(&o, opt_in)).index;
    }
    srv.wait_covered(last + 1);
    let size = srv.checkpoint().size;
    let mut public = public_bytes(&srv, size);
    assert!(srv.stop().success());

    // The public export of the stopped ledger.
    let out = srv.dir.parent().unwrap().join("public.export");
    run(&[
        "export",
        "--dir",
        s(&srv.dir),
        "--out",
        s(&out),
        "--no-openings",
    ])
    .ok();
    public.extend(std::fs::read(&out).unwrap());

    let subject = alice.subject();
    for enc in encodings(&subject) {
        assert!(!contains(&public, &enc), "the subject's key is public");
    }
    // What anyone could compute from the key and the names: hashes of the triple (v1's state
    // key among them), and VRF outputs under keys other than the log's.
    let mut guesses: Vec<[u8; 32]> = Vec::new();
    for (c, p) in [(CONTROLLER, PURPOSE), ("ads.example", "cawg.data_mining")] {
        let mut h = blake3::Hasher::new_derive_key("consentlog v1 state key");
        h.update(&subject);
        h.update(&(c.len() as u64).to_le_bytes());
        h.update(c.as_bytes());
        h.update(&(p.len() as u64).to_le_bytes());
        h.update(p.as_bytes());
        guesses.push(*h.finalize().as_bytes());
        let input = StateKeyInput {
            origin: &o,
            subject: &subject,
            controller: c,
            purpose: p,
        };
        guesses.push(*blake3::hash(&input.alpha()).as_bytes());
        guesses.push(<sha2::Sha256 as sha2::Digest>::digest(input.alpha()).into());
        for seed in [[1u8; 64], [0x24; 64], [0xff; 64]] {
            guesses.push(VrfSecretKey::from_random(&seed).prove_state_key(&input).0);
        }
    }
    for g in &guesses {
        for enc in encodings(g) {
            assert!(!contains(&public, &enc), "a guessable key is public");
        }
    }

    // Control: the real state key, which only the log's VRF key computes, is in the leaves
    // (so the search above would have found a guessable one).
    let l = Ledger::open(&srv.dir).unwrap();
    let (k, _) = l
        .state_key(&subject, CONTROLLER, PURPOSE)
        .unwrap()
        .expect("alice's key");
    assert!(encodings(&k).iter().any(|e| contains(&public, e)));
    // And the VRF secret key file is the operator's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(srv.dir.join("vrf.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
}
