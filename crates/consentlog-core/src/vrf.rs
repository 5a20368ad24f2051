//! State keys that hide who (format v2, docs/FORMAT.md "State keys"): the log's verifiable
//! random function maps (origin, subject, controller, purpose) to the state key `K`.
//!
//! The suite is c2sp.org/vrf-r255, the ECVRF-RISTRETTO255-SHA512 ciphersuite of the RFC 9381
//! ECVRF construction, from the `vrf-r255` crate. Only the holder of the VRF secret key can
//! compute `K`; anyone with the VRF public key and the 80-byte proof checks that `K` is the one
//! key of the triple they ask about. ristretto255 is a prime-order group, so there are no
//! small-order public keys and no cofactor to clear; the crate refuses the identity as a public
//! key, non-canonical point encodings and non-canonical scalars, so a proof has exactly one
//! valid encoding.

use std::fmt;

/// Bytes of a VRF proof: Gamma (32) || c (16) || s (32).
pub const PROOF_LEN: usize = 80;
/// Bytes of a VRF public or secret key.
pub const KEY_LEN: usize = 32;
/// Domain separation of the state-key input (the first bytes of `alpha`).
pub const STATE_KEY_DOMAIN: &[u8] = b"consentlog/v2/state-key\n";

/// Why a VRF key or proof was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VrfError {
    #[error("VRF public key is not a canonical ristretto255 encoding of a non-identity element")]
    PublicKey,
    #[error("VRF secret key is not a canonical scalar")]
    SecretKey,
    #[error("VRF proof is not a canonical encoding (Gamma, c, s)")]
    ProofEncoding,
    #[error("VRF proof does not verify for this input under the log's VRF key")]
    Proof,
}

/// The log's VRF public key (its bytes are in the genesis leaf).
#[derive(Clone, Copy, PartialEq)]
pub struct VrfPublicKey(vrf_r255::PublicKey);

/// The log's VRF secret key. Keep it like the log key: whoever holds it links every state key
/// to its person (docs/PRIVACY.md).
pub struct VrfSecretKey(vrf_r255::SecretKey);

/// An 80-byte VRF proof for one input, as carried in proofs, receipts and exports.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct VrfProof(pub [u8; PROOF_LEN]);

impl fmt::Debug for VrfPublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfPublicKey({})", hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for VrfSecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("VrfSecretKey(..)")
    }
}

impl fmt::Debug for VrfProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VrfProof({})", hex::encode(self.0))
    }
}

impl VrfPublicKey {
    /// Decodes a public key, refusing non-canonical encodings and the identity
    /// (RFC 9381 §5.4.5 ECVRF_validate_key, as c2sp.org/vrf-r255 recommends).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<Self, VrfError> {
        vrf_r255::PublicKey::from_bytes(bytes)
            .map(Self)
            .ok_or(VrfError::PublicKey)
    }

    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    /// Checks `proof` for `alpha` and returns the 64-byte VRF output (beta).
    pub fn check(&self, alpha: &[u8], proof: &VrfProof) -> Result<[u8; 64], VrfError> {
        let pi = vrf_r255::Proof::from_bytes(proof.0).ok_or(VrfError::ProofEncoding)?;
        Option::from(self.0.verify(alpha, &pi)).ok_or(VrfError::Proof)
    }

    /// Checks `proof` for the state key of (origin, subject, controller, purpose) and returns
    /// that state key.
    pub fn check_state_key(
        &self,
        triple: &StateKeyInput<'_>,
        proof: &VrfProof,
    ) -> Result<[u8; 32], VrfError> {
        self.check(&triple.alpha(), proof)
            .map(|beta| state_key(&beta))
    }
}

impl VrfSecretKey {
    /// A secret key from its canonical 32-byte scalar encoding.
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> Result<Self, VrfError> {
        Option::from(vrf_r255::SecretKey::from_bytes(bytes))
            .map(Self)
            .ok_or(VrfError::SecretKey)
    }

    /// A new secret key from 64 uniformly random bytes (reduced modulo the group order, as
    /// c2sp.org/vrf-r255 suggests). The caller brings the randomness: the core reads no OS
    /// source.
    pub fn from_random(wide: &[u8; 64]) -> Self {
        let x = curve25519_dalek::Scalar::from_bytes_mod_order_wide(wide);
        Self::from_bytes(x.to_bytes()).expect("a reduced scalar is canonical")
    }

    pub fn to_bytes(&self) -> [u8; KEY_LEN] {
        self.0.to_bytes()
    }

    pub fn public_key(&self) -> VrfPublicKey {
        VrfPublicKey(vrf_r255::PublicKey::from(self.0))
    }

    /// The proof and 64-byte output for `alpha`.
    ///
    /// The crate hands out the output only from `verify`. A proof this key has just made is
    /// valid by construction, and RFC 9381 §5.2 allows `ECVRF_proof_to_hash` on a proof "known
    /// to have been produced by ECVRF_prove", so the output is derived from the proof directly
    /// ([`proof_to_hash`]) instead of paying a verification (three scalar multiplications,
    /// about 150 µs) once per new triple. Tests check it against the crate's `verify`.
    pub fn prove(&self, alpha: &[u8]) -> (VrfProof, [u8; 64]) {
        let proof = VrfProof(self.0.prove(alpha).to_bytes());
        let beta = proof_to_hash(&proof);
        (proof, beta)
    }

    /// The state key of `triple` and its proof.
    pub fn prove_state_key(&self, triple: &StateKeyInput<'_>) -> ([u8; 32], VrfProof) {
        let (proof, beta) = self.prove(&triple.alpha());
        (state_key(&beta), proof)
    }
}

/// What a state key is computed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateKeyInput<'a> {
    pub origin: &'a str,
    pub subject: &'a [u8; 32],
    pub controller: &'a str,
    pub purpose: &'a str,
}

impl StateKeyInput<'_> {
    /// `alpha = "consentlog/v2/state-key\n" || origin || subject || controller || purpose`, each
    /// of the four a §1 string (u64 little-endian byte length, then the bytes).
    pub fn alpha(&self) -> Vec<u8> {
        let parts: [&[u8]; 4] = [
            self.origin.as_bytes(),
            self.subject,
            self.controller.as_bytes(),
            self.purpose.as_bytes(),
        ];
        let len = STATE_KEY_DOMAIN.len() + parts.iter().map(|p| 8 + p.len()).sum::<usize>();
        let mut alpha = Vec::with_capacity(len);
        alpha.extend_from_slice(STATE_KEY_DOMAIN);
        for p in parts {
            alpha.extend_from_slice(&(p.len() as u64).to_le_bytes());
            alpha.extend_from_slice(p);
        }
        alpha
    }
}

/// The suite string of c2sp.org/vrf-r255.
const SUITE_STRING: &[u8] = b"\xFFc2sp.org/vrf-r255";

/// RFC 9381 §5.2 `ECVRF_proof_to_hash` for c2sp.org/vrf-r255: beta = SHA-512(suite_string ||
/// 0x03 || Gamma || 0x00), with Gamma the first 32 bytes of the proof (the canonical
/// encoding `to_bytes` writes).
///
/// Only for proofs this process has just made with [`VrfSecretKey::prove`]: a proof from
/// anyone else must go through [`VrfPublicKey::check`], which verifies it first.
fn proof_to_hash(proof: &VrfProof) -> [u8; 64] {
    use sha2::{Digest, Sha512};
    let mut h = Sha512::new();
    h.update(SUITE_STRING);
    h.update([0x03]);
    h.update(&proof.0[..32]);
    h.update([0x00]);
    h.finalize().into()
}

/// `K` = the first 32 bytes of the VRF output.
pub fn state_key(beta: &[u8; 64]) -> [u8; 32] {
    beta[..32].try_into().expect("32 of 64 bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h<const N: usize>(s: &str) -> [u8; N] {
        hex::decode(s).expect("hex").try_into().expect("length")
    }

    /// The test vector of c2sp.org/vrf-r255.
    const SK: &str = "3431c2b03533e280b23232e280b34e2c3132c2b03238e280b23131e280b34500";
    const PK: &str = "54136cd90d99fbd1d4e855d9556efea87ba0337f2a6ce22028d0f5726fcb854e";
    const ALPHA: &str = "633273702e6f72672f7672662d72323535";
    const PI: &str = "0a97d961262fb549b4175c5117860f42ae44a123f93c476c439eddd1c0cff9265c805525233e2284dbed45e593b8eea31d5ca9734d72bcbba9738d5237f955f3b2422351149d1312503b6441a47c940c";
    const BETA: &str = "dd653f0879b48c3ef69e13551239bec4cbcc1c18fe8894de2e9e1c790e18273603bf1c6c25d7a797aeff3c43fd32b974d3fcbd4bcce916007097922a3ea3a794";

    /// The vector's public key, input and proof.
    fn vector() -> (VrfPublicKey, Vec<u8>, [u8; PROOF_LEN]) {
        let pk = VrfPublicKey::from_bytes(h(PK)).unwrap();
        (pk, hex::decode(ALPHA).unwrap(), h(PI))
    }

    #[test]
    fn c2sp_vector() {
        let sk = VrfSecretKey::from_bytes(h(SK)).unwrap();
        let pk = sk.public_key();
        assert_eq!(pk.to_bytes(), h::<32>(PK));
        let alpha = hex::decode(ALPHA).unwrap();
        let (proof, beta) = sk.prove(&alpha);
        assert_eq!(proof.0, h::<80>(PI));
        assert_eq!(beta, h::<64>(BETA));
        let pk = VrfPublicKey::from_bytes(h(PK)).unwrap();
        assert_eq!(pk.check(&alpha, &VrfProof(h(PI))).unwrap(), h::<64>(BETA));
    }

    /// The output `prove` derives without verifying is the one `verify` gives, for many keys
    /// and inputs (and the vector, in `c2sp_vector`).
    #[test]
    fn proof_to_hash_agrees_with_verify() {
        for i in 0u8..64 {
            let sk = VrfSecretKey::from_random(&[i.wrapping_mul(37).wrapping_add(1); 64]);
            let alpha: Vec<u8> = (0..i as usize * 3).map(|j| j as u8 ^ i).collect();
            let (proof, beta) = sk.prove(&alpha);
            assert_eq!(sk.public_key().check(&alpha, &proof), Ok(beta), "case {i}");
        }
    }

    #[test]
    fn every_single_bit_flip_is_refused() {
        let (pk, alpha, pi) = vector();
        for bit in 0..PROOF_LEN * 8 {
            let mut bad = pi;
            bad[bit / 8] ^= 1 << (bit % 8);
            assert!(pk.check(&alpha, &VrfProof(bad)).is_err(), "proof bit {bit}");
        }
        for bit in 0..alpha.len() * 8 {
            let mut bad = alpha.clone();
            bad[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                pk.check(&bad, &VrfProof(pi)),
                Err(VrfError::Proof),
                "alpha bit {bit}"
            );
        }
        for bit in 0..KEY_LEN * 8 {
            let mut bad: [u8; 32] = h(PK);
            bad[bit / 8] ^= 1 << (bit % 8);
            if let Ok(other) = VrfPublicKey::from_bytes(bad) {
                assert!(other.check(&alpha, &VrfProof(pi)).is_err(), "key bit {bit}");
            }
        }
    }

    #[test]
    fn non_canonical_s_is_refused() {
        // s + q encodes the same scalar; only the canonical encoding is accepted.
        let (pk, alpha, pi) = vector();
        let s =
            curve25519_dalek::Scalar::from_canonical_bytes(pi[48..].try_into().unwrap()).unwrap();
        // q as little-endian bytes: -1 mod q, plus one.
        let mut q = (-curve25519_dalek::Scalar::ONE).to_bytes();
        q[0] += 1;
        let mut sum = [0u8; 32];
        let mut carry = 0u16;
        for i in 0..32 {
            let v = s.to_bytes()[i] as u16 + q[i] as u16 + carry;
            sum[i] = v as u8;
            carry = v >> 8;
        }
        assert_eq!(carry, 0, "s + q fits in 256 bits");
        let mut bad = pi;
        bad[48..].copy_from_slice(&sum);
        assert_eq!(
            pk.check(&alpha, &VrfProof(bad)),
            Err(VrfError::ProofEncoding)
        );
    }

    #[test]
    fn identity_and_non_canonical_keys_are_refused() {
        assert_eq!(VrfPublicKey::from_bytes([0; 32]), Err(VrfError::PublicKey));
        // 2^255 - 1 is not a canonical field element, so not a ristretto255 encoding.
        assert_eq!(
            VrfPublicKey::from_bytes([0xff; 32]),
            Err(VrfError::PublicKey)
        );
        assert_eq!(
            VrfSecretKey::from_bytes([0xff; 32]).err(),
            Some(VrfError::SecretKey)
        );
    }

    #[test]
    fn state_keys_differ_per_field_and_check() {
        let sk = VrfSecretKey::from_random(&[7; 64]);
        let pk = sk.public_key();
        let subject = [1u8; 32];
        let base = StateKeyInput {
            origin: "example.com/log",
            subject: &subject,
            controller: "example.com",
            purpose: "cawg.ai_training",
        };
        let (k, proof) = sk.prove_state_key(&base);
        assert_eq!(pk.check_state_key(&base, &proof), Ok(k));
        let other_subject = [2u8; 32];
        let variants = [
            StateKeyInput {
                origin: "example.com/log2",
                ..base
            },
            StateKeyInput {
                subject: &other_subject,
                ..base
            },
            StateKeyInput {
                controller: "example.org",
                ..base
            },
            StateKeyInput {
                purpose: "cawg.data_mining",
                ..base
            },
            // Moving a byte between fields changes the input: lengths are encoded.
            StateKeyInput {
                controller: "example.co",
                purpose: "mcawg.ai_training",
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.alpha(), base.alpha());
            assert_ne!(sk.prove_state_key(&v).0, k);
            assert_eq!(pk.check_state_key(&v, &proof), Err(VrfError::Proof));
        }
    }

    #[test]
    fn alpha_layout() {
        let subject = [0xabu8; 32];
        let a = StateKeyInput {
            origin: "o",
            subject: &subject,
            controller: "c",
            purpose: "p",
        }
        .alpha();
        let mut want = b"consentlog/v2/state-key\n".to_vec();
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b'o']);
        want.extend_from_slice(&[32, 0, 0, 0, 0, 0, 0, 0]);
        want.extend_from_slice(&subject);
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b'c']);
        want.extend_from_slice(&[1, 0, 0, 0, 0, 0, 0, 0, b'p']);
        assert_eq!(a, want);
    }
}
