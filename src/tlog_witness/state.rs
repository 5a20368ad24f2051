//! What a witness remembers, in one redb database, `DIR/witness.redb`: for each log origin,
//! the latest checkpoint it cosigned, stored as the cosigned note itself (the checkpoint body,
//! the log signatures that verified, and the witness's own cosignature line), so the state is
//! readable with any signed-note tool and needs no format of its own. Its size and root hash
//! are what the next request is checked against.
//!
//! [`State::update`] reads the record and writes its successor in one redb write transaction
//! (redb allows one at a time, so checks and updates of concurrent requests never interleave)
//! and commits it with `Durability::Immediate` (fsync) before it returns: a cosignature is
//! handed out only once the checkpoint it vouches for is on disk.
//!
//! The database also records the witness's own vkey on first use, and is refused by a witness
//! with another key or name: a state carries the promises of the key that signed them.

use std::path::{Path, PathBuf};

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};

use super::checkpoint::{self, Checkpoint};

/// Origin → the latest cosigned note (UTF-8 text).
const LATEST: TableDefinition<&str, &str> = TableDefinition::new("latest_cosigned");
/// `witness` → the vkey of the witness that owns this state.
const META: TableDefinition<&str, &str> = TableDefinition::new("meta");
const META_WITNESS: &str = "witness";
/// `role` → [`Role::as_str`]: whether the state is a plain or a replaying witness's (absent in
/// states made before roles were recorded: plain).
const META_ROLE: &str = "role";
/// The database file inside the witness directory.
pub const FILE: &str = "witness.redb";
/// redb's page cache: the state is one small record per log.
const CACHE_BYTES: usize = 16 << 20;

/// What kind of witness a state belongs to: a cosignature's meaning depends on it, so a state
/// (and the key that made its promises) keeps one role for life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Cosigns append-only growth (consistency proofs only).
    Plain,
    /// Cosigns only what it has replayed ([`super::replay`]).
    Replaying,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Plain => "plain",
            Role::Replaying => "replaying",
        }
    }
}

/// The latest checkpoint cosigned for one origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub checkpoint: Checkpoint,
    /// The cosigned note, byte for byte as stored.
    pub note: String,
}

/// A storage failure, or a state that is not this witness's.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("witness state {path}: {detail}")]
    Engine { path: String, detail: String },
    #[error("witness state {path}: the record of {origin:?} is damaged: {detail}")]
    Corrupt {
        path: String,
        origin: String,
        detail: String,
    },
    #[error(
        "witness state {path} belongs to the witness {found}, not to {ours}: a witness's \
         state holds the promises of its own key; give each key (and name) its own --dir"
    )]
    OtherWitness {
        path: String,
        found: String,
        ours: String,
    },
    #[error(
        "witness state {path} belongs to a {found} witness, not a {ours} one: a key cosigns in \
         one role only; give the {ours} witness its own key, name and --dir"
    )]
    OtherRole {
        path: String,
        found: String,
        ours: &'static str,
    },
}

/// The open database.
pub struct State {
    db: Database,
    path: PathBuf,
}

impl State {
    /// Opens (or creates) `dir/witness.redb` for the witness with vkey `owner` in `role`.
    pub fn open(dir: &Path, owner: &str, role: Role) -> Result<State, StateError> {
        std::fs::create_dir_all(dir).map_err(|source| StateError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let path = dir.join(FILE);
        let db = redb::Builder::new()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| StateError::Engine {
                path: path.display().to_string(),
                detail: e.to_string(),
            })?;
        let state = State { db, path };
        state.claim(owner, role)?;
        Ok(state)
    }

    fn engine(&self, e: impl std::fmt::Display) -> StateError {
        StateError::Engine {
            path: self.path.display().to_string(),
            detail: e.to_string(),
        }
    }

    /// Records `owner` and `role` in a new state, or checks them against the recorded ones.
    fn claim(&self, owner: &str, role: Role) -> Result<(), StateError> {
        let e = |e: &dyn std::fmt::Display| self.engine(e);
        let mut w = self.db.begin_write().map_err(|x| e(&x))?;
        w.set_durability(Durability::Immediate).map_err(|x| e(&x))?;
        {
            let mut meta = w.open_table(META).map_err(|x| e(&x))?;
            let found = meta
                .get(META_WITNESS)
                .map_err(|x| e(&x))?
                .map(|v| v.value().to_string());
            match found {
                Some(f) if f != owner => {
                    return Err(StateError::OtherWitness {
                        path: self.path.display().to_string(),
                        found: f,
                        ours: owner.to_string(),
                    })
                }
                Some(_) => {}
                None => {
                    meta.insert(META_WITNESS, owner).map_err(|x| e(&x))?;
                }
            }
            let found_role = meta
                .get(META_ROLE)
                .map_err(|x| e(&x))?
                .map(|v| v.value().to_string());
            match found_role.as_deref() {
                Some(r) if r == role.as_str() => {}
                // A state from before roles were recorded is a plain witness's.
                None if role == Role::Plain => {
                    meta.insert(META_ROLE, role.as_str()).map_err(|x| e(&x))?;
                }
                None if found.is_none() => {
                    meta.insert(META_ROLE, role.as_str()).map_err(|x| e(&x))?;
                }
                other => {
                    return Err(StateError::OtherRole {
                        path: self.path.display().to_string(),
                        found: other.unwrap_or("plain").to_string(),
                        ours: role.as_str(),
                    })
                }
            }
            w.open_table(LATEST).map_err(|x| e(&x))?;
        }
        w.commit().map_err(|x| e(&x))
    }

    fn record(&self, origin: &str, note: &str) -> Result<Record, StateError> {
        let corrupt = |detail: String| StateError::Corrupt {
            path: self.path.display().to_string(),
            origin: origin.to_string(),
            detail,
        };
        let parsed = signed_note::Note::from_bytes(note.as_bytes())
            .map_err(|e| corrupt(format!("not a signed note: {e}")))?;
        let checkpoint = checkpoint::parse(parsed.text()).map_err(|e| corrupt(e.to_string()))?;
        if checkpoint.origin != origin {
            return Err(corrupt(format!(
                "stored under {origin:?} but its origin is {:?}",
                checkpoint.origin
            )));
        }
        Ok(Record {
            checkpoint,
            note: note.to_string(),
        })
    }

    /// The latest checkpoint cosigned for `origin`, if any.
    pub fn latest(&self, origin: &str) -> Result<Option<Record>, StateError> {
        let r = self.db.begin_read().map_err(|e| self.engine(e))?;
        let t = r.open_table(LATEST).map_err(|e| self.engine(e))?;
        let note = t
            .get(origin)
            .map_err(|e| self.engine(e))?
            .map(|v| v.value().to_string());
        note.map(|n| self.record(origin, &n)).transpose()
    }

    /// Every origin with a record, in order.
    pub fn origins(&self) -> Result<Vec<String>, StateError> {
        let r = self.db.begin_read().map_err(|e| self.engine(e))?;
        let t = r.open_table(LATEST).map_err(|e| self.engine(e))?;
        let mut out = Vec::new();
        for item in t.iter().map_err(|e| self.engine(e))? {
            let (k, _) = item.map_err(|e| self.engine(e))?;
            out.push(k.value().to_string());
        }
        Ok(out)
    }

    /// Atomically: reads `origin`'s record, lets `decide` look at it, and, if it returns a new
    /// cosigned note, stores it durably (fsync) before returning `decide`'s answer. If
    /// `decide` returns no note, nothing is written. The note must parse as a checkpoint of
    /// `origin` (checked before the commit).
    pub fn update<T>(
        &self,
        origin: &str,
        decide: impl FnOnce(Option<&Record>) -> (Option<String>, T),
    ) -> Result<T, StateError> {
        let e = |x: &dyn std::fmt::Display| self.engine(x);
        let mut w = self.db.begin_write().map_err(|x| e(&x))?;
        w.set_durability(Durability::Immediate).map_err(|x| e(&x))?;
        let answer = {
            let mut t = w.open_table(LATEST).map_err(|x| e(&x))?;
            let old = t
                .get(origin)
                .map_err(|x| e(&x))?
                .map(|v| v.value().to_string());
            let old = old.map(|n| self.record(origin, &n)).transpose()?;
            let (new, answer) = decide(old.as_ref());
            let Some(new) = new else {
                drop(t);
                w.abort().map_err(|x| e(&x))?;
                return Ok(answer);
            };
            self.record(origin, &new)?;
            t.insert(origin, new.as_str()).map_err(|x| e(&x))?;
            answer
        };
        w.commit().map_err(|x| e(&x))?;
        Ok(answer)
    }
}
