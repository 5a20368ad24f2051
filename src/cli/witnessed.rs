//! What the verifying commands say about witnesses (`--policy FILE`, docs/WITNESSING.md): the
//! cosigned checkpoint a proof or history carries is checked against the verifier's policy and
//! against the policy the log declares in its genesis leaf, if any
//! ([`crate::core::witnessed::check_witnessed`]). Failing either makes the proof invalid
//! (exit 2). With no policy at all the verdict says the operator is trusted.

use std::path::Path;

use crate::core::leaf::GenesisLeaf;
use crate::core::note::SignedCheckpoint;
use crate::core::policy::Policy;
use crate::core::witnessed::{
    check_cosigned, check_witnessed, replaying_witnesses, WitnessVerdict, WitnessedJson,
};

use super::Failure;

/// The first words of a verdict that no policy checked.
pub const UNWITNESSED: &str = "UNWITNESSED: the operator is trusted";

/// Reads `--policy FILE` (exit 2 when it cannot be read: nothing can be verified under it).
/// Warns when the policy names no replaying witness.
pub fn load(file: Option<&Path>) -> Result<Option<Policy>, Failure> {
    let Some(file) = file else {
        return Ok(None);
    };
    let bytes = std::fs::read(file)
        .map_err(|e| Failure::new(2, format!("--policy {}: {e}", file.display())))?;
    let policy = Policy::parse(&bytes)
        .map_err(|e| Failure::new(2, format!("--policy {}: {e}", file.display())))?;
    if replaying_witnesses(&policy).is_empty() {
        eprintln!(
            "warning: --policy {} names no replaying witness (a group named replay…): its \
             quorum shows the log grew append-only, not that its map leaves are true",
            file.display()
        );
    }
    Ok(Some(policy))
}

/// What the witnesses showed for one proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessing {
    /// A policy was applied and met.
    pub witnessed: bool,
    /// A replaying witness cosigned.
    pub map_replayed: bool,
    /// The cosigners' names and the cosigned size, when witnessed.
    pub cosigners: Vec<String>,
    pub cosigned_size: Option<u64>,
}

impl Witnessing {
    /// The words a verdict line starts with.
    pub fn prefix(&self) -> String {
        if self.witnessed {
            format!(
                "witnessed by {} at size {} (map_replayed: {}): ",
                self.cosigners.join(", "),
                self.cosigned_size.unwrap_or(0),
                if self.map_replayed { "yes" } else { "no" }
            )
        } else {
            format!("{UNWITNESSED}: ")
        }
    }
}

/// Checks the cosigned checkpoint `witnessed` a verified proof carries against `policy` (the
/// verifier's) and the policy `genesis` declares, for the proof's verified signed checkpoint
/// and map leaf time. An error is why the proof does not count.
pub fn check(
    policy: Option<&Policy>,
    genesis: &GenesisLeaf,
    log_key: &ed25519_dalek::VerifyingKey,
    signed: &SignedCheckpoint,
    map_time: u64,
    witnessed: Option<&WitnessedJson>,
) -> Result<Witnessing, String> {
    each_policy(policy, genesis, |p| {
        let now = crate::ledger::clock::now_ms() / 1000;
        check_witnessed(p, log_key, signed, map_time, witnessed, now).map_err(|e| e.to_string())
    })
}

/// Checks that the checkpoint note of a receipt (docs/FORMAT.md §7, "Witnessed receipts")
/// meets `policy` (the verifier's) and the policy `genesis` declares, at the verifier's clock.
/// A receipt rests on no map leaf: there is no freshness rule beyond the policy's own.
pub fn check_note(
    policy: Option<&Policy>,
    genesis: &GenesisLeaf,
    log_key: &ed25519_dalek::VerifyingKey,
    note: &str,
) -> Result<Witnessing, String> {
    each_policy(policy, genesis, |p| {
        let now = crate::ledger::clock::now_ms() / 1000;
        check_cosigned(p, log_key, note, now)
            .map(|(_, v, _)| v)
            .map_err(|e| e.to_string())
    })
}

/// The policy a genesis leaf declares, if any.
pub fn declared(genesis: &GenesisLeaf) -> Result<Option<Policy>, String> {
    genesis
        .witness_policy
        .as_deref()
        .map(|text| {
            Policy::parse(text.as_bytes())
                .map_err(|e| format!("the witness policy in the log's genesis leaf: {e}"))
        })
        .transpose()
}

/// Applies `check` under `policy` and under the one `genesis` declares; every one must pass.
fn each_policy(
    policy: Option<&Policy>,
    genesis: &GenesisLeaf,
    check: impl Fn(&Policy) -> Result<WitnessVerdict, String>,
) -> Result<Witnessing, String> {
    let declared = declared(genesis)?;
    let mut out = Witnessing {
        witnessed: false,
        map_replayed: false,
        cosigners: Vec::new(),
        cosigned_size: None,
    };
    for (p, whose) in [
        (policy, "--policy"),
        (declared.as_ref(), "the log's declared policy"),
    ] {
        let Some(p) = p else { continue };
        let v = check(p).map_err(|e| format!("{whose}: {e}"))?;
        out.witnessed = true;
        out.map_replayed |= v.map_replayed;
        out.cosigned_size = Some(v.size);
        for (name, _) in v.cosigners {
            if !out.cosigners.contains(&name) {
                out.cosigners.push(name);
            }
        }
    }
    Ok(out)
}
