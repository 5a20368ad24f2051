//! Shared by the resource-fault tests (resource_faults.rs, read_only_disk.rs): posting fresh
//! opt-ins to a server, and checking that every acknowledged event survived and the ledger
//! audits clean.

use std::path::Path;

use consentlog::core::receipt::Receipt;
use consentlog::ledger::Ledger;

use super::http::{agent, post_event};
use super::people::Person;
use super::process::{run, Server};
use super::s;

/// Posts `n` fresh opt-ins (one new person each) for `log` with these names; returns the
/// receipts of those acknowledged and the statuses and bodies of those refused.
pub fn post_many(
    url: &str,
    log: &str,
    controller: &str,
    purpose: &str,
    n: usize,
) -> (Vec<Receipt>, Vec<(u16, String)>) {
    let a = agent();
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for _ in 0..n {
        let r = post_event(&a, url, &Person::on(controller, purpose).make(log, true));
        if r.status == 201 {
            ok.push(serde_json::from_str(&r.body).unwrap());
        } else {
            refused.push((r.status, r.body));
        }
    }
    (ok, refused)
}

/// Stops `srv` (it must exit cleanly), then [`assert_kept_and_audits_clean`].
pub fn stop_then_assert_kept(mut srv: Server, dir: &Path, acked: &[Receipt]) {
    assert!(srv.stop().success(), "{}", srv.stderr());
    drop(srv);
    assert_kept_and_audits_clean(dir, acked);
}

/// Every acknowledged event leaf is stored at its index with its leaf hash, and `consentlog audit`
/// passes on the ledger in `dir` after a checkpoint covering it.
pub fn assert_kept_and_audits_clean(dir: &Path, acked: &[Receipt]) {
    let l = Ledger::open(dir).unwrap();
    for r in acked {
        let e = l
            .event_leaf(r.index)
            .unwrap()
            .expect("acknowledged event leaf present");
        assert_eq!(e.leaf_hash(), r.leaf.leaf_hash(), "leaf {}", r.index);
    }
    l.checkpoint_all().unwrap();
    drop(l);
    run(&["audit", "--dir", s(dir)]).ok();
}
