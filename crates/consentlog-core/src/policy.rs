//! Trust policies, c2sp.org/tlog-policy: which logs are accepted, which witnesses are known,
//! and the quorum of witness cosignatures a checkpoint needs to count.
//!
//! Parsing follows the specification strictly: whitespace is spaces and tabs, comment lines
//! start with `#` (after optional whitespace), names share one namespace with `none`
//! predefined, a group names only earlier names and each name joins at most one group, `k`
//! is decimal with 1 ≤ k ≤ n, there is exactly one `quorum` line, and no two logs or two
//! witnesses wrap the same public key. A trailing `#…` on a definition line is an extra item,
//! not a comment, and is refused.
//!
//! [`Policy::check_note`] verifies a checkpoint note: a valid signature by one of the logs,
//! every signature line by a known key valid (one that fails refuses the note, as signed-note
//! recommends), unknown lines ignored, cosignature timestamps not in the future, and the
//! quorum met by the witnesses whose cosignatures verified.

use std::collections::{BTreeSet, HashMap, HashSet};

use super::cosignature::{self, CosignatureVerifier};
use super::vkey::{NoteVerifier, Vkey, VkeyError, TYPE_COSIGNATURE_V1, TYPE_ED25519};

/// Largest policy file read.
pub const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Most logs, witnesses and groups each (the specification asks for at least 32).
pub const MAX_ITEMS: usize = 256;

/// A member of a group, or the quorum: a witness or a group, by index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Member {
    Witness(usize),
    Group(usize),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyLog {
    pub vkey: Vkey,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyWitness {
    pub name: String,
    pub vkey: Vkey,
    pub url: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyGroup {
    pub name: String,
    /// How many members must have witnessed.
    pub threshold: usize,
    pub members: Vec<Member>,
}

/// A parsed policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub logs: Vec<PolicyLog>,
    pub witnesses: Vec<PolicyWitness>,
    pub groups: Vec<PolicyGroup>,
    /// `None` for `quorum none`.
    pub quorum: Option<Member>,
}

/// Why a policy file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyError {
    #[error("policy file is larger than {MAX_POLICY_BYTES} bytes")]
    TooLarge,
    #[error("policy line {line}: byte {byte:#04x} is not allowed (only tab, newline, 0x20-0x7e and 0x80-0xff)")]
    Byte { line: usize, byte: u8 },
    #[error("policy line {line}: {reason}")]
    Syntax { line: usize, reason: String },
    #[error("policy line {line}: {source}")]
    Key { line: usize, source: VkeyError },
    #[error("policy line {line}: name {name:?} is already defined")]
    Redefined { line: usize, name: String },
    #[error("policy line {line}: {name:?} is not defined on an earlier line")]
    Undefined { line: usize, name: String },
    #[error("policy line {line}: {name:?} is already a member of a group")]
    MemberTwice { line: usize, name: String },
    #[error("policy line {line}: the public key is already listed on line {first}")]
    DuplicateKey { line: usize, first: usize },
    #[error("policy line {line}: more than {MAX_ITEMS} {what}")]
    TooMany { line: usize, what: &'static str },
    #[error("policy has no quorum line")]
    NoQuorum,
    #[error("policy line {line}: a second quorum line")]
    SecondQuorum { line: usize },
}

/// Why a checkpoint note does not count under a policy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PolicyCheckError {
    #[error("not a signed note: {0}")]
    Note(String),
    #[error("no signature by a log of the policy verifies")]
    NoLogSignature,
    #[error("signature line by {name} (key id {id:08x}) does not verify")]
    BadSignature { name: String, id: u32 },
    #[error(
        "cosignature by witness {witness} is dated {timestamp}, after the verifier's clock {now}"
    )]
    FutureCosignature {
        witness: String,
        timestamp: u64,
        now: u64,
    },
    #[error("witness quorum not met: cosigned by {cosigned:?}")]
    Quorum { cosigned: Vec<String> },
}

/// What a note proved under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Witnessed {
    /// The log whose signature verified (index into `logs`).
    pub log: usize,
    /// The note's text (origin, size, root lines).
    pub text: String,
    /// Witnesses whose cosignatures verified, with their timestamps (POSIX seconds).
    pub cosigned: Vec<(usize, u64)>,
}

fn syntax(line: usize, reason: impl Into<String>) -> PolicyError {
    PolicyError::Syntax {
        line,
        reason: reason.into(),
    }
}

impl Policy {
    /// Parses a policy file.
    pub fn parse(bytes: &[u8]) -> Result<Self, PolicyError> {
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(PolicyError::TooLarge);
        }
        let mut p = Policy {
            logs: vec![],
            witnesses: vec![],
            groups: vec![],
            quorum: None,
        };
        let mut names: HashMap<Vec<u8>, Member> = HashMap::new();
        let mut in_group: HashSet<Member> = HashSet::new();
        let mut keys: HashMap<(u8, [u8; 32]), usize> = HashMap::new();
        let mut quorum_seen = false;
        for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
            let line = i + 1;
            if let Some(&byte) = raw
                .iter()
                .find(|&&b| !(b == b'\t' || (0x20..=0x7e).contains(&b) || b >= 0x80))
            {
                return Err(PolicyError::Byte { line, byte });
            }
            let items: Vec<&[u8]> = raw
                .split(|&b| b == b' ' || b == b'\t')
                .filter(|t| !t.is_empty())
                .collect();
            let Some((&keyword, args)) = items.split_first() else {
                continue;
            };
            if keyword.starts_with(b"#") {
                continue;
            }
            let text = |t: &[u8]| -> Result<String, PolicyError> {
                String::from_utf8(t.to_vec()).map_err(|_| syntax(line, "a key or URL is not UTF-8"))
            };
            let mut key_of = |vkey: &[u8], ty: u8| -> Result<Vkey, PolicyError> {
                let v = Vkey::parse(&text(vkey)?, ty)
                    .map_err(|source| PolicyError::Key { line, source })?;
                if let Some(&first) = keys.get(&(ty, v.key.to_bytes())) {
                    return Err(PolicyError::DuplicateKey { line, first });
                }
                keys.insert((ty, v.key.to_bytes()), line);
                Ok(v)
            };
            match keyword {
                b"log" => {
                    let (vkey, url) = match args {
                        [k] => (*k, None),
                        [k, u] => (*k, Some(text(u)?)),
                        _ => return Err(syntax(line, "expected `log <vkey> [<url>]`")),
                    };
                    if p.logs.len() == MAX_ITEMS {
                        return Err(PolicyError::TooMany { line, what: "logs" });
                    }
                    let vkey = key_of(vkey, TYPE_ED25519)?;
                    p.logs.push(PolicyLog { vkey, url });
                }
                b"witness" => {
                    let (name, vkey, url) = match args {
                        [n, k] => (*n, *k, None),
                        [n, k, u] => (*n, *k, Some(text(u)?)),
                        _ => return Err(syntax(line, "expected `witness <name> <vkey> [<url>]`")),
                    };
                    define(&names, name, line)?;
                    if p.witnesses.len() == MAX_ITEMS {
                        return Err(PolicyError::TooMany {
                            line,
                            what: "witnesses",
                        });
                    }
                    let vkey = key_of(vkey, TYPE_COSIGNATURE_V1)?;
                    names.insert(name.to_vec(), Member::Witness(p.witnesses.len()));
                    p.witnesses.push(PolicyWitness {
                        name: String::from_utf8_lossy(name).into_owned(),
                        vkey,
                        url,
                    });
                }
                b"group" => {
                    let [name, k, members @ ..] = args else {
                        return Err(syntax(
                            line,
                            "expected `group <name> all|any|<k> <name>...`",
                        ));
                    };
                    if members.is_empty() {
                        return Err(syntax(line, "a group needs at least one member"));
                    }
                    define(&names, name, line)?;
                    if p.groups.len() == MAX_ITEMS {
                        return Err(PolicyError::TooMany {
                            line,
                            what: "groups",
                        });
                    }
                    let n = members.len();
                    let threshold = match *k {
                        b"all" => n,
                        b"any" => 1,
                        k => {
                            let k = std::str::from_utf8(k)
                                .ok()
                                .and_then(super::tlog_proof::parse_decimal)
                                .ok_or_else(|| {
                                    syntax(line, "threshold is not all, any or a decimal")
                                })?;
                            if k < 1 || k > n as u64 {
                                return Err(syntax(
                                    line,
                                    format!("threshold {k} is not between 1 and {n}"),
                                ));
                            }
                            k as usize
                        }
                    };
                    let mut resolved = Vec::with_capacity(n);
                    for m in members.iter() {
                        let member = *names.get(*m).ok_or_else(|| PolicyError::Undefined {
                            line,
                            name: String::from_utf8_lossy(m).into_owned(),
                        })?;
                        if !in_group.insert(member) {
                            return Err(PolicyError::MemberTwice {
                                line,
                                name: String::from_utf8_lossy(m).into_owned(),
                            });
                        }
                        resolved.push(member);
                    }
                    names.insert(name.to_vec(), Member::Group(p.groups.len()));
                    p.groups.push(PolicyGroup {
                        name: String::from_utf8_lossy(name).into_owned(),
                        threshold,
                        members: resolved,
                    });
                }
                b"quorum" => {
                    let [name] = args else {
                        return Err(syntax(line, "expected `quorum <name>`"));
                    };
                    if quorum_seen {
                        return Err(PolicyError::SecondQuorum { line });
                    }
                    quorum_seen = true;
                    p.quorum = match *name {
                        b"none" => None,
                        name => Some(*names.get(name).ok_or_else(|| PolicyError::Undefined {
                            line,
                            name: String::from_utf8_lossy(name).into_owned(),
                        })?),
                    };
                }
                other => {
                    return Err(syntax(
                        line,
                        format!("unknown keyword {:?}", String::from_utf8_lossy(other)),
                    ))
                }
            }
        }
        if !quorum_seen {
            return Err(PolicyError::NoQuorum);
        }
        Ok(p)
    }

    /// Whether the witnesses in `cosigned` (indexes into `witnesses`) meet the quorum.
    pub fn quorum_met(&self, cosigned: &BTreeSet<usize>) -> bool {
        match self.quorum {
            None => true,
            Some(m) => self.witnessed(m, cosigned),
        }
    }

    fn witnessed(&self, m: Member, cosigned: &BTreeSet<usize>) -> bool {
        match m {
            Member::Witness(w) => cosigned.contains(&w),
            Member::Group(g) => {
                let group = &self.groups[g];
                group
                    .members
                    .iter()
                    .filter(|&&m| self.witnessed(m, cosigned))
                    .count()
                    >= group.threshold
            }
        }
    }

    /// Verifies a checkpoint note under this policy at `now` (POSIX seconds).
    pub fn check_note(&self, note: &[u8], now: u64) -> Result<Witnessed, PolicyCheckError> {
        let parsed = signed_note::Note::from_bytes(note)
            .map_err(|e| PolicyCheckError::Note(e.to_string()))?;
        let mut verifiers: Vec<Box<dyn signed_note::Verifier>> = Vec::new();
        for l in &self.logs {
            verifiers.push(Box::new(
                NoteVerifier::new(l.vkey.clone()).expect("type 0x01"),
            ));
        }
        for w in &self.witnesses {
            verifiers.push(Box::new(
                CosignatureVerifier::new(w.vkey.clone()).expect("type 0x04"),
            ));
        }
        let list = signed_note::VerifierList::new(verifiers);
        let (verified, _unknown) = match parsed.verify(&list) {
            Ok(v) => v,
            Err(signed_note::NoteError::InvalidSignature { name, id }) => {
                return Err(PolicyCheckError::BadSignature { name, id })
            }
            Err(signed_note::NoteError::UnverifiedNote) => {
                return Err(PolicyCheckError::NoLogSignature)
            }
            Err(e) => return Err(PolicyCheckError::Note(e.to_string())),
        };
        let mut log = None;
        let mut cosigned = Vec::new();
        for sig in &verified {
            let id = (sig.name(), sig.id());
            if let Some(i) = self
                .logs
                .iter()
                .position(|l| (l.vkey.name.as_str(), l.vkey.key_id()) == id)
            {
                log.get_or_insert(i);
            } else if let Some(w) = self
                .witnesses
                .iter()
                .position(|w| (w.vkey.name.as_str(), w.vkey.key_id()) == id)
            {
                let t = cosignature::timestamp(sig.signature()).expect("verified cosignature");
                if t > now {
                    return Err(PolicyCheckError::FutureCosignature {
                        witness: self.witnesses[w].name.clone(),
                        timestamp: t,
                        now,
                    });
                }
                cosigned.push((w, t));
            }
        }
        let log = log.ok_or(PolicyCheckError::NoLogSignature)?;
        let set: BTreeSet<usize> = cosigned.iter().map(|&(w, _)| w).collect();
        if !self.quorum_met(&set) {
            return Err(PolicyCheckError::Quorum {
                cosigned: set
                    .iter()
                    .map(|&w| self.witnesses[w].name.clone())
                    .collect(),
            });
        }
        Ok(Witnessed {
            log,
            text: String::from_utf8_lossy(parsed.text()).into_owned(),
            cosigned,
        })
    }
}

/// Refuses a name already defined, or `none`.
fn define(names: &HashMap<Vec<u8>, Member>, name: &[u8], line: usize) -> Result<(), PolicyError> {
    if name == b"none" || names.contains_key(name) {
        return Err(PolicyError::Redefined {
            line,
            name: String::from_utf8_lossy(name).into_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cosignature::Cosigner;
    use ed25519_dalek::SigningKey;
    use signed_note::{Note, Signer};

    struct LogSigner<'a>(&'a str, &'a SigningKey);
    impl Signer for LogSigner<'_> {
        fn name(&self) -> &str {
            self.0
        }
        fn key_id(&self) -> u32 {
            crate::vkey::key_id(self.0, TYPE_ED25519, self.1.verifying_key().as_bytes())
        }
        fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, signature::Error> {
            Ok(ed25519_dalek::Signer::sign(self.1, msg).to_bytes().to_vec())
        }
    }

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn vkey(name: &str, ty: u8, seed: u8) -> String {
        Vkey::new(name, ty, key(seed).verifying_key())
            .unwrap()
            .to_text()
    }

    fn policy_text() -> String {
        format!(
            "# consentlog test policy\n\
             log {}\n\
             \n\
             witness w1 {} https://w1.example/\n\
             witness w2 {}\n\
             \t witness   r1\t{}  \n\
             group plain 2 w1 w2\n\
             group both all plain r1\n\
             quorum both\n",
            vkey("example.com/log", TYPE_ED25519, 1),
            vkey("w1.example", TYPE_COSIGNATURE_V1, 2),
            vkey("w2.example", TYPE_COSIGNATURE_V1, 3),
            vkey("replay.example", TYPE_COSIGNATURE_V1, 4),
        )
    }

    const TEXT: &[u8] = b"example.com/log\n7\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";

    fn note_signed_by(witnesses: &[(&str, u8, u64)]) -> Vec<u8> {
        let log_key = key(1);
        let mut n = Note::new(TEXT, &[]).unwrap();
        n.add_sigs(&[&LogSigner("example.com/log", &log_key)])
            .unwrap();
        for &(name, seed, t) in witnesses {
            let k = key(seed);
            n.add_sigs(&[&Cosigner {
                name,
                key: &k,
                timestamp: t,
            }])
            .unwrap();
        }
        n.to_bytes()
    }

    #[test]
    fn parses_and_evaluates() {
        let p = Policy::parse(policy_text().as_bytes()).unwrap();
        assert_eq!((p.logs.len(), p.witnesses.len(), p.groups.len()), (1, 3, 2));
        assert_eq!(p.witnesses[0].url.as_deref(), Some("https://w1.example/"));
        assert_eq!(p.groups[0].threshold, 2);
        assert_eq!(p.groups[1].threshold, 2);
        let set = |v: &[usize]| v.iter().copied().collect::<BTreeSet<_>>();
        assert!(p.quorum_met(&set(&[0, 1, 2])));
        assert!(!p.quorum_met(&set(&[0, 1])));
        assert!(!p.quorum_met(&set(&[0, 2])));
        assert!(!p.quorum_met(&set(&[])));
    }

    #[test]
    fn notes_under_the_policy() {
        let p = Policy::parse(policy_text().as_bytes()).unwrap();
        let all = note_signed_by(&[
            ("w1.example", 2, 100),
            ("w2.example", 3, 100),
            ("replay.example", 4, 90),
        ]);
        let w = p.check_note(&all, 100).unwrap();
        assert_eq!(w.log, 0);
        assert_eq!(w.cosigned.len(), 3);
        assert_eq!(w.text.as_bytes(), TEXT);
        // Without the replaying witness the quorum fails.
        let plain = note_signed_by(&[("w1.example", 2, 100), ("w2.example", 3, 100)]);
        assert!(matches!(
            p.check_note(&plain, 100),
            Err(PolicyCheckError::Quorum { .. })
        ));
        // A cosignature from the future.
        assert!(matches!(
            p.check_note(&all, 99),
            Err(PolicyCheckError::FutureCosignature { timestamp: 100, .. })
        ));
        // Another key under a witness's name has another key id: an unknown line, ignored, so
        // that witness does not count.
        let impostor = note_signed_by(&[
            ("w1.example", 9, 100),
            ("w2.example", 3, 100),
            ("replay.example", 4, 90),
        ]);
        assert!(matches!(
            p.check_note(&impostor, 100),
            Err(PolicyCheckError::Quorum { .. })
        ));
        // A known key whose signature fails refuses the whole note.
        let s = String::from_utf8(all.clone()).unwrap();
        let line = s
            .lines()
            .find(|l| l.starts_with("— w2.example "))
            .unwrap()
            .to_string();
        let mut flipped = line.clone().into_bytes();
        let at = flipped.len() - 3;
        flipped[at] = if flipped[at] == b'A' { b'B' } else { b'A' };
        let bad = s
            .replace(&line, std::str::from_utf8(&flipped).unwrap())
            .into_bytes();
        assert!(matches!(
            p.check_note(&bad, 100),
            Err(PolicyCheckError::BadSignature { .. }) | Err(PolicyCheckError::Note(_))
        ));
        // Unknown signature lines are ignored.
        let extra = note_signed_by(&[
            ("w1.example", 2, 100),
            ("w2.example", 3, 100),
            ("replay.example", 4, 90),
            ("other.example", 7, 100),
        ]);
        assert!(p.check_note(&extra, 100).is_ok());
        // No log signature.
        let mut n = Note::new(TEXT, &[]).unwrap();
        let k = key(2);
        n.add_sigs(&[&Cosigner {
            name: "w1.example",
            key: &k,
            timestamp: 1,
        }])
        .unwrap();
        assert_eq!(
            p.check_note(&n.to_bytes(), 100),
            Err(PolicyCheckError::NoLogSignature)
        );
    }

    #[test]
    fn at_least_sixteen_signature_lines_are_read() {
        let mut text = String::from("quorum g\n");
        let mut defs = String::new();
        let mut names = Vec::new();
        let mut sigs = Vec::new();
        for i in 0..16u8 {
            let name = format!("w{i}.example");
            defs.push_str(&format!(
                "witness w{i} {}\n",
                vkey(&name, TYPE_COSIGNATURE_V1, 10 + i)
            ));
            names.push(format!("w{i}"));
            sigs.push((name, 10 + i));
        }
        text = format!(
            "log {}\n{defs}group g all {}\n{text}",
            vkey("example.com/log", TYPE_ED25519, 1),
            names.join(" ")
        );
        let p = Policy::parse(text.as_bytes()).unwrap();
        let borrowed: Vec<(&str, u8, u64)> =
            sigs.iter().map(|(n, s)| (n.as_str(), *s, 5)).collect();
        let w = p.check_note(&note_signed_by(&borrowed), 5).unwrap();
        assert_eq!(w.cosigned.len(), 16);
    }

    #[test]
    fn refusals() {
        let log = vkey("example.com/log", TYPE_ED25519, 1);
        let w1 = vkey("w1.example", TYPE_COSIGNATURE_V1, 2);
        let w2 = vkey("w2.example", TYPE_COSIGNATURE_V1, 3);
        let cases: Vec<(String, &str)> = vec![
            (format!("log {log}\n"), "no quorum"),
            ("quorum none\nquorum none\n".to_string(), "two quorums"),
            (
                format!("quorum w1\nwitness w1 {w1}\n"),
                "quorum before definition",
            ),
            (
                format!("witness w1 {w1}\nwitness w1 {w2}\nquorum w1\n"),
                "redefined",
            ),
            (
                format!("witness none {w1}\nquorum none\n"),
                "none redefined",
            ),
            (
                format!("witness w1 {w1}\nwitness w2 {w1}\nquorum w1\n"),
                "duplicate key",
            ),
            (
                format!("log {log}\nlog {log}\nquorum none\n"),
                "duplicate log",
            ),
            (
                format!("witness w1 {w1}\ngroup g 2 w1\nquorum g\n"),
                "k > n",
            ),
            (
                format!("witness w1 {w1}\ngroup g 0 w1\nquorum g\n"),
                "k = 0",
            ),
            (
                format!("witness w1 {w1}\ngroup g 01 w1\nquorum g\n"),
                "leading zero",
            ),
            (
                format!("witness w1 {w1}\ngroup g any\nquorum g\n"),
                "no members",
            ),
            (
                format!("witness w1 {w1}\ngroup g any w1 w1\nquorum g\n"),
                "member twice",
            ),
            (
                format!("witness w1 {w1}\ngroup g any w1\ngroup h any w1\nquorum g\n"),
                "member of two groups",
            ),
            (
                format!("witness w1 {w1}\ngroup g any w2\nquorum g\n"),
                "undefined member",
            ),
            (
                format!("witness w1 {log}\nquorum w1\n"),
                "log key as witness",
            ),
            (format!("log {w1}\nquorum none\n"), "witness key as log"),
            (
                format!("witness w1 {w1} https://x/ #comment\nquorum w1\n"),
                "trailing item",
            ),
            (format!("witness w1 {w1}\r\nquorum w1\n"), "carriage return"),
            (format!("witnesses w1 {w1}\nquorum w1\n"), "unknown keyword"),
            ("quorum\n".to_string(), "quorum without name"),
        ];
        for (text, why) in cases {
            assert!(Policy::parse(text.as_bytes()).is_err(), "accepted: {why}");
        }
        assert!(Policy::parse(b"  # only a comment\n\nquorum none").is_ok());
        assert!(Policy::parse(&vec![b'#'; MAX_POLICY_BYTES + 1]).is_err());
    }

    mod props {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            /// No input panics the parser, and a parsed policy's groups only name earlier
            /// members with thresholds in range.
            #[test]
            fn arbitrary_policies(text in "((log|witness|group|quorum|#)[ \t]{1,2}([a-z0-9]{1,3}|all|any|none|[0-9])([ \t][a-z0-9+/=]{0,6}){0,3}\n){0,8}") {
                if let Ok(p) = Policy::parse(text.as_bytes()) {
                    for (i, g) in p.groups.iter().enumerate() {
                        prop_assert!(g.threshold >= 1 && g.threshold <= g.members.len());
                        for m in &g.members {
                            if let Member::Group(j) = m {
                                prop_assert!(*j < i);
                            }
                        }
                    }
                }
            }
        }
    }
}
