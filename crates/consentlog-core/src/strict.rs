//! Strict Ed25519 verification of many signatures at once, giving for every input exactly the
//! answer of ed25519-dalek's `VerifyingKey::verify_strict`, at less cost.
//!
//! `verify_strict` (RFC 8032 §5.1.7, cofactorless, with the strict checks) accepts a signature
//! `R || S` on `M` under the key encoded as `A` (decoding to the point `A'`) if and only if
//!
//! 1. `S` is canonical (`S < L`),
//! 2. `R` decodes to a point `R'`,
//! 3. neither `R'` nor `A'` has small order, and
//! 4. `encode([S]B - [k]A') == R` as bytes, with `k = SHA-512(R || A || M) mod L`.
//!
//! Here the point `P = [S]B - [k]A'` is computed for each signature, and all the `P` of a call
//! are encoded with one field inversion between them (Montgomery's trick) instead of one each.
//! `R` is never decoded: if (4) holds, `R` is the canonical encoding of `P`, so `R` decodes and
//! `R' = P`; (2) and (3) then come down to "`P` has not small order", which is three point
//! doublings. If (4) fails, `verify_strict` refuses too. So the answers agree on every input,
//! including non-canonical encodings of `R`, which fail (4) in both. The tests check the
//! agreement against `verify_strict` itself, on valid, mutated, small-order, mixed-order and
//! non-canonical inputs.
//!
//! This is not batch verification (`verify_batch`): every equation is checked on its own and
//! no signature's answer depends on another's. It saves the decoding of `R` and all but one
//! inversion, about a fifth of a verification (docs/PERFORMANCE.md).

use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use ed25519_dalek::VerifyingKey;
use sha2::{Digest, Sha512};

/// One signature to check: `signature` by `key` over the message `domain || body`.
#[derive(Clone, Copy)]
pub struct Signed<'a> {
    /// The signer's key, already decoded (`VerifyingKey::from_bytes`).
    pub key: &'a VerifyingKey,
    /// The first part of the message (a domain-separation string).
    pub domain: &'a [u8],
    /// The rest of the message.
    pub body: &'a [u8],
    /// `R || S`.
    pub signature: &'a [u8; 64],
}

/// Whether each signature is valid under `verify_strict`, in order.
pub fn check_all(items: &[Signed<'_>]) -> Vec<bool> {
    let mut ok = vec![false; items.len()];
    let mut points = Vec::with_capacity(items.len());
    let mut at = Vec::with_capacity(items.len());
    for (i, it) in items.iter().enumerate() {
        if let Some(p) = recompute_r(it) {
            points.push(p);
            at.push(i);
        }
    }
    let encoded = EdwardsPoint::compress_batch_alloc(&points);
    for ((p, e), i) in points.iter().zip(&encoded).zip(at) {
        ok[i] = e.as_bytes()[..] == items[i].signature[..32] && !p.is_small_order();
    }
    ok
}

/// Whether one signature is valid under `verify_strict` (what [`check_all`] does for one).
pub fn check(item: &Signed<'_>) -> bool {
    check_all(std::slice::from_ref(item))[0]
}

/// `[S]B - [k]A'`, or `None` when `S` is not canonical or `A'` has small order.
fn recompute_r(it: &Signed<'_>) -> Option<EdwardsPoint> {
    let (r, s) = it.signature.split_at(32);
    let s: [u8; 32] = s.try_into().expect("32 bytes");
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s))?;
    let a = it.key.to_edwards();
    if a.is_small_order() {
        return None;
    }
    let mut h = Sha512::new();
    h.update(r);
    h.update(it.key.as_bytes());
    h.update(it.domain);
    h.update(it.body);
    let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
    Some(EdwardsPoint::vartime_double_scalar_mul_basepoint(
        &k, &-a, &s,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use curve25519_dalek::constants::{ED25519_BASEPOINT_POINT, EIGHT_TORSION};
    use ed25519_dalek::{Signature, Signer, SigningKey};
    use proptest::prelude::*;

    /// The answer of `verify_strict`, the reference.
    fn reference(key: &VerifyingKey, msg: &[u8], sig: &[u8; 64]) -> bool {
        key.verify_strict(msg, &Signature::from_bytes(sig)).is_ok()
    }

    fn agree(cases: &[(VerifyingKey, Vec<u8>, [u8; 64])]) -> usize {
        let items: Vec<Signed<'_>> = cases
            .iter()
            .map(|(k, m, s)| Signed {
                key: k,
                domain: &m[..m.len() / 3],
                body: &m[m.len() / 3..],
                signature: s,
            })
            .collect();
        let got = check_all(&items);
        for (i, (k, m, s)) in cases.iter().enumerate() {
            assert_eq!(
                got[i],
                reference(k, m, s),
                "case {i}: key {}, sig {}",
                hex::encode(k.as_bytes()),
                hex::encode(s)
            );
            assert_eq!(check(&items[i]), got[i], "case {i} alone");
        }
        got.iter().filter(|&&b| b).count()
    }

    fn signer(seed: u64) -> SigningKey {
        let mut s = [0u8; 32];
        s[..8].copy_from_slice(&seed.to_le_bytes());
        s[8] = 1;
        SigningKey::from_bytes(&s)
    }

    /// A "signature" `R || S` that satisfies the cofactorless equation for the key point `a`
    /// (scalar `x`, so `a = [x]B + T` for some torsion `T`) with an arbitrary `R`: solved with
    /// `S = r + k x` where `R = [r]B + T_r`. Used to build small-order and mixed-order cases.
    fn forge(a_bytes: [u8; 32], x: Scalar, r: Scalar, t_r: EdwardsPoint, msg: &[u8]) -> [u8; 64] {
        let big_r = (ED25519_BASEPOINT_POINT * r + t_r).compress();
        let mut h = Sha512::new();
        h.update(big_r.as_bytes());
        h.update(a_bytes);
        h.update(msg);
        let k = Scalar::from_bytes_mod_order_wide(&h.finalize().into());
        let s = r + k * x;
        let mut sig = [0u8; 64];
        sig[..32].copy_from_slice(big_r.as_bytes());
        sig[32..].copy_from_slice(s.as_bytes());
        sig
    }

    #[test]
    fn valid_signatures_pass_and_every_single_bit_flip_agrees() {
        let mut cases = Vec::new();
        for i in 0..8u64 {
            let sk = signer(i);
            let msg = format!("consentlog/v1/event\nmessage {i}").into_bytes();
            let sig = sk.sign(&msg).to_bytes();
            cases.push((sk.verifying_key(), msg.clone(), sig));
            for bit in 0..512 {
                let mut bad = sig;
                bad[bit / 8] ^= 1 << (bit % 8);
                cases.push((sk.verifying_key(), msg.clone(), bad));
            }
            let mut m2 = msg.clone();
            m2[3] ^= 1;
            cases.push((sk.verifying_key(), m2, sig));
            cases.push((signer(i + 100).verifying_key(), msg, sig));
        }
        assert_eq!(agree(&cases), 8);
    }

    /// L, the order of the base point, little-endian.
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];

    #[test]
    fn non_canonical_s_is_refused_like_verify_strict() {
        assert_eq!((Scalar::ZERO - Scalar::ONE).to_bytes()[0], L[0] - 1);
        let sk = signer(1);
        let msg = b"hello".to_vec();
        let sig = sk.sign(&msg).to_bytes();
        // S + L: the same scalar mod L, but not canonical.
        let mut plus_l = sig;
        let mut carry = 0u16;
        for i in 0..32 {
            let v = sig[32 + i] as u16 + L[i] as u16 + carry;
            plus_l[32 + i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0);
        let key = sk.verifying_key();
        assert_eq!(agree(&[(key, msg.clone(), sig), (key, msg, plus_l)]), 1);
    }

    #[test]
    fn small_order_and_mixed_order_points_agree() {
        let msg = b"consentlog/v1/event\ntorsion".to_vec();
        let x = Scalar::from(7u64);
        let mut cases = Vec::new();
        for (ti, t) in EIGHT_TORSION.iter().enumerate() {
            for (tj, tr) in EIGHT_TORSION.iter().enumerate() {
                // Key A = [x]B + T (mixed order unless T is the identity), R = [r]B + T_r.
                let a = ED25519_BASEPOINT_POINT * x + t;
                let a_bytes = a.compress().to_bytes();
                let key = VerifyingKey::from_bytes(&a_bytes).unwrap();
                let r = Scalar::from(1000 + (ti * 8 + tj) as u64);
                cases.push((key, msg.clone(), forge(a_bytes, x, r, *tr, &msg)));
                // R of small order itself (r = 0), and A of small order (x = 0).
                cases.push((key, msg.clone(), forge(a_bytes, x, Scalar::ZERO, *tr, &msg)));
                let small = t.compress().to_bytes();
                if let Ok(weak) = VerifyingKey::from_bytes(&small) {
                    cases.push((weak, msg.clone(), forge(small, Scalar::ZERO, r, *tr, &msg)));
                }
            }
        }
        // Some of these pass (T = T_r = identity at least); what matters is agreement.
        assert!(agree(&cases) >= 1);
    }

    #[test]
    fn empty_and_all_refused_batches() {
        assert!(check_all(&[]).is_empty());
        // Every S non-canonical: nothing reaches the shared inversion.
        let sk = signer(9);
        let mut sig = sk.sign(b"x").to_bytes();
        sig[32..].copy_from_slice(&[0xff; 32]);
        let key = sk.verifying_key();
        let item = Signed {
            key: &key,
            domain: b"",
            body: b"x",
            signature: &sig,
        };
        assert_eq!(check_all(&[item, item]), vec![false, false]);
    }

    #[test]
    fn non_canonical_r_encodings_agree() {
        // y + p for the few y < 19 that decode, with either sign bit, as R of an otherwise valid
        // signature, and the identity and order-2 point with the sign bit set.
        let sk = signer(3);
        let msg = b"consentlog/v1/event\nnon-canonical".to_vec();
        let good = sk.sign(&msg).to_bytes();
        let mut cases = vec![(sk.verifying_key(), msg.clone(), good)];
        for y in 0u8..19 {
            for sign in [0u8, 0x80] {
                let mut r = [0xffu8; 32];
                r[0] = 0xed + y; // p = 2^255 - 19: low byte 0xed
                r[31] = 0x7f | sign;
                let mut sig = good;
                sig[..32].copy_from_slice(&r);
                cases.push((sk.verifying_key(), msg.clone(), sig));
                let mut small = [0u8; 32];
                small[0] = y;
                small[31] = sign;
                sig[..32].copy_from_slice(&small);
                cases.push((sk.verifying_key(), msg.clone(), sig));
            }
        }
        assert_eq!(agree(&cases), 1);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Random keys, messages and batches with random corruption: the same answers as
        /// `verify_strict`, item by item, whatever else is in the batch.
        #[test]
        fn random_batches_agree(
            seeds in proptest::collection::vec((any::<u64>(), proptest::collection::vec(any::<u8>(), 0..200), any::<u16>(), 0u8..4), 1..24)
        ) {
            let cases: Vec<_> = seeds
                .iter()
                .map(|(seed, msg, flip, how)| {
                    let sk = signer(*seed);
                    let mut sig = sk.sign(msg).to_bytes();
                    let mut msg = msg.clone();
                    match how {
                        0 => {}
                        1 => sig[(*flip as usize / 8) % 64] ^= 1 << (flip % 8),
                        2 if !msg.is_empty() => {
                            let i = *flip as usize % msg.len();
                            msg[i] ^= 1;
                        }
                        _ => sig[..32].copy_from_slice(&(ED25519_BASEPOINT_POINT * Scalar::from(*flip as u64)).compress().to_bytes()),
                    }
                    (sk.verifying_key(), msg, sig)
                })
                .collect();
            agree(&cases);
        }
    }
}
