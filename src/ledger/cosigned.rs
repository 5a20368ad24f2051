//! Witnesses' cosignatures on the log's checkpoints (c2sp.org/tlog-witness): each stored in
//! [`Table::Cosigned`] under the checkpoint's tree size, as the checkpoint note with every
//! witness's newest cosignature line appended, so a verifier can be handed one note that its
//! policy checks as a whole.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;

use super::error::Invalid;
use super::schema::{self, index_key};
use super::{Ledger, LedgerError, Snapshot};
use crate::core::note::{self, SignedCheckpoint};
use crate::core::witnessed::WitnessedJson;
use crate::store::{Table, WriteBatch};

/// Sizes of cosigned checkpoints held in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// The largest cosigned checkpoint.
    pub cosigned: Option<u64>,
    /// The largest that met the policy.
    pub witnessed: Option<u64>,
}

/// The signer of a signature line: its name and key id (`— <name> <base64(id || sig)>\n`).
fn signer(line: &str) -> Option<(&str, [u8; 4])> {
    let rest = line.strip_prefix("\u{2014} ")?.strip_suffix('\n')?;
    let (name, sig) = rest.split_once(' ')?;
    let sig = B64.decode(sig).ok()?;
    (!name.is_empty() && sig.len() > 4).then(|| (name, sig[..4].try_into().expect("4 bytes")))
}

impl Ledger {
    /// Adds cosignature `lines` (each `— <name> <base64>\n`, already verified by the caller
    /// against the witness's key) to the cosigned copy of `cp`, a checkpoint this log signed
    /// and stored: a line replaces an earlier one by the same name and key id. Durable when it
    /// returns. Returns the cosigned note.
    pub fn add_cosignatures(
        &self,
        cp: &SignedCheckpoint,
        lines: &[String],
    ) -> Result<String, LedgerError> {
        let ours = cp.origin == self.origin
            && cp.size <= self.latest().checkpoint.size
            && note::open(&cp.note, &self.public).as_ref() == Ok(cp)
            && self.root_at(cp.size)? == cp.root;
        if !ours {
            return Err(Invalid::NotOurCheckpoint { size: cp.size }.into());
        }
        for l in lines {
            if signer(l).is_none() {
                return Err(Invalid::CosignatureLine(l.clone()).into());
            }
        }
        let _guard = self.cosign.lock().expect("cosign");
        let mut note = self.cosigned(cp.size)?.unwrap_or_else(|| cp.note.clone());
        for l in lines {
            let who = signer(l);
            let (text, sigs) = note
                .split_once("\n\n")
                .expect("a signed note has a blank line");
            let mut kept: Vec<&str> = sigs
                .split_inclusive('\n')
                .filter(|old| signer(old) != who)
                .collect();
            kept.push(l);
            note = format!("{text}\n\n{}", kept.concat());
        }
        let mut b = WriteBatch::new();
        b.put(Table::Cosigned, index_key(cp.size), note.as_bytes());
        self.commit(b)?;
        let mut sizes = self.cosigned_sizes.lock().expect("cosigned sizes");
        if let Some(z) = sizes.as_mut() {
            z.cosigned = z.cosigned.max(Some(cp.size));
        }
        // A cached answer may lack the lines just added.
        *self.witnessed_last.lock().expect("witnessed") = None;
        Ok(note)
    }

    /// Records that the cosigned checkpoint of `size` meets the witness policy the server runs
    /// with: proofs carry it (or a larger one) from now on. Durable when it returns.
    pub fn set_witnessed(&self, size: u64) -> Result<(), LedgerError> {
        let _guard = self.cosign.lock().expect("cosign");
        let current = self.sizes()?;
        if current.witnessed >= Some(size) {
            return Ok(());
        }
        if self.cosigned(size)?.is_none() {
            return Err(Invalid::NotOurCheckpoint { size }.into());
        }
        let mut b = WriteBatch::new();
        b.put(Table::Meta, schema::WITNESSED, index_key(size));
        self.commit(b)?;
        if let Some(z) = self.cosigned_sizes.lock().expect("cosigned sizes").as_mut() {
            z.witnessed = Some(size);
        }
        Ok(())
    }

    /// The sizes of the largest cosigned checkpoint and the largest that met the policy.
    pub(super) fn sizes(&self) -> Result<Sizes, LedgerError> {
        let mut sizes = self.cosigned_sizes.lock().expect("cosigned sizes");
        if let Some(z) = *sizes {
            return Ok(z);
        }
        let store = self.store();
        let witnessed = store
            .get(Table::Meta, schema::WITNESSED)?
            .map(|v| schema::decode_index_key(Table::Meta, &v))
            .transpose()?;
        let z = Sizes {
            cosigned: self.latest_cosigned()?.map(|(s, _)| s),
            witnessed,
        };
        *sizes = Some(z);
        Ok(z)
    }

    /// The newest cosigned checkpoint no larger than `snap`'s, preferring the newest that met
    /// the policy ([`Ledger::set_witnessed`]), with the consistency proof from it to `snap`'s
    /// checkpoint: what proofs, histories and batch headers built at `snap` carry
    /// (docs/FORMAT.md §19). `None` while no witness has cosigned one.
    pub fn witnessed_for(&self, snap: &Snapshot) -> Result<Option<WitnessedJson>, LedgerError> {
        let signed = snap.checkpoint.size;
        let z = self.sizes()?;
        let size = match z.witnessed.or(z.cosigned) {
            None => return Ok(None),
            Some(s) if s <= signed => s,
            // Cosigned after this snapshot was taken (rare): the newest one no larger.
            Some(_) => match self.cosigned_below(signed + 1)? {
                Some((s, _)) => s,
                None => return Ok(None),
            },
        };
        if let Some((s, c, w)) = &*self.witnessed_last.lock().expect("witnessed") {
            if (*s, *c) == (signed, size) {
                return Ok(Some(w.clone()));
            }
        }
        let Some(note) = self.cosigned(size)? else {
            return Ok(None);
        };
        let consistency = self.prove_consistency(size, Some(signed))?.path;
        let w = WitnessedJson { note, consistency };
        *self.witnessed_last.lock().expect("witnessed") = Some((signed, size, w.clone()));
        Ok(Some(w))
    }

    /// The cosigned checkpoint of the largest size below `end`, if any.
    fn cosigned_below(&self, end: u64) -> Result<Option<(u64, String)>, LedgerError> {
        let store = self.store();
        let mut found = None;
        for r in store.scan(Table::Cosigned, &index_key(0), Some(&index_key(end))) {
            found = Some(r?);
        }
        found
            .map(|(k, v)| {
                let size = super::schema::decode_index_key(Table::Cosigned, &k)?;
                Ok((size, super::schema::decode_cosigned(size, v)?))
            })
            .transpose()
    }

    /// The cosigned copy of the checkpoint of `size`, if any witness cosigned it.
    pub fn cosigned(&self, size: u64) -> Result<Option<String>, LedgerError> {
        let store = self.store();
        store
            .get(Table::Cosigned, &index_key(size))?
            .map(|v| super::schema::decode_cosigned(size, v))
            .transpose()
    }

    /// Every cosigned checkpoint of size `from` or more, smallest first, at most `limit`.
    pub fn cosigned_from(
        &self,
        from: u64,
        limit: usize,
    ) -> Result<Vec<(u64, String)>, LedgerError> {
        let store = self.store();
        store
            .scan(Table::Cosigned, &index_key(from), None)
            .take(limit)
            .map(|r| {
                let (k, v) = r?;
                let size = super::schema::decode_index_key(Table::Cosigned, &k)?;
                Ok((size, super::schema::decode_cosigned(size, v)?))
            })
            .collect()
    }

    /// The cosigned checkpoint of the largest size, if any.
    pub fn latest_cosigned(&self) -> Result<Option<(u64, String)>, LedgerError> {
        let store = self.store();
        let Some((k, v)) = store.last_with_prefix(Table::Cosigned, &[])? else {
            return Ok(None);
        };
        let size = super::schema::decode_index_key(Table::Cosigned, &k)?;
        Ok(Some((size, super::schema::decode_cosigned(size, v)?)))
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{first_events, ledger, ledger_on, TestLedger, T0};
    use super::super::Options;
    use super::*;
    use crate::core::cosignature::{CosignatureVerifier, Cosigner};
    use crate::core::vkey::{Vkey, TYPE_COSIGNATURE_V1};
    use crate::store::Engine;
    use ed25519_dalek::SigningKey;
    use signed_note::Signer as _;

    fn cosign(name: &str, seed: u8, t: u64, note: &str) -> String {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let c = Cosigner {
            name,
            key: &key,
            timestamp: t,
        };
        let text = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
        let mut sig = c.key_id().to_be_bytes().to_vec();
        sig.extend(c.sign(text.text()).unwrap());
        format!("\u{2014} {name} {}\n", B64.encode(sig))
    }

    fn verifier(name: &str, seed: u8) -> Box<dyn signed_note::Verifier> {
        let key = SigningKey::from_bytes(&[seed; 32]).verifying_key();
        Box::new(
            CosignatureVerifier::new(Vkey::new(name, TYPE_COSIGNATURE_V1, key).unwrap()).unwrap(),
        )
    }

    #[test]
    fn cosignatures_merge_per_witness_and_survive_a_reopen() {
        let t = ledger_on(Engine::Redb);
        let l = &t.ledger;
        t.accept(first_events(2, T0));
        t.clock.advance(1_000);
        let cp = l.checkpoint().unwrap();
        assert_eq!(l.latest_cosigned().unwrap(), None);
        let a1 = cosign("w.example/a", 1, 100, &cp.note);
        let b1 = cosign("w.example/b", 2, 100, &cp.note);
        let a2 = cosign("w.example/a", 1, 200, &cp.note);
        l.add_cosignatures(&cp, std::slice::from_ref(&a1)).unwrap();
        l.add_cosignatures(&cp, &[b1.clone(), a2.clone()]).unwrap();
        let note = l.cosigned(cp.size).unwrap().unwrap();
        // The log's line, then b's, then a's newest; a's first is replaced.
        assert_eq!(note, format!("{}{b1}{a2}", cp.note));
        let parsed = signed_note::Note::from_bytes(note.as_bytes()).unwrap();
        let list = signed_note::VerifierList::new(vec![
            verifier("w.example/a", 1),
            verifier("w.example/b", 2),
        ]);
        assert_eq!(parsed.verify(&list).unwrap().0.len(), 2);
        assert_eq!(l.latest_cosigned().unwrap(), Some((cp.size, note.clone())));
        let TestLedger { ledger, clock, dir } = t;
        drop(ledger);
        let l = Ledger::open_with(dir.path(), Options::default().clock(clock)).unwrap();
        assert_eq!(l.cosigned_from(0, 10).unwrap(), vec![(cp.size, note)]);
    }

    #[test]
    fn witnessed_receipts_are_under_the_newest_cosigned_checkpoint_that_covers_the_entry() {
        let t = ledger();
        let l = &t.ledger;
        let rs = t.accept(first_events(2, T0));
        let not_cosigned = |r: &crate::core::receipt::Receipt| {
            matches!(
                l.witnessed_receipt(r),
                Err(LedgerError::Invalid(Invalid::NotCosigned { .. }))
            )
        };
        assert!(not_cosigned(&rs[0]));
        t.clock.advance(1_000);
        let cp = l.checkpoint().unwrap();
        let a = cosign("w.example/a", 1, 100, &cp.note);
        l.add_cosignatures(&cp, std::slice::from_ref(&a)).unwrap();
        // A later entry is not covered by it.
        t.clock.advance(1_000);
        let later = t.accept(first_events(1, T0 + 2_000)).remove(0);
        assert!(not_cosigned(&later));
        for r in &rs {
            let w = l.witnessed_receipt(r).unwrap();
            assert_eq!(w.anchor.checkpoint, format!("{}{a}", cp.note));
            assert_eq!((w.index, w.leaf, &w.opening), (r.index, r.leaf, &r.opening));
            let c = w.check_for(&l.public_key(), &r.opening.event).unwrap();
            assert_eq!(c.checkpoint.size, cp.size);
            // Parsed back from its text, it is the same receipt.
            assert_eq!(
                crate::core::receipt::Receipt::parse(&w.to_text()).unwrap(),
                w
            );
        }
        // Another opening (nonce) or another index: not this log's receipt.
        let mut other = rs[0].clone();
        other.opening.nonce[0] ^= 1;
        let mut moved = rs[0].clone();
        moved.index = rs[1].index;
        for bad in [other, moved] {
            assert!(matches!(
                l.witnessed_receipt(&bad),
                Err(LedgerError::Invalid(Invalid::NotOurReceipt { .. }))
            ));
        }
        // Once one met the policy, only those that met it count.
        l.set_witnessed(cp.size).unwrap();
        t.clock.advance(1_000);
        let cp2 = l.checkpoint().unwrap();
        l.add_cosignatures(&cp2, &[cosign("w.example/a", 1, 101, &cp2.note)])
            .unwrap();
        assert!(not_cosigned(&later));
        l.set_witnessed(cp2.size).unwrap();
        let w = l.witnessed_receipt(&later).unwrap();
        assert_eq!(
            w.to_tlog_proof().checkpoint.lines().nth(1),
            Some(&*cp2.size.to_string())
        );
    }

    /// A hostile client's receipts: every single-bit change of a receipt's text that still
    /// parses is either refused as a claim (not this log's entry, or not cosigned) or names the
    /// same entry (the lookup rebuilds path and checkpoint, so changes there do not matter).
    #[test]
    fn every_bent_receipt_is_refused_or_names_its_own_entry() {
        let t = ledger();
        let l = &t.ledger;
        let rs = t.accept(first_events(2, T0));
        t.clock.advance(1_000);
        let cp = l.checkpoint().unwrap();
        l.add_cosignatures(&cp, &[cosign("w.example/a", 1, 100, &cp.note)])
            .unwrap();
        let original = &rs[1];
        let want = l.witnessed_receipt(original).unwrap();
        let text = original.to_text().into_bytes();
        let (mut refused, mut same) = (0, 0);
        for i in 0..text.len() {
            for bit in 0..8 {
                let mut bent = text.clone();
                bent[i] ^= 1 << bit;
                let Ok(bent) = String::from_utf8(bent) else {
                    continue;
                };
                let Ok(r) = crate::core::receipt::Receipt::parse(&bent) else {
                    continue;
                };
                match l.witnessed_receipt(&r) {
                    Ok(w) => {
                        assert_eq!(w, want, "byte {i} bit {bit}");
                        same += 1;
                    }
                    Err(LedgerError::Invalid(
                        Invalid::NotOurReceipt { .. } | Invalid::NotCosigned { .. },
                    )) => refused += 1,
                    Err(e) => panic!("byte {i} bit {bit}: {e}"),
                }
            }
        }
        // Changes in the identifying parts were met, and in the parts the lookup rebuilds.
        assert!(refused > 0 && same > 0, "refused {refused}, same {same}");
    }

    #[test]
    fn a_declared_policy_names_the_new_log_key_first() {
        let text = format!(
            "witness a {}\nquorum a",
            Vkey::new(
                "w.example/a",
                TYPE_COSIGNATURE_V1,
                SigningKey::from_bytes(&[1; 32]).verifying_key()
            )
            .unwrap()
            .to_text()
        );
        let key = SigningKey::from_bytes(&[5; 32]).verifying_key();
        let done = super::super::complete_witness_policy(&text, "log.example/x", &key).unwrap();
        let vkey = Vkey::new("log.example/x", crate::core::vkey::TYPE_ED25519, key).unwrap();
        assert_eq!(done, format!("log {}\n{text}\n", vkey.to_text()));
        let p = crate::core::policy::Policy::parse(done.as_bytes()).unwrap();
        assert_eq!(p.logs[0].vkey.key, key);
        for bad in [
            format!("log {}\n{text}", vkey.to_text()),
            "quorum none\n".to_string(),
            "not a policy\n".to_string(),
        ] {
            assert!(super::super::check_witness_policy(&bad).is_err(), "{bad}");
        }
        // Too long for the genesis leaf: init refuses it and leaves no ledger.
        let long = format!(
            "{}{text}\n",
            "# padding padding padding padding\n".repeat(200)
        );
        let dir = tempfile::tempdir().unwrap();
        let r = Ledger::init_with(
            &dir.path().join("l"),
            "log.example/x",
            Engine::Sled,
            Options::default().witness_policy(long),
        );
        assert!(matches!(
            r,
            Err(LedgerError::Invalid(Invalid::WitnessPolicy(_)))
        ));
        assert!(!dir.path().join("l").join("engine").exists());
        // One that fits is in the genesis leaf, and in witness-policy.txt.
        let l = Ledger::init_with(
            &dir.path().join("m"),
            "log.example/x",
            Engine::Sled,
            Options::default().witness_policy(text.clone()),
        )
        .unwrap();
        let declared = l.genesis().witness_policy.clone().unwrap();
        assert!(declared.ends_with(&format!("{text}\n")));
        assert_eq!(
            std::fs::read_to_string(dir.path().join("m").join("witness-policy.txt")).unwrap(),
            declared
        );
    }

    #[test]
    fn only_this_logs_stored_checkpoints_and_signature_lines_are_taken() {
        let t = ledger();
        let l = &t.ledger;
        let cp = l.latest().checkpoint.clone();
        let line = cosign("w.example/a", 1, 100, &cp.note);
        // Another root, another size, another origin, an unsigned note.
        let mut forged = cp.clone();
        forged.root[0] ^= 1;
        let other = SigningKey::from_bytes(&[9; 32]);
        forged.note = crate::core::note::Checkpoint {
            origin: &forged.origin,
            size: forged.size,
            root: forged.root,
        }
        .sign(&other);
        let mut bigger = cp.clone();
        bigger.size += 5;
        for bad in [forged, bigger] {
            assert!(matches!(
                l.add_cosignatures(&bad, std::slice::from_ref(&line)),
                Err(LedgerError::Invalid(Invalid::NotOurCheckpoint { .. }))
            ));
        }
        for bad in ["", "\u{2014} w\n", "— w AAAA", "x y z\n"] {
            assert!(matches!(
                l.add_cosignatures(&cp, &[bad.to_string()]),
                Err(LedgerError::Invalid(Invalid::CosignatureLine(_)))
            ));
        }
        assert_eq!(l.cosigned(cp.size).unwrap(), None);
    }

    #[test]
    fn proofs_carry_the_newest_checkpoint_that_met_the_policy_with_a_consistency_proof() {
        let t = ledger();
        let l = &t.ledger;
        assert_eq!(l.witnessed_for(&l.latest()).unwrap(), None);
        t.accept(first_events(2, T0));
        t.clock.advance(1_000);
        let first = l.checkpoint().unwrap();
        let a = cosign("w.example/a", 1, 100, &first.note);
        l.add_cosignatures(&first, std::slice::from_ref(&a))
            .unwrap();
        // Cosigned but not (yet) meeting the policy: still the best there is.
        let w = l.witnessed_for(&l.latest()).unwrap().unwrap();
        assert_eq!(
            (w.note.clone(), w.consistency.len()),
            (format!("{}{a}", first.note), 0)
        );
        l.set_witnessed(first.size).unwrap();
        t.clock.advance(1_000);
        let second = l.checkpoint().unwrap();
        let a2 = cosign("w.example/a", 1, 101, &second.note);
        l.add_cosignatures(&second, std::slice::from_ref(&a2))
            .unwrap();
        // The newer one has not met the policy: proofs keep the older, proven consistent.
        let w = l.witnessed_for(&l.latest()).unwrap().unwrap();
        assert_eq!(w.note, format!("{}{a}", first.note));
        let path: Vec<_> = w.consistency.iter().map(|h| h.0).collect();
        crate::core::tlog::check_consistency(
            &crate::core::tlog::Sha256Hasher,
            crate::core::tlog::TreeSize(first.size),
            crate::core::tlog::TreeSize(second.size),
            &first.root,
            &second.root,
            &path,
        )
        .unwrap();
        l.set_witnessed(second.size).unwrap();
        l.set_witnessed(first.size).unwrap();
        let w = l.witnessed_for(&l.latest()).unwrap().unwrap();
        assert_eq!(
            (w.note, w.consistency.len()),
            (format!("{}{a2}", second.note), 0)
        );
        // Only a cosigned size can be marked.
        assert!(l.set_witnessed(second.size + 100).is_err());
    }
}
