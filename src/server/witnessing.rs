//! The log asks its witnesses for cosignatures (c2sp.org/tlog-witness, the client side).
//!
//! `serve --witness-policy FILE` names the witnesses (a c2sp.org/tlog-policy file whose
//! `witness` lines carry their submission URLs). One thread per witness, so a witness that is
//! slow or down delays nobody else and never an append:
//!
//! - once per interval (the rate the operator declares to witnesses; default 10 s) it takes
//!   the newest stored checkpoint and, unless the witness already cosigned it, sends
//!   `add-checkpoint` with the consistency proof from the size the witness last cosigned
//!   (zero at first, which the witness answers with 409 and its size);
//! - on 409 with `text/x.tlog.size` it proves again from the size the witness names, once;
//! - on 200 it keeps only cosignatures by the witness's key that verify on this checkpoint,
//!   and stores them with the note ([`Ledger::add_cosignatures`]), durably;
//! - on any failure it waits twice as long as before (the interval at first, at most
//!   [`MAX_BACKOFF`]) and tries again with the then newest checkpoint.
//!
//! A 409 that names the very size this log sent means the witness holds another tree of that
//! size signed by this log's key: a fork or a rolled-back log. It is logged as an error and
//! counted; the witness will not cosign this log again until that is resolved by hand.

/// What a replaying witness's 409 says when it no longer cosigns a log (the message of
/// `tlog_witness::AddError::LogCaught`).
const REPLAY_REFUSAL: &str = "replaying witness no longer cosigns this log";

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::core::add_checkpoint::{self, AddCheckpointError, SIZE_CONTENT_TYPE};
use crate::core::cosignature::CosignatureVerifier;
use crate::core::note::SignedCheckpoint;
use crate::core::policy::{Policy, PolicyWitness};
use crate::ledger::{Ledger, LedgerError};

use super::metrics::Metrics;

/// The longest wait between two tries after failures.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Default time between two submissions to one witness.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
/// Longest time one request to a witness may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What the log asks of its witnesses.
#[derive(Debug, Clone)]
pub struct WitnessConfig {
    /// The policy: the witnesses to ask (those with a URL), and the quorum verifiers apply.
    pub policy: Policy,
    /// Least time between two submissions to one witness.
    pub interval: Duration,
}

impl WitnessConfig {
    /// Checks that the policy names this log (by its public key, with its origin as the key
    /// name) and has at least one witness with a submission URL.
    pub fn check_for(&self, ledger: &Ledger) -> Result<(), String> {
        let ours = self
            .policy
            .logs
            .iter()
            .any(|l| l.vkey.key == ledger.public_key() && l.vkey.name == ledger.origin());
        if !ours {
            return Err(format!(
                "the witness policy has no `log` line for this log ({}; its vkey is in log.pub): \
                 witnesses would be asked to cosign for a log verifiers do not accept",
                ledger.origin()
            ));
        }
        if !self.policy.witnesses.iter().any(|w| w.url.is_some()) {
            return Err(
                "the witness policy lists no witness with a submission URL: nobody to ask".into(),
            );
        }
        if self.interval < Duration::from_secs(1) && !cfg!(debug_assertions) {
            // Tests run faster; a deployed log keeps its promise to witnesses.
            tracing::warn!(interval = ?self.interval, "witness interval below a second");
        }
        Ok(())
    }
}

/// The threads asking witnesses; [`Witnessing::stop`] ends them.
pub struct Witnessing {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Witnessing {
    /// Starts one thread per witness of `cfg`'s policy that has a URL.
    pub fn start(ledger: Arc<Ledger>, cfg: &WitnessConfig, metrics: Arc<Metrics>) -> Witnessing {
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let policy = Arc::new(cfg.policy.clone());
        for w in &cfg.policy.witnesses {
            let Some(url) = &w.url else {
                tracing::info!(witness = %w.name, "witness has no URL in the policy: not asked");
                continue;
            };
            let mut s = Submitter::new(ledger.clone(), w, url, metrics.clone(), policy.clone());
            let (stop, interval) = (stop.clone(), cfg.interval);
            let t = std::thread::Builder::new()
                .name(format!("witness {}", w.name))
                .spawn(move || s.run(&stop, interval))
                .expect("spawn witness thread");
            threads.push(t);
        }
        Witnessing { stop, threads }
    }

    /// Stops every thread (a request in flight finishes or times out first).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in &self.threads {
            t.thread().unpark();
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for Witnessing {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why one submission did not end in a stored cosignature.
#[derive(Debug, thiserror::Error)]
enum SubmitError {
    #[error("cannot reach the witness: {0}")]
    Transport(String),
    #[error("the witness answered {status}: {body}")]
    Status { status: u16, body: String },
    #[error("the witness's answer: {0}")]
    Answer(#[from] AddCheckpointError),
    #[error(
        "the witness holds another checkpoint of size {size} signed by this log's key: a fork \
         or a rolled-back log"
    )]
    Fork { size: u64 },
    #[error(
        "the replaying witness refuses to cosign this log any more (it replayed the leaves and \
         found a broken rule; its evidence is in its directory): {reason}"
    )]
    Refused { reason: String },
    #[error("the witness has cosigned size {witness}, beyond this log's newest checkpoint {ours}")]
    Ahead { witness: u64, ours: u64 },
    #[error("twice in a row the witness named a size other than the one proven from")]
    Moving,
    #[error("the witness has not caught up yet; it asks to retry in {0:?}")]
    NotYet(Duration),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// One witness, asked by one thread.
struct Submitter {
    ledger: Arc<Ledger>,
    name: String,
    endpoint: String,
    verifier: CosignatureVerifier,
    agent: ureq::Agent,
    metrics: Arc<Metrics>,
    /// The policy a cosigned checkpoint must meet to be what proofs carry.
    policy: Arc<Policy>,
    /// The size the witness last cosigned, as far as this log knows (0: unknown).
    witness_size: u64,
    /// The size of the last checkpoint this witness cosigned for this log (0: none yet).
    cosigned: u64,
}

/// What a successful round did.
#[derive(Debug, PartialEq, Eq)]
enum Round {
    /// The witness already cosigned the newest checkpoint.
    UpToDate,
    /// A cosignature on a checkpoint of this size was stored.
    Cosigned(u64),
}

impl Submitter {
    fn new(
        ledger: Arc<Ledger>,
        w: &PolicyWitness,
        url: &str,
        metrics: Arc<Metrics>,
        policy: Arc<Policy>,
    ) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Submitter {
            ledger,
            name: w.name.clone(),
            endpoint: format!("{}{}", url.trim_end_matches('/'), add_checkpoint::PATH),
            verifier: CosignatureVerifier::new(w.vkey.clone()).expect("a policy witness key"),
            agent,
            metrics,
            policy,
            witness_size: 0,
            cosigned: 0,
        }
    }

    fn run(&mut self, stop: &AtomicBool, interval: Duration) {
        let mut failures: u32 = 0;
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            if now < next {
                std::thread::park_timeout(next - now);
                continue;
            }
            let wait = match self.round() {
                Ok(r) => {
                    if let Round::Cosigned(size) = r {
                        tracing::debug!(witness = %self.name, size, "cosigned");
                    }
                    failures = 0;
                    interval
                }
                // A replaying witness that has not replayed this far: not a failure.
                Err(SubmitError::NotYet(after)) => {
                    tracing::debug!(witness = %self.name, ?after, "not replayed this far yet");
                    after.clamp(interval, MAX_BACKOFF.max(interval))
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    self.metrics.witness_failed(&self.name);
                    match e {
                        SubmitError::Fork { .. }
                        | SubmitError::Ahead { .. }
                        | SubmitError::Refused { .. } => {
                            tracing::error!(witness = %self.name, "{e}")
                        }
                        _ => tracing::warn!(witness = %self.name, failures, "{e}"),
                    }
                    interval
                        .saturating_mul(1 << (failures - 1).min(16))
                        .min(MAX_BACKOFF.max(interval))
                }
            };
            let newest = self.ledger.latest().checkpoint.size;
            self.metrics
                .witness_progress(&self.name, self.cosigned, newest);
            next = Instant::now() + wait;
        }
    }

    /// Asks for a cosignature on the newest stored checkpoint, proving from the size the
    /// witness last cosigned; after a 409 naming another size, once more from that size.
    fn round(&mut self) -> Result<Round, SubmitError> {
        let cp = self.ledger.latest().checkpoint.clone();
        if self.cosigned == cp.size {
            return Ok(Round::UpToDate);
        }
        for _ in 0..2 {
            match self.submit(&cp)? {
                None => {
                    (self.witness_size, self.cosigned) = (cp.size, cp.size);
                    return Ok(Round::Cosigned(cp.size));
                }
                // It names the size proven from: only a different root at that size (the
                // witness refuses a bad proof with 422) explains it.
                Some(size) if size == self.witness_size => {
                    return Err(SubmitError::Fork { size });
                }
                Some(size) => self.witness_size = size,
            }
        }
        Err(SubmitError::Moving)
    }

    /// One `add-checkpoint` request for `cp` from `self.witness_size`: `None` when the
    /// cosignature is stored, the witness's size on 409.
    fn submit(&mut self, cp: &SignedCheckpoint) -> Result<Option<u64>, SubmitError> {
        let old = self.witness_size;
        if old > cp.size {
            return Err(SubmitError::Ahead {
                witness: old,
                ours: cp.size,
            });
        }
        let proof: Vec<_> = if old == 0 {
            Vec::new()
        } else {
            let p = self.ledger.prove_consistency(old, Some(cp.size))?;
            p.path.iter().map(|h| h.0).collect()
        };
        let body = add_checkpoint::encode_request(old, &proof, &cp.note)?;
        let mut resp = self
            .agent
            .post(&self.endpoint)
            .header("Content-Type", "text/plain; charset=utf-8")
            .send(&body[..])
            .map_err(|e| SubmitError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let answer = resp
            .body_mut()
            .with_config()
            .limit(add_checkpoint::MAX_RESPONSE_BYTES as u64 + 1)
            .read_to_vec()
            .map_err(|e| SubmitError::Transport(e.to_string()))?;
        match status {
            200 => {
                let kept = add_checkpoint::check_response(&cp.note, &answer, &self.verifier)?;
                let lines: Vec<String> = kept.into_iter().map(|c| c.line).collect();
                let note = self.ledger.add_cosignatures(cp, &lines)?;
                self.metrics.witness_cosigned(&self.name);
                // With this cosignature the note may now meet the policy: proofs carry it.
                let now = crate::ledger::clock::now_ms() / 1000;
                if self.policy.check_note(note.as_bytes(), now).is_ok() {
                    self.ledger.set_witnessed(cp.size)?;
                }
                Ok(None)
            }
            409 if content_type.starts_with(SIZE_CONTENT_TYPE) => {
                Ok(Some(add_checkpoint::parse_size(&answer)?))
            }
            // A replaying witness that caught this log breaking a rule says so in its 409
            // (src/tlog_witness): not a fork of this size, but a refusal for good.
            409 if String::from_utf8_lossy(&answer).contains(REPLAY_REFUSAL) => {
                Err(SubmitError::Refused {
                    reason: String::from_utf8_lossy(&answer)
                        .trim()
                        .chars()
                        .take(500)
                        .collect(),
                })
            }
            // A 409 without a size: the witness holds another root of this very size.
            409 => Err(SubmitError::Fork { size: cp.size }),
            // A replaying witness not yet at this size (docs/WITNESSING.md).
            503 if retry_after.is_some() => {
                Err(SubmitError::NotYet(retry_after.unwrap_or_default()))
            }
            _ => Err(SubmitError::Status {
                status,
                body: String::from_utf8_lossy(&answer[..answer.len().min(200)])
                    .trim()
                    .to_string(),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The log tells a replaying witness's refusal from a fork by the witness's own words.
    #[test]
    fn a_replaying_witness_refusal_is_recognised() {
        let body = crate::tlog_witness::AddError::LogCaught("map root mismatch".into()).to_string();
        assert!(body.contains(REPLAY_REFUSAL), "{body}");
    }
}
