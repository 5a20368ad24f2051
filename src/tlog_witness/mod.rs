//! `consentlog witness`: a plain transparency-log witness speaking c2sp.org/tlog-witness, for
//! any log whose checkpoints are c2sp.org/tlog-checkpoint notes over an RFC 6962 SHA-256 tree
//! signed with Ed25519 note signatures (signed-note type 0x01), consentlog's or not.
//!
//! # Contract
//!
//! A witness has a name, an Ed25519 key and a list of log keys (vkeys, whose names are the
//! log origins). For each origin it remembers the latest checkpoint it cosigned (nothing, at
//! first: size 0 and the empty tree's root). `POST <prefix>/add-checkpoint`
//! ([`routes::router`]) with a body of `old N\n`, up to 63 base64 consistency-proof lines, an
//! empty line and a checkpoint note ([`request`]) is answered, in this order of checks
//! (c2sp.org/tlog-witness, "add-checkpoint"):
//!
//! | status | when | body |
//! |---|---|---|
//! | 413 | the body is larger than the limit (default [`DEFAULT_BODY_LIMIT`]) | text |
//! | 400 | the body, the note or the checkpoint is malformed ([`request`], [`checkpoint`]) | text |
//! | 404 | the checkpoint's origin names no configured log | text |
//! | 403 | no signature by a configured key of that log verifies (signatures by unknown keys are ignored; a bad one by a known key is refused) | text |
//! | 400 | `old` is larger than the checkpoint's size | text |
//! | 409 | `old` is not the size of the latest checkpoint cosigned for the origin (0 if none) | that size in decimal and `\n`, `Content-Type: text/x.tlog.size` |
//! | 409 | the checkpoint has that same size but another root hash (a fork) | text (not `text/x.tlog.size`: re-sending from that size cannot help) |
//! | 422 | the consistency proof from the cosigned checkpoint to this one does not verify (it must be empty from 0 and between equal sizes) | text |
//! | 200 | all checks passed | one cosignature line `— <name> <base64>\n` |
//! | 503 | the state could not be read or written (nothing was cosigned) | text, `Retry-After` |
//! | 500 | the witness could not sign (its clock is beyond 2^63 - 1 seconds) | text |
//!
//! A 200 is sent only after the new checkpoint is durably stored ([`state`]: one redb write
//! transaction per request, fsynced, so the check against the stored size and the update are
//! atomic under concurrent requests). Every refused request leaves the state as it was. The
//! same checkpoint may be submitted again (`old` = its size, empty proof) and is cosigned
//! again with a new timestamp.
//!
//! Cosignatures are c2sp.org/tlog-cosignature `cosignature/v1` (Ed25519, key id
//! `SHA-256(name || "\n" || 0x04 || key)[:4]`, [`crate::core::cosignature`]), timestamped in
//! POSIX seconds from the injected [`Clock`], never earlier than the previous cosignature for
//! the same log (a clock stepped back cannot make the witness claim that a smaller tree was
//! the largest it had seen after it had seen a larger one).
//!
//! What a cosignature does not say: anything about the leaves (a plain witness sees only tree
//! heads and proofs) or the extension lines of a checkpoint.
//!
//! A **replaying** witness ([`Witness::open_replaying`], [`replay`]) adds one gate before the
//! cosignature: a checkpoint beyond the size it has replayed gets 503 with `Retry-After`
//! ([`AddError::NotReplayed`], a deviation from tlog-witness, which has no "not yet"); one whose
//! root is not the replayed tree's at its size, or of a log it caught lying, gets 409
//! ([`AddError::NotReplayedRoot`], [`AddError::LogCaught`]). Its state records its role: a
//! plain witness's directory is refused in replay mode and the other way round.
//!
//! | file | owns |
//! |---|---|
//! | [`request`] | the add-checkpoint body, parsed strictly |
//! | [`checkpoint`] | the tlog-checkpoint body of any log (extension lines allowed) |
//! | [`state`] | the per-origin latest cosigned note in redb, atomic durable updates |
//! | [`replay`] | the replaying witness: follows a consentlog log, replays it, gates cosignatures |
//! | [`routes`] | the axum router and the HTTP answers of [`AddError`] |
//! | [`serve`] | the listener: connection limits, timeouts, graceful stop (as `serve`'s) |

pub mod checkpoint;
pub mod replay;
mod replay_keys;
pub mod request;
pub mod routes;
pub mod serve;
pub mod state;

pub use routes::{router, router_with, DEFAULT_BODY_LIMIT};
pub use serve::{serve, serve_on, Limits};

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use signed_note::{Note, VerifierList};

use crate::core::cosignature::{self, Cosigner};
use crate::core::tlog::{check_consistency, ConsistencyError, Sha256Hasher, TreeHasher, TreeSize};
use crate::core::vkey::{NoteVerifier, Vkey, VkeyError, TYPE_COSIGNATURE_V1, TYPE_ED25519};
use crate::ledger::clock::Clock;

use replay::{Replay, ReplayError};
use state::{Record, Role, State, StateError};

/// Why a witness could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("witness name: {0}")]
    Name(VkeyError),
    #[error("log key {vkey}: a log key must be an Ed25519 note key (signed-note type 0x01)")]
    LogKeyType { vkey: String },
    #[error("no log configured: give at least one log key")]
    NoLogs,
    #[error("{0}")]
    State(#[from] StateError),
    #[error("{0}")]
    Replay(#[from] ReplayError),
}

/// Why an add-checkpoint request was refused; [`AddError::status`] is the HTTP status the
/// specification gives it.
#[derive(Debug, thiserror::Error)]
pub enum AddError {
    #[error("malformed request: {0}")]
    Malformed(String),
    #[error("unknown log origin {0:?}")]
    UnknownOrigin(String),
    #[error("no signature by a known key of log {origin:?} verifies: {detail}")]
    BadSignature { origin: String, detail: String },
    #[error("old size {old} is larger than the checkpoint's size {size}")]
    OldTooLarge { old: u64, size: u64 },
    #[error("old size {old} is not the size of the latest cosigned checkpoint, {size}")]
    Conflict { old: u64, size: u64 },
    #[error("the checkpoint has the size of the latest cosigned one, {size}, but another root")]
    RootConflict { size: u64 },
    #[error("the consistency proof does not verify: {0}")]
    BadProof(ConsistencyError),
    #[error("the witness's state could not be read or written (nothing was cosigned): {0}")]
    Storage(String),
    /// The witness could not sign (a clock beyond 2^63 - 1 seconds).
    #[error("the witness could not cosign: {0}")]
    Cosign(String),
    /// A replaying witness has not replayed this far yet (503 with `Retry-After`: a deviation
    /// from c2sp.org/tlog-witness, which has no "not yet").
    #[error("not replayed yet: the checkpoint has size {size}, this witness has replayed {replayed} leaves; retry later")]
    NotReplayed { size: u64, replayed: u64 },
    /// A replaying witness's replayed tree has no map leaf at this size, or another root.
    #[error("the checkpoint of size {size} is not the replayed log's: {detail}")]
    NotReplayedRoot { size: u64, detail: String },
    /// A replaying witness caught the log breaking a rule and no longer cosigns it.
    #[error("this replaying witness no longer cosigns this log: {0}")]
    LogCaught(String),
}

impl AddError {
    /// The HTTP status of the refusal.
    pub fn status(&self) -> u16 {
        match self {
            AddError::Malformed(_) | AddError::OldTooLarge { .. } => 400,
            AddError::UnknownOrigin(_) => 404,
            AddError::BadSignature { .. } => 403,
            AddError::Conflict { .. } | AddError::RootConflict { .. } => 409,
            AddError::NotReplayedRoot { .. } | AddError::LogCaught(_) => 409,
            AddError::BadProof(_) => 422,
            AddError::Storage(_) | AddError::NotReplayed { .. } => 503,
            AddError::Cosign(_) => 500,
        }
    }

    /// For the 409 of a stale `old`: the size of the latest cosigned checkpoint, the body of
    /// the answer (`text/x.tlog.size`). The 409 of a same-size fork has a plain-text body
    /// instead, so that a client that re-sends from the size in a `text/x.tlog.size` body (as
    /// the specification invites) does not loop on it.
    pub fn conflict_size(&self) -> Option<u64> {
        match self {
            AddError::Conflict { size, .. } => Some(*size),
            _ => None,
        }
    }
}

/// A witness: its key, the logs it witnesses and its state.
pub struct Witness {
    key: SigningKey,
    vkey: Vkey,
    /// Origin → the log's keys (several during a key rotation).
    logs: BTreeMap<String, Vec<Vkey>>,
    state: State,
    clock: Arc<dyn Clock>,
    /// For a replaying witness: the replay that gates its cosignatures.
    replay: Option<Arc<Replay>>,
}

impl std::fmt::Debug for Witness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Witness")
            .field("vkey", &self.vkey.to_text())
            .field("logs", &self.logs.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Witness {
    /// Opens (or creates) the witness state in `dir` for the witness `name` with `key`,
    /// witnessing the logs of `logs` (Ed25519 note vkeys; each key's name is its log's
    /// origin), cosigning at the times of `clock`. Refuses a state made by another witness.
    pub fn open(
        dir: &Path,
        key: SigningKey,
        name: &str,
        logs: Vec<Vkey>,
        clock: Arc<dyn Clock>,
    ) -> Result<Witness, OpenError> {
        Self::open_as(dir, key, name, logs, clock, Role::Plain)
    }

    /// Opens (or creates) a replaying witness in `dir` for the one consentlog log `log`
    /// served at `url` ([`replay`]): it cosigns only checkpoints of the log up to the size it
    /// has replayed. Start following the log with `witness.replay().spawn(..)`. Refuses a
    /// plain witness's state (and [`Witness::open`] refuses a replaying witness's).
    pub fn open_replaying(
        dir: &Path,
        key: SigningKey,
        name: &str,
        log: Vkey,
        url: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Witness, OpenError> {
        let mut w = Self::open_as(
            dir,
            key,
            name,
            vec![log.clone()],
            clock.clone(),
            Role::Replaying,
        )?;
        let replay = Replay::open(dir, &log.name, log.key, url, clock)?;
        w.replay = Some(Arc::new(replay));
        Ok(w)
    }

    /// A replaying witness's replay (None for a plain witness).
    pub fn replay(&self) -> Option<&Arc<Replay>> {
        self.replay.as_ref()
    }

    fn open_as(
        dir: &Path,
        key: SigningKey,
        name: &str,
        logs: Vec<Vkey>,
        clock: Arc<dyn Clock>,
        role: Role,
    ) -> Result<Witness, OpenError> {
        let vkey =
            Vkey::new(name, TYPE_COSIGNATURE_V1, key.verifying_key()).map_err(OpenError::Name)?;
        if logs.is_empty() {
            return Err(OpenError::NoLogs);
        }
        let mut by_origin: BTreeMap<String, Vec<Vkey>> = BTreeMap::new();
        for v in logs {
            if v.sig_type != TYPE_ED25519 {
                return Err(OpenError::LogKeyType { vkey: v.to_text() });
            }
            let keys = by_origin.entry(v.name.clone()).or_default();
            if !keys.contains(&v) {
                keys.push(v);
            }
        }
        let state = State::open(dir, &vkey.to_text(), role)?;
        Ok(Witness {
            key,
            vkey,
            logs: by_origin,
            state,
            clock,
            replay: None,
        })
    }

    /// The witness's public key as a vkey (type 0x04): the line operators put in policies.
    pub fn vkey(&self) -> &Vkey {
        &self.vkey
    }

    /// The witness's name (its key name in cosignature lines).
    pub fn name(&self) -> &str {
        &self.vkey.name
    }

    /// The origins of the logs it witnesses, in order.
    pub fn origins(&self) -> impl Iterator<Item = &str> {
        self.logs.keys().map(String::as_str)
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Result<Option<Record>, StateError> {
        self.state.latest(origin)
    }

    /// The timestamp of this witness's cosignature in a stored note (0 if it has none, e.g.
    /// when it was written under another key).
    fn cosigned_at(&self, rec: &Record) -> u64 {
        let Ok(note) = Note::from_bytes(rec.note.as_bytes()) else {
            return 0;
        };
        let id = self.vkey.key_id();
        let verifier = cosignature::CosignatureVerifier::new(self.vkey.clone())
            .expect("the witness's own vkey has type 0x04");
        let list = VerifierList::new(vec![Box::new(verifier)]);
        match note.verify(&list) {
            Ok((ok, _)) => ok
                .iter()
                .filter(|s| s.name() == self.vkey.name && s.id() == id)
                .filter_map(|s| cosignature::timestamp(s.signature()))
                .max()
                .unwrap_or(0),
            Err(_) => 0,
        }
    }

    /// Handles one add-checkpoint body: the cosignature line(s) to answer with 200, or the
    /// refusal. Blocks on storage (run it off an async executor's threads).
    pub fn add_checkpoint(&self, body: &[u8]) -> Result<String, AddError> {
        let req = request::parse(body).map_err(|e| AddError::Malformed(e.to_string()))?;
        let note = Note::from_bytes(req.note)
            .map_err(|e| AddError::Malformed(format!("checkpoint note: {e}")))?;
        let cp = checkpoint::parse(note.text()).map_err(|e| AddError::Malformed(e.to_string()))?;
        let keys = self
            .logs
            .get(&cp.origin)
            .ok_or_else(|| AddError::UnknownOrigin(cp.origin.clone()))?;
        let verifiers = VerifierList::new(
            keys.iter()
                .map(|k| {
                    Box::new(NoteVerifier::new(k.clone()).expect("type 0x01 checked at open"))
                        as Box<dyn signed_note::Verifier>
                })
                .collect(),
        );
        let (verified, _) = note
            .verify(&verifiers)
            .map_err(|e| AddError::BadSignature {
                origin: cp.origin.clone(),
                detail: e.to_string(),
            })?;
        if req.old > cp.size {
            return Err(AddError::OldTooLarge {
                old: req.old,
                size: cp.size,
            });
        }
        // A replaying witness first asks its replay: a conflict with what it replayed, or a
        // log it caught, is answered at once (with evidence where there is some). "Not
        // replayed yet" waits until the checks every witness makes have passed, so that a
        // stale `old` still gets 409 and a bad proof 422 (a forked branch larger than the
        // replay is refused, not told to come back later).
        let mut not_yet = None;
        if let Some(r) = &self.replay {
            match r.gate(
                &cp.origin,
                cp.size,
                &cp.root,
                &String::from_utf8_lossy(req.note),
            ) {
                Ok(()) => {}
                Err(e @ AddError::NotReplayed { .. }) => not_yet = Some(e),
                Err(e) => return Err(e),
            }
        }
        let h = Sha256Hasher;
        let empty = h.empty_root();
        let outcome = self.state.update(&cp.origin, |rec| {
            let (size, root) = rec.map_or((0, empty), |r| (r.checkpoint.size, r.checkpoint.root));
            if req.old != size {
                return (None, Err(AddError::Conflict { old: req.old, size }));
            }
            match check_consistency(
                &h,
                TreeSize(size),
                TreeSize(cp.size),
                &root,
                &cp.root,
                &req.proof,
            ) {
                Ok(()) => {}
                Err(ConsistencyError::SameSizeRootMismatch { .. }) => {
                    return (None, Err(AddError::RootConflict { size }))
                }
                // Both empty, but the submitted root of size 0 is not the empty root.
                Err(ConsistencyError::NewRootMismatch) if cp.size == 0 => {
                    return (None, Err(AddError::RootConflict { size }))
                }
                Err(e) => return (None, Err(AddError::BadProof(e))),
            }
            if let Some(e) = not_yet.take() {
                return (None, Err(e));
            }
            let now = self.clock.now_ms() / 1000;
            let timestamp = rec.map_or(now, |r| now.max(self.cosigned_at(r)));
            let cosigner = Cosigner {
                name: &self.vkey.name,
                key: &self.key,
                timestamp,
            };
            let sig = signed_note::Signer::sign(&cosigner, note.text())
                .map_err(signed_note::NoteError::from)
                .and_then(|s| {
                    signed_note::Signature::new(
                        cosigner.name.to_string(),
                        signed_note::Signer::key_id(&cosigner),
                        s,
                    )
                });
            let sig = match sig {
                Ok(s) => s,
                Err(e) => return (None, Err(AddError::Cosign(e.to_string()))),
            };
            let mut sigs = verified.clone();
            sigs.push(sig.clone());
            let stored = match Note::new(note.text(), &sigs) {
                Ok(n) => String::from_utf8(n.to_bytes()).expect("notes are UTF-8"),
                Err(e) => return (None, Err(AddError::Cosign(e.to_string()))),
            };
            let line = String::from_utf8(sig.to_bytes()).expect("signature lines are UTF-8");
            (Some(stored), Ok(line))
        });
        match outcome {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("witness state: {e}");
                Err(AddError::Storage(
                    "a storage failure, logged on the witness; retry later".into(),
                ))
            }
        }
    }
}
