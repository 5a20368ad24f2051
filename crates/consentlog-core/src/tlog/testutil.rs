//! Test helpers of the tree's unit tests: an independent reference (RFC 9162 §2.1 transcribed
//! literally), readers that count and limit reads, and the Certificate Transparency vectors.

use std::cell::Cell;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};

use super::*;

// ---------------------------------------------------------------------
// Independent reference: RFC 9162 §2.1.1 MTH, §2.1.3.1 PATH and
// §2.1.4.1 PROOF/SUBPROOF, transcribed literally over slices of leaf
// hashes. Shares nothing with the code under test but the hasher.
// ---------------------------------------------------------------------

/// Largest power of two strictly smaller than `n` (n >= 2), by counting.
pub(super) fn ref_k(n: usize) -> usize {
    assert!(n >= 2);
    let mut k = 1;
    while k * 2 < n {
        k *= 2;
    }
    k
}

pub(super) fn ref_mth<H: TreeHasher>(h: &H, d: &[Hash]) -> Hash {
    match d.len() {
        0 => h.empty_root(),
        1 => d[0],
        n => {
            let k = ref_k(n);
            h.hash_children(&ref_mth(h, &d[..k]), &ref_mth(h, &d[k..]))
        }
    }
}

pub(super) fn ref_path<H: TreeHasher>(h: &H, m: usize, d: &[Hash]) -> Vec<Hash> {
    let n = d.len();
    if n <= 1 {
        return Vec::new();
    }
    let k = ref_k(n);
    let mut out;
    if m < k {
        out = ref_path(h, m, &d[..k]);
        out.push(ref_mth(h, &d[k..]));
    } else {
        out = ref_path(h, m - k, &d[k..]);
        out.push(ref_mth(h, &d[..k]));
    }
    out
}

pub(super) fn ref_subproof<H: TreeHasher>(h: &H, m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
    let n = d.len();
    if m == n {
        return if b { Vec::new() } else { vec![ref_mth(h, d)] };
    }
    let k = ref_k(n);
    let mut out;
    if m <= k {
        out = ref_subproof(h, m, &d[..k], b);
        out.push(ref_mth(h, &d[k..]));
    } else {
        out = ref_subproof(h, m - k, &d[k..], false);
        out.push(ref_mth(h, &d[..k]));
    }
    out
}

pub(super) fn ref_proof<H: TreeHasher>(h: &H, m: usize, d: &[Hash]) -> Vec<Hash> {
    if m == 0 || m == d.len() {
        Vec::new()
    } else {
        ref_subproof(h, m, d, true)
    }
}

// ---------------------------------------------------------------------
// Readers used by the tests.
// ---------------------------------------------------------------------

/// Serves only the nodes that are complete in the tree of `size`
/// leaves, so a prover that peeks past the requested size fails loudly.
pub(super) struct Prefix<'a, R> {
    inner: &'a R,
    size: u64,
    pub(super) reads: Cell<u64>,
}

pub(super) fn prefix<R>(inner: &R, size: u64) -> Prefix<'_, R> {
    Prefix {
        inner,
        size,
        reads: Cell::new(0),
    }
}

impl<R: HashReader<Error = MissingNode>> HashReader for Prefix<'_, R> {
    type Error = MissingNode;
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.reads.set(self.reads.get() + 1);
        let end = (u128::from(index) + 1) << level;
        if level >= 64 || end > u128::from(self.size) {
            return Err(MissingNode { level, index });
        }
        self.inner.read_node(level, index)
    }
}

/// A tree of up to `u64::MAX` identical leaves: node(l, i) is the same
/// for every i, so huge sizes can be exercised for real.
pub(super) struct Uniform {
    pub(super) levels: Vec<Hash>,
    pub(super) size: u64,
}

impl Uniform {
    pub(super) fn new<H: TreeHasher>(h: &H, size: u64) -> Self {
        let mut levels = vec![h.hash_leaf(b"same")];
        for l in 1..64 {
            let below = levels[l - 1];
            levels.push(h.hash_children(&below, &below));
        }
        Self { levels, size }
    }
}

impl HashReader for Uniform {
    type Error = MissingNode;
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        let end = (u128::from(index) + 1) << level;
        if level >= 64 || end > u128::from(self.size) {
            return Err(MissingNode { level, index });
        }
        Ok(self.levels[usize::from(level)])
    }
}

// ---------------------------------------------------------------------
// Helpers.
// ---------------------------------------------------------------------

pub(super) fn hx(s: &str) -> Hash {
    hex::decode(s).unwrap().try_into().unwrap()
}

pub(super) fn hxs(v: &[&str]) -> Vec<Hash> {
    v.iter().map(|s| hx(s)).collect()
}

/// All 256 single-bit flips of `h`.
pub(super) fn flips(h: &Hash) -> impl Iterator<Item = Hash> + '_ {
    (0..256).map(move |bit| {
        let mut x = *h;
        x[bit / 8] ^= 1 << (bit % 8);
        x
    })
}

pub(super) fn sha256(parts: &[&[u8]]) -> Hash {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p);
    }
    h.finalize().into()
}

pub(super) fn blake3_concat(parts: &[&[u8]]) -> Hash {
    *blake3::hash(&parts.concat()).as_bytes()
}

pub(super) fn leaves<H: TreeHasher>(h: &H, n: u64) -> Vec<Hash> {
    (0..n)
        .map(|i| h.hash_leaf(format!("entry {i}").as_bytes()))
        .collect()
}

pub(super) fn memory_tree<H: TreeHasher>(h: H, leaf_hashes: &[Hash]) -> MemoryTree<H> {
    let mut t = MemoryTree::new(h);
    for l in leaf_hashes {
        t.push_leaf_hash(*l);
    }
    t
}

// ---------------------------------------------------------------------
// 1. Known answers: RFC 6962 / Certificate Transparency reference data.
// Leaves, roots and paths as in google/trillian merkle/log_verifier_test.go
// and transparency-dev/merkle (also the CT C++ reference tests).
// ---------------------------------------------------------------------

pub(super) const CT_LEAVES: [&str; 8] = [
    "",
    "00",
    "10",
    "2021",
    "3031",
    "40414243",
    "5051525354555657",
    "606162636465666768696a6b6c6d6e6f",
];

pub(super) const CT_ROOTS: [&str; 9] = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

pub(super) fn ct_tree() -> (MemoryTree<Sha256Hasher>, Vec<Hash>) {
    let mut t = MemoryTree::new(Sha256Hasher);
    let mut lh = Vec::new();
    for l in CT_LEAVES {
        let data = hex::decode(l).unwrap();
        lh.push(Sha256Hasher.hash_leaf(&data));
        t.push(&data);
    }
    (t, lh)
}

// ---------------------------------------------------------------------
// 4. Property tests on larger trees.
// ---------------------------------------------------------------------

pub(super) const BIG: u64 = 3000;

pub(super) fn big_tree() -> &'static (MemoryTree<Blake3Hasher>, Vec<Hash>) {
    static TREE: OnceLock<(MemoryTree<Blake3Hasher>, Vec<Hash>)> = OnceLock::new();
    TREE.get_or_init(|| {
        let lh = leaves(&Blake3Hasher, BIG);
        (memory_tree(Blake3Hasher, &lh), lh)
    })
}
