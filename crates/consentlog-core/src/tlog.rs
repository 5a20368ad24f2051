//! Merkle tree log in the shape of RFC 9162 §2.1 (Certificate Transparency 2.0).
//!
//! The tree over entries `D[0..n)` is the RFC's Merkle Tree Hash (MTH): the
//! left subtree always holds the largest power of two strictly smaller than
//! `n` leaves, so every left subtree is *complete* and *aligned*. That makes
//! the log storable as a flat table of complete subtree hashes,
//! `node(level, i) = MTH(D[i << level .. (i + 1) << level))`, which never
//! changes once written. Everything else (roots of any historical size,
//! inclusion and consistency proofs) is computed from that table in
//! `O(log n)` reads through [`HashReader`].
//!
//! Layout follows Go's `golang.org/x/mod/sumdb/tlog` and the `ct-merkle`
//! crate: `prove_*` builds a proof from stored hashes, `check_*` verifies one
//! with nothing but the hasher, the sizes and the roots.
//!
//! The hash function is pluggable through [`TreeHasher`]: [`Blake3Hasher`]
//! is the log's hash, [`Sha256Hasher`] is RFC 6962 exactly and exists so the
//! code can be checked against Certificate Transparency's published vectors.

use std::fmt;

use sha2::{Digest, Sha256};
use thiserror::Error;

/// A tree hash: leaf hash, interior node hash or root.
pub use super::hash::Hash;

/// Domain-separation prefix of leaf hashes (RFC 9162 §2.1.1).
const LEAF_PREFIX: u8 = 0x00;
/// Domain-separation prefix of interior node hashes (RFC 9162 §2.1.1).
const NODE_PREFIX: u8 = 0x01;

/// Hash function of the tree (RFC 9162 §2.1.1): leaf = H(0x00 || data),
/// node = H(0x01 || l || r), empty = H("").
pub trait TreeHasher: Sync {
    /// `MTH({}) = HASH()`, the root of the tree with no leaves.
    fn empty_root(&self) -> Hash;
    /// `MTH({d}) = HASH(0x00 || d)`.
    fn hash_leaf(&self, data: &[u8]) -> Hash;
    /// `HASH(0x01 || left || right)`.
    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash;
}

/// BLAKE3 with the RFC 9162 §2.1.1 domain-separation prefixes.
#[derive(Clone, Copy, Debug, Default)]
pub struct Blake3Hasher;

impl TreeHasher for Blake3Hasher {
    fn empty_root(&self) -> Hash {
        *blake3::hash(b"").as_bytes()
    }

    fn hash_leaf(&self, data: &[u8]) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[LEAF_PREFIX]);
        h.update(data);
        *h.finalize().as_bytes()
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        let mut h = blake3::Hasher::new();
        h.update(&[NODE_PREFIX]);
        h.update(left);
        h.update(right);
        *h.finalize().as_bytes()
    }
}

/// SHA-256 with the RFC 9162 §2.1.1 prefixes, i.e. RFC 6962 exactly.
#[derive(Clone, Copy, Debug, Default)]
pub struct Sha256Hasher;

impl TreeHasher for Sha256Hasher {
    fn empty_root(&self) -> Hash {
        Sha256::digest(b"").into()
    }

    fn hash_leaf(&self, data: &[u8]) -> Hash {
        Sha256::new()
            .chain_update([LEAF_PREFIX])
            .chain_update(data)
            .finalize()
            .into()
    }

    fn hash_children(&self, left: &Hash, right: &Hash) -> Hash {
        Sha256::new()
            .chain_update([NODE_PREFIX])
            .chain_update(left)
            .chain_update(right)
            .finalize()
            .into()
    }
}

/// Zero-based position of a leaf in the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct LeafIndex(pub u64);

/// Number of leaves in a (version of the) tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TreeSize(pub u64);

impl fmt::Display for LeafIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for TreeSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// Reads stored hashes of complete, aligned subtrees:
/// `node(level, i)` = hash of leaves `[i << level, (i + 1) << level)`.
///
/// Level 0 holds the leaf hashes. Such a node never changes once the tree
/// has grown past its last leaf, so it can be stored write-once (see
/// [`Frontier::append`]).
pub trait HashReader {
    /// Why a node could not be read (missing, I/O, corruption...).
    type Error;
    /// Returns `node(level, index)`.
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, Self::Error>;
}

impl<R: HashReader + ?Sized> HashReader for &R {
    type Error = R::Error;
    fn read_node(&self, level: u8, index: u64) -> Result<Hash, Self::Error> {
        (**self).read_node(level, index)
    }
}

/// The RFC's split point `k`: the largest power of two strictly smaller
/// than `n` (RFC 9162 §2.1.1). Requires `n >= 2`.
fn split_point(n: u64) -> u64 {
    debug_assert!(n >= 2);
    1 << (63 - (n - 1).leading_zeros())
}

/// Number of significant bits of `x` (Go's `bits.Len64`).
fn bit_len(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// `MTH(D[start:end])`, the hash of leaves `[start, end)` (RFC 9162 §2.1.1).
///
/// Every subtree the RFC algorithms use has `start` aligned to the largest
/// power of two `<= end - start`. For such ranges the complete part is read
/// as stored nodes and the incomplete right edge is recomputed from them,
/// exactly `popcount(end - start)` reads. Other ranges are still hashed
/// correctly, but may need up to `end - start` reads.
///
/// `start == end` gives [`TreeHasher::empty_root`].
///
/// # Panics
/// If `start > end`.
pub fn subtree_hash<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    start: u64,
    end: u64,
) -> Result<Hash, R::Error> {
    assert!(start <= end, "subtree_hash: start {start} > end {end}");
    let n = end - start;
    if n == 0 {
        return Ok(h.empty_root());
    }
    if n.is_power_of_two() && start & (n - 1) == 0 {
        let level = n.trailing_zeros();
        return r.read_node(level as u8, start >> level);
    }
    let k = split_point(n);
    let left = subtree_hash(h, r, start, start + k)?;
    let right = subtree_hash(h, r, start + k, end)?;
    Ok(h.hash_children(&left, &right))
}

/// `MTH(D[0:size])`, the root of the tree of `size` leaves (RFC 9162
/// §2.1.1), in `popcount(size)` reads.
pub fn tree_hash<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    size: TreeSize,
) -> Result<Hash, R::Error> {
    subtree_hash(h, r, 0, size.0)
}

/// Why a proof could not be built.
#[derive(Debug, Error)]
pub enum ProveError<E> {
    /// Inclusion asked for a leaf the tree of that size does not have.
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The requested leaf.
        index: u64,
        /// The tree size the proof was asked for.
        size: u64,
    },
    /// Consistency asked from a larger tree to a smaller one.
    #[error("old tree size {old} is larger than new tree size {new}")]
    SizeOutOfRange {
        /// The requested old size.
        old: u64,
        /// The requested new size.
        new: u64,
    },
    /// The [`HashReader`] failed (for example, the node is not stored yet).
    #[error("reading a stored tree node failed")]
    Read(#[source] E),
}

/// Inclusion proof of leaf `index` in the tree of `size` leaves:
/// `PATH(index, D[size])` of RFC 9162 §2.1.3.1, in leaf-to-root order.
///
/// Needs `O(log size)` reads (at most one sibling is an incomplete
/// subtree).
pub fn prove_inclusion<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    index: LeafIndex,
    size: TreeSize,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let (m, n) = (index.0, size.0);
    if m >= n {
        return Err(ProveError::IndexOutOfRange { index: m, size: n });
    }
    let mut proof = Vec::with_capacity(inclusion_proof_len(m, n));
    inclusion_path(h, r, m, 0, n, &mut proof).map_err(ProveError::Read)?;
    Ok(proof)
}

/// Appends `PATH(m - start, D[start:end])` to `out`.
fn inclusion_path<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    m: u64,
    start: u64,
    end: u64,
    out: &mut Vec<Hash>,
) -> Result<(), R::Error> {
    if end - start <= 1 {
        return Ok(());
    }
    let mid = start + split_point(end - start);
    if m < mid {
        inclusion_path(h, r, m, start, mid, out)?;
        out.push(subtree_hash(h, r, mid, end)?);
    } else {
        inclusion_path(h, r, m, mid, end, out)?;
        out.push(subtree_hash(h, r, start, mid)?);
    }
    Ok(())
}

/// Length of `PATH(index, D[size])` for `index < size`: the depth of the
/// leaf. `inner` levels lie below the point where the leaf's path and the
/// right edge of the tree diverge; `border` are left siblings above it.
fn inclusion_proof_len(index: u64, size: u64) -> usize {
    debug_assert!(index < size);
    let inner = bit_len(index ^ (size - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    (inner + border) as usize
}

/// Why an inclusion proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum InclusionError {
    /// The tree of that size has no such leaf (includes `size == 0`).
    #[error("leaf index {index} is out of range for a tree of size {size}")]
    IndexOutOfRange {
        /// The claimed leaf index.
        index: u64,
        /// The claimed tree size.
        size: u64,
    },
    /// The proof has the wrong number of hashes for this index and size.
    #[error("inclusion proof has {got} hashes, expected {expected} for this index and tree size")]
    WrongProofLength {
        /// The length a proof for this index and size must have.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The leaf hash and proof hash up to a different root.
    #[error("inclusion proof does not lead to the expected root")]
    RootMismatch,
}

/// Verifies that `leaf_hash` is leaf `index` of the tree of `size` leaves
/// with root `root`, using the algorithm of RFC 9162 §2.1.3.2.
///
/// The proof's length is checked first, so every malformed proof is
/// rejected with [`InclusionError::WrongProofLength`] before any hashing.
pub fn check_inclusion<H: TreeHasher>(
    h: &H,
    index: LeafIndex,
    size: TreeSize,
    leaf_hash: &Hash,
    proof: &[Hash],
    root: &Hash,
) -> Result<(), InclusionError> {
    let (index, size) = (index.0, size.0);
    if index >= size {
        return Err(InclusionError::IndexOutOfRange { index, size });
    }
    let expected = inclusion_proof_len(index, size);
    if proof.len() != expected {
        return Err(InclusionError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    // RFC 9162 §2.1.3.2, steps 2-5.
    let (mut fn_, mut sn) = (index, size - 1);
    let mut r = *leaf_hash;
    for p in proof {
        if sn == 0 {
            // Unreachable after the length check; kept as in the RFC.
            return Err(InclusionError::WrongProofLength {
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = h.hash_children(p, &r);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            r = h.hash_children(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    if sn != 0 {
        return Err(InclusionError::WrongProofLength {
            expected,
            got: proof.len(),
        });
    }
    if r != *root {
        return Err(InclusionError::RootMismatch);
    }
    Ok(())
}

/// Consistency proof between the tree of `old` leaves and the tree of `new`
/// leaves: `PROOF(old, D[new])` of RFC 9162 §2.1.4.1, in leaf-to-root order.
///
/// Empty when `old == 0` or `old == new`. Needs `O(log new)` reads.
pub fn prove_consistency<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    old: TreeSize,
    new: TreeSize,
) -> Result<Vec<Hash>, ProveError<R::Error>> {
    let (m, n) = (old.0, new.0);
    if m > n {
        return Err(ProveError::SizeOutOfRange { old: m, new: n });
    }
    if m == 0 || m == n {
        return Ok(Vec::new());
    }
    let mut proof = Vec::with_capacity(consistency_proof_len(m, n));
    subproof(h, r, m, 0, n, true, &mut proof).map_err(ProveError::Read)?;
    Ok(proof)
}

/// Appends `SUBPROOF(m - start, D[start:end], b)` (RFC 9162 §2.1.4.1) to
/// `out`. Requires `start < m <= end`.
fn subproof<H: TreeHasher, R: HashReader>(
    h: &H,
    r: &R,
    m: u64,
    start: u64,
    end: u64,
    b: bool,
    out: &mut Vec<Hash>,
) -> Result<(), R::Error> {
    if m == end {
        if !b {
            out.push(subtree_hash(h, r, start, end)?);
        }
        return Ok(());
    }
    let mid = start + split_point(end - start);
    if m <= mid {
        subproof(h, r, m, start, mid, b, out)?;
        out.push(subtree_hash(h, r, mid, end)?);
    } else {
        subproof(h, r, m, mid, end, false, out)?;
        out.push(subtree_hash(h, r, start, mid)?);
    }
    Ok(())
}

/// Length of `PROOF(old, D[new])` for `0 < old < new`.
fn consistency_proof_len(old: u64, new: u64) -> usize {
    debug_assert!(0 < old && old < new);
    // The path of leaf old-1 in the new tree, minus the levels below the
    // complete subtree of the old tree that contains it (its hash is sent
    // instead, or is the old root itself when old is a power of two).
    let index = old - 1;
    let inner = bit_len(index ^ (new - 1));
    let border = index.checked_shr(inner).unwrap_or(0).count_ones();
    let shift = old.trailing_zeros();
    let seed = u32::from(!old.is_power_of_two());
    (inner - shift + border + seed) as usize
}

/// Why a consistency proof was rejected.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
pub enum ConsistencyError {
    /// A tree cannot be consistent with a smaller later version.
    #[error("old tree size {old} is larger than new tree size {new}")]
    OldSizeTooLarge {
        /// The claimed old size.
        old: u64,
        /// The claimed new size.
        new: u64,
    },
    /// The empty tree is a prefix of every tree; its proof must be empty.
    #[error("old tree size is 0, so the consistency proof must be empty, but it has {got} hashes")]
    OldSizeZeroNonEmptyProof {
        /// The length received.
        got: usize,
    },
    /// The proof has the wrong number of hashes for these sizes.
    #[error(
        "consistency proof has {got} hashes, expected {expected} for tree sizes {old} -> {new}"
    )]
    WrongProofLength {
        /// The claimed old size.
        old: u64,
        /// The claimed new size.
        new: u64,
        /// The length a proof for these sizes must have.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// Two roots of the same tree size differ: the log forked.
    #[error("old and new trees both have size {size} but different roots")]
    SameSizeRootMismatch {
        /// The common tree size.
        size: u64,
    },
    /// The proof does not hash up to the given old root (for `old == 0`:
    /// the old root is not the empty root).
    #[error("consistency proof does not lead to the old root")]
    OldRootMismatch,
    /// The proof does not hash up to the given new root (for `new == 0`:
    /// the new root is not the empty root).
    #[error("consistency proof does not lead to the new root")]
    NewRootMismatch,
}

/// Verifies that the tree of `old` leaves with root `old_root` is a prefix
/// of the tree of `new` leaves with root `new_root`, using the algorithm of
/// RFC 9162 §2.1.4.2.
///
/// Edge cases, which RFC 9162 leaves to the caller:
/// - `old > new`: [`ConsistencyError::OldSizeTooLarge`].
/// - `old == 0`: the proof must be empty and `old_root` must be the empty
///   root; the empty tree is a prefix of any tree, so `new_root` is not
///   constrained (unless `new == 0` too, when it must be the empty root).
/// - `old == new`: the proof must be empty and the roots equal.
///
/// Otherwise the proof length is checked before any hashing.
pub fn check_consistency<H: TreeHasher>(
    h: &H,
    old: TreeSize,
    new: TreeSize,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> Result<(), ConsistencyError> {
    let (old, new) = (old.0, new.0);
    if old > new {
        return Err(ConsistencyError::OldSizeTooLarge { old, new });
    }
    if old == 0 {
        if !proof.is_empty() {
            return Err(ConsistencyError::OldSizeZeroNonEmptyProof { got: proof.len() });
        }
        let empty = h.empty_root();
        if *old_root != empty {
            return Err(ConsistencyError::OldRootMismatch);
        }
        if new == 0 && *new_root != empty {
            return Err(ConsistencyError::NewRootMismatch);
        }
        return Ok(());
    }
    let expected = if old == new {
        0
    } else {
        consistency_proof_len(old, new)
    };
    if proof.len() != expected {
        return Err(ConsistencyError::WrongProofLength {
            old,
            new,
            expected,
            got: proof.len(),
        });
    }
    if old == new {
        if old_root != new_root {
            return Err(ConsistencyError::SameSizeRootMismatch { size: old });
        }
        return Ok(());
    }

    // RFC 9162 §2.1.4.2. Step 1 (empty proof) is covered by the length
    // check; step 2 (prepend old_root when old is a power of two) is done
    // by seeding with it instead of copying the proof.
    let (seed, rest) = if old.is_power_of_two() {
        (old_root, proof)
    } else {
        (&proof[0], &proof[1..])
    };
    // Steps 3-4.
    let (mut fn_, mut sn) = (old - 1, new - 1);
    while fn_ & 1 == 1 {
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 5.
    let (mut fr, mut sr) = (*seed, *seed);
    // Step 6.
    for c in rest {
        if sn == 0 {
            // Unreachable after the length check; kept as in the RFC.
            return Err(ConsistencyError::WrongProofLength {
                old,
                new,
                expected,
                got: proof.len(),
            });
        }
        if fn_ & 1 == 1 || fn_ == sn {
            fr = h.hash_children(c, &fr);
            sr = h.hash_children(c, &sr);
            while fn_ & 1 == 0 && fn_ != 0 {
                fn_ >>= 1;
                sn >>= 1;
            }
        } else {
            sr = h.hash_children(&sr, c);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    // Step 7.
    if sn != 0 {
        return Err(ConsistencyError::WrongProofLength {
            old,
            new,
            expected,
            got: proof.len(),
        });
    }
    if fr != *old_root {
        return Err(ConsistencyError::OldRootMismatch);
    }
    if sr != *new_root {
        return Err(ConsistencyError::NewRootMismatch);
    }
    Ok(())
}

/// The right frontier ("compact range") of a growing tree: enough to append
/// and compute the root without reading anything.
///
/// It holds one hash per set bit of the size: the roots of the complete,
/// aligned subtrees that partition `[0, size)`, largest (leftmost) first.
/// This is the stack of RFC 9162 §2.1.2, kept between appends.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    /// `nodes[j]` covers the `j`-th set bit of `size`, from the highest.
    nodes: Vec<Hash>,
}

impl Frontier {
    /// The frontier of the empty tree.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of leaves appended so far.
    pub fn size(&self) -> TreeSize {
        TreeSize(self.size)
    }

    /// Appends a leaf hash; returns every complete subtree node that became
    /// known, as `(level, index, hash)`, starting with
    /// `(0, leaf index, leaf_hash)`. The caller stores these so a
    /// [`HashReader`] can serve them.
    pub fn append<H: TreeHasher>(&mut self, h: &H, leaf_hash: Hash) -> Vec<(u8, u64, Hash)> {
        let mut out = Vec::with_capacity(1 + self.size.trailing_ones() as usize);
        self.append_with(h, leaf_hash, |level, index, hash| {
            out.push((level, index, *hash));
        });
        out
    }

    /// Like [`Frontier::append`], but hands each new node to `f` instead of
    /// collecting them, in the same order. Does not allocate unless the
    /// frontier itself has to grow.
    ///
    /// # Panics
    /// If the tree already has `u64::MAX` leaves.
    pub fn append_with<H: TreeHasher>(
        &mut self,
        h: &H,
        leaf_hash: Hash,
        mut f: impl FnMut(u8, u64, &Hash),
    ) {
        let size = self.size.checked_add(1).expect("tree size overflows u64");
        let mut index = self.size;
        let mut level = 0u8;
        let mut node = leaf_hash;
        f(level, index, &node);
        // Every trailing 1 bit of the old size is a complete left sibling
        // that merges with the new node.
        while index & 1 == 1 {
            let left = self.nodes.pop().expect("frontier has one node per set bit");
            node = h.hash_children(&left, &node);
            level += 1;
            index >>= 1;
            f(level, index, &node);
        }
        self.nodes.push(node);
        self.size = size;
    }

    /// `MTH(D[0:size])`, folding the frontier from the right (RFC 9162
    /// §2.1.2).
    pub fn root<H: TreeHasher>(&self, h: &H) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        match nodes.next() {
            None => h.empty_root(),
            Some(last) => nodes.fold(*last, |acc, left| h.hash_children(left, &acc)),
        }
    }

    /// Rebuilds the frontier of a tree of `size` leaves from stored nodes
    /// (`popcount(size)` reads).
    pub fn load<R: HashReader>(r: &R, size: TreeSize) -> Result<Self, R::Error> {
        let size = size.0;
        let mut nodes = Vec::with_capacity(size.count_ones() as usize);
        let mut start = 0u64;
        for level in (0..64u8).rev() {
            if size & (1 << level) != 0 {
                nodes.push(r.read_node(level, start >> level)?);
                start += 1 << level;
            }
        }
        Ok(Self { size, nodes })
    }
}

/// A node that a [`MemoryTree`] does not hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[error("tree node (level {level}, index {index}) is not stored")]
pub struct MissingNode {
    /// The requested level.
    pub level: u8,
    /// The requested index within the level.
    pub index: u64,
}

/// In-memory tree for tests and offline tools: stores every complete
/// subtree hash, so it serves any historical size through [`HashReader`].
#[derive(Clone, Debug, Default)]
pub struct MemoryTree<H> {
    hasher: H,
    /// `levels[l][i] = node(l, i)`, complete subtrees only.
    levels: Vec<Vec<Hash>>,
    frontier: Frontier,
}

impl<H: TreeHasher> MemoryTree<H> {
    /// An empty tree using `hasher`.
    pub fn new(hasher: H) -> Self {
        Self {
            hasher,
            levels: Vec::new(),
            frontier: Frontier::new(),
        }
    }

    /// The tree's hasher.
    pub fn hasher(&self) -> &H {
        &self.hasher
    }

    /// Appends an already hashed leaf; returns its index.
    pub fn push_leaf_hash(&mut self, leaf_hash: Hash) -> LeafIndex {
        let index = LeafIndex(self.frontier.size);
        let levels = &mut self.levels;
        self.frontier
            .append_with(&self.hasher, leaf_hash, |level, index, hash| {
                let level = usize::from(level);
                if levels.len() == level {
                    levels.push(Vec::new());
                }
                debug_assert_eq!(levels[level].len() as u64, index);
                levels[level].push(*hash);
            });
        index
    }

    /// Hashes `data` as a leaf and appends it; returns its index.
    pub fn push(&mut self, data: &[u8]) -> LeafIndex {
        let leaf_hash = self.hasher.hash_leaf(data);
        self.push_leaf_hash(leaf_hash)
    }

    /// Number of leaves.
    pub fn size(&self) -> TreeSize {
        self.frontier.size()
    }

    /// Root of the current tree.
    pub fn root(&self) -> Hash {
        self.frontier.root(&self.hasher)
    }

    /// Leaf hash at `index`, if present.
    pub fn leaf_hash(&self, index: LeafIndex) -> Option<Hash> {
        self.read_node(0, index.0).ok()
    }

    /// The current right frontier.
    pub fn frontier(&self) -> &Frontier {
        &self.frontier
    }
}

impl<H> HashReader for MemoryTree<H> {
    type Error = MissingNode;

    fn read_node(&self, level: u8, index: u64) -> Result<Hash, MissingNode> {
        self.levels
            .get(usize::from(level))
            .and_then(|nodes| nodes.get(usize::try_from(index).ok()?))
            .copied()
            .ok_or(MissingNode { level, index })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::cell::Cell;
    use std::collections::BTreeMap;
    use std::sync::OnceLock;

    // ---------------------------------------------------------------------
    // Independent reference: RFC 9162 §2.1.1 MTH, §2.1.3.1 PATH and
    // §2.1.4.1 PROOF/SUBPROOF, transcribed literally over slices of leaf
    // hashes. Shares nothing with the code under test but the hasher.
    // ---------------------------------------------------------------------

    /// Largest power of two strictly smaller than `n` (n >= 2), by counting.
    fn ref_k(n: usize) -> usize {
        assert!(n >= 2);
        let mut k = 1;
        while k * 2 < n {
            k *= 2;
        }
        k
    }

    fn ref_mth<H: TreeHasher>(h: &H, d: &[Hash]) -> Hash {
        match d.len() {
            0 => h.empty_root(),
            1 => d[0],
            n => {
                let k = ref_k(n);
                h.hash_children(&ref_mth(h, &d[..k]), &ref_mth(h, &d[k..]))
            }
        }
    }

    fn ref_path<H: TreeHasher>(h: &H, m: usize, d: &[Hash]) -> Vec<Hash> {
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

    fn ref_subproof<H: TreeHasher>(h: &H, m: usize, d: &[Hash], b: bool) -> Vec<Hash> {
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

    fn ref_proof<H: TreeHasher>(h: &H, m: usize, d: &[Hash]) -> Vec<Hash> {
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
    struct Prefix<'a, R> {
        inner: &'a R,
        size: u64,
        reads: Cell<u64>,
    }

    fn prefix<R>(inner: &R, size: u64) -> Prefix<'_, R> {
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
    struct Uniform {
        levels: Vec<Hash>,
        size: u64,
    }

    impl Uniform {
        fn new<H: TreeHasher>(h: &H, size: u64) -> Self {
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

    fn hx(s: &str) -> Hash {
        hex::decode(s).unwrap().try_into().unwrap()
    }

    fn hxs(v: &[&str]) -> Vec<Hash> {
        v.iter().map(|s| hx(s)).collect()
    }

    /// All 256 single-bit flips of `h`.
    fn flips(h: &Hash) -> impl Iterator<Item = Hash> + '_ {
        (0..256).map(move |bit| {
            let mut x = *h;
            x[bit / 8] ^= 1 << (bit % 8);
            x
        })
    }

    fn sha256(parts: &[&[u8]]) -> Hash {
        let mut h = Sha256::new();
        for p in parts {
            h.update(p);
        }
        h.finalize().into()
    }

    fn blake3_concat(parts: &[&[u8]]) -> Hash {
        *blake3::hash(&parts.concat()).as_bytes()
    }

    fn leaves<H: TreeHasher>(h: &H, n: u64) -> Vec<Hash> {
        (0..n)
            .map(|i| h.hash_leaf(format!("entry {i}").as_bytes()))
            .collect()
    }

    fn memory_tree<H: TreeHasher>(h: H, leaf_hashes: &[Hash]) -> MemoryTree<H> {
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

    const CT_LEAVES: [&str; 8] = [
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    ];

    const CT_ROOTS: [&str; 9] = [
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

    fn ct_tree() -> (MemoryTree<Sha256Hasher>, Vec<Hash>) {
        let mut t = MemoryTree::new(Sha256Hasher);
        let mut lh = Vec::new();
        for l in CT_LEAVES {
            let data = hex::decode(l).unwrap();
            lh.push(Sha256Hasher.hash_leaf(&data));
            t.push(&data);
        }
        (t, lh)
    }

    #[test]
    fn hashers_follow_rfc_definition() {
        let (l, r) = ([0x11u8; 32], [0x22u8; 32]);
        let data = b"consent";

        let s = Sha256Hasher;
        assert_eq!(s.empty_root(), hx(CT_ROOTS[0]));
        assert_eq!(s.empty_root(), sha256(&[]));
        assert_eq!(s.hash_leaf(data), sha256(&[&[0x00], data]));
        assert_eq!(s.hash_children(&l, &r), sha256(&[&[0x01], &l, &r]));
        assert_eq!(s.hash_leaf(b""), hx(CT_ROOTS[1]));
        assert_eq!(
            s.hash_leaf(&[0x00]),
            hx("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7")
        );

        let b = Blake3Hasher;
        assert_eq!(
            b.empty_root(),
            hx("af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262")
        );
        assert_eq!(b.hash_leaf(data), blake3_concat(&[&[0x00], data]));
        assert_eq!(b.hash_children(&l, &r), blake3_concat(&[&[0x01], &l, &r]));

        // Domain separation: a node is not a leaf over the same bytes.
        let lr = [l, r].concat();
        assert_ne!(b.hash_leaf(&lr), b.hash_children(&l, &r));
        assert_ne!(s.hash_leaf(&lr), s.hash_children(&l, &r));
        // Order matters.
        assert_ne!(b.hash_children(&l, &r), b.hash_children(&r, &l));
    }

    #[test]
    fn rfc6962_roots() {
        let (t, lh) = ct_tree();
        let h = Sha256Hasher;
        let mut f = Frontier::new();
        for (size, want) in CT_ROOTS.iter().enumerate() {
            let want = hx(want);
            assert_eq!(ref_mth(&h, &lh[..size]), want, "reference MTH({size})");
            assert_eq!(tree_hash(&h, &t, TreeSize(size as u64)).unwrap(), want);
            assert_eq!(f.root(&h), want, "frontier root({size})");
            if size < lh.len() {
                f.append(&h, lh[size]);
            }
        }
        assert_eq!(t.root(), hx(CT_ROOTS[8]));
        assert_eq!(t.size(), TreeSize(8));
    }

    #[test]
    fn rfc6962_inclusion_vectors() {
        let (t, lh) = ct_tree();
        let h = Sha256Hasher;
        let cases: &[(u64, u64, &[&str])] = &[
            (0, 1, &[]),
            (
                0,
                2,
                &["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"],
            ),
            (
                1,
                2,
                &["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"],
            ),
            (
                2,
                3,
                &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
            ),
            (
                1,
                5,
                &[
                    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
            (
                0,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                5,
                8,
                &[
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
        ];
        for &(index, size, want) in cases {
            let want = hxs(want);
            let r = prefix(&t, size);
            let got = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
            assert_eq!(got, want, "PATH({index}, D[{size}])");
            assert_eq!(ref_path(&h, index as usize, &lh[..size as usize]), want);
            let root = hx(CT_ROOTS[size as usize]);
            check_inclusion(
                &h,
                LeafIndex(index),
                TreeSize(size),
                &lh[index as usize],
                &want,
                &root,
            )
            .unwrap();
        }
    }

    #[test]
    fn rfc6962_consistency_vectors() {
        let (t, lh) = ct_tree();
        let h = Sha256Hasher;
        let cases: &[(u64, u64, &[&str])] = &[
            (1, 1, &[]),
            (
                1,
                8,
                &[
                    "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                ],
            ),
            (
                6,
                8,
                &[
                    "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                    "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
                ],
            ),
            (
                2,
                5,
                &[
                    "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                    "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                ],
            ),
        ];
        for &(old, new, want) in cases {
            let want = hxs(want);
            let r = prefix(&t, new);
            let got = prove_consistency(&h, &r, TreeSize(old), TreeSize(new)).unwrap();
            assert_eq!(got, want, "PROOF({old}, D[{new}])");
            assert_eq!(ref_proof(&h, old as usize, &lh[..new as usize]), want);
            check_consistency(
                &h,
                TreeSize(old),
                TreeSize(new),
                &hx(CT_ROOTS[old as usize]),
                &hx(CT_ROOTS[new as usize]),
                &want,
            )
            .unwrap();
        }
    }

    /// Regression pins for the log's own hash. Not external vectors: they
    /// were produced by this code after it matched the reference MTH above;
    /// they catch any accidental change of the hashing format.
    #[test]
    fn blake3_regression_roots() {
        let mut t = MemoryTree::new(Blake3Hasher);
        for l in CT_LEAVES {
            t.push(&hex::decode(l).unwrap());
        }
        let lh: Vec<Hash> = (0..8).map(|i| t.leaf_hash(LeafIndex(i)).unwrap()).collect();
        assert_eq!(t.root(), ref_mth(&Blake3Hasher, &lh));
        assert_eq!(hex::encode(t.root()), BLAKE3_CT_ROOT_8);
        assert_eq!(
            hex::encode(tree_hash(&Blake3Hasher, &t, TreeSize(5)).unwrap()),
            BLAKE3_CT_ROOT_5
        );
    }

    const BLAKE3_CT_ROOT_8: &str =
        "eed80dc82a14685b1a6607764e4c253418c4279033e89c0c6ddd7fd1717bede7";
    const BLAKE3_CT_ROOT_5: &str =
        "4cb64056def39595286034a932fbb340cffda1338e639f6eaec0d9f875ef59a7";

    // ---------------------------------------------------------------------
    // 2. Exhaustive agreement with the reference on small trees.
    // ---------------------------------------------------------------------

    const SMALL: u64 = 64;

    fn exhaustive<H: TreeHasher + Copy>(h: H) {
        let lh = leaves(&h, SMALL);
        let mut tree = MemoryTree::new(h);
        let mut frontier = Frontier::new();
        // Every node ever reported by append, with its count.
        let mut emitted: BTreeMap<(u8, u64), (Hash, u32)> = BTreeMap::new();

        for size in 0..=SMALL {
            let n = size as usize;
            let want = ref_mth(&h, &lh[..n]);

            // The tree grown so far, and a historical view of the full one.
            assert_eq!(tree.size(), TreeSize(size));
            assert_eq!(tree.root(), want, "MemoryTree root({size})");
            assert_eq!(frontier.root(&h), want, "Frontier root({size})");
            assert_eq!(&frontier, tree.frontier());
            assert_eq!(Frontier::load(&tree, TreeSize(size)).unwrap(), frontier);
            assert_eq!(frontier.size(), TreeSize(size));

            // The set of reported nodes is exactly the complete subtrees.
            let mut expect = BTreeMap::new();
            for level in 0..7u8 {
                for index in 0..(size >> level) {
                    let lo = (index << level) as usize;
                    let hi = ((index + 1) << level) as usize;
                    expect.insert((level, index), (ref_mth(&h, &lh[lo..hi]), 1));
                }
            }
            assert_eq!(emitted, expect, "nodes reported after {size} appends");

            if size < SMALL {
                let mut via_with = Vec::new();
                let mut f2 = frontier.clone();
                f2.append_with(&h, lh[n], |l, i, x| via_with.push((l, i, *x)));
                let nodes = frontier.append(&h, lh[n]);
                assert_eq!(nodes, via_with);
                assert_eq!(f2, frontier);
                assert_eq!(nodes[0], (0, size, lh[n]));
                for (l, i, x) in nodes {
                    emitted.entry((l, i)).or_insert((x, 0)).1 += 1;
                }
                assert_eq!(tree.push_leaf_hash(lh[n]), LeafIndex(size));
            }
        }
        assert_eq!(tree.leaf_hash(LeafIndex(SMALL - 1)), Some(lh[63]));
        assert_eq!(tree.leaf_hash(LeafIndex(SMALL)), None);

        // Roots and inclusion at every historical size.
        for size in 0..=SMALL {
            let n = size as usize;
            let r = prefix(&tree, size);
            let root = tree_hash(&h, &r, TreeSize(size)).unwrap();
            assert_eq!(r.reads.get(), u64::from(size.count_ones()));
            assert_eq!(root, ref_mth(&h, &lh[..n]));
            for index in 0..size {
                let proof = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
                assert_eq!(
                    proof,
                    ref_path(&h, index as usize, &lh[..n]),
                    "PATH({index}, {size})"
                );
                check_inclusion(
                    &h,
                    LeafIndex(index),
                    TreeSize(size),
                    &lh[index as usize],
                    &proof,
                    &root,
                )
                .unwrap();
            }
        }

        // Consistency between every pair of sizes.
        let roots: Vec<Hash> = (0..=SMALL as usize)
            .map(|n| ref_mth(&h, &lh[..n]))
            .collect();
        for new in 0..=SMALL {
            let r = prefix(&tree, new);
            for old in 0..=new {
                let proof = prove_consistency(&h, &r, TreeSize(old), TreeSize(new)).unwrap();
                assert_eq!(
                    proof,
                    ref_proof(&h, old as usize, &lh[..new as usize]),
                    "PROOF({old}, {new})"
                );
                check_consistency(
                    &h,
                    TreeSize(old),
                    TreeSize(new),
                    &roots[old as usize],
                    &roots[new as usize],
                    &proof,
                )
                .unwrap();
            }
        }

        // subtree_hash on every range, aligned or not.
        for start in 0..=SMALL {
            for end in start..=SMALL {
                let r = prefix(&tree, end);
                let got = subtree_hash(&h, &r, start, end).unwrap();
                assert_eq!(
                    got,
                    ref_mth(&h, &lh[start as usize..end as usize]),
                    "[{start}, {end})"
                );
                let n = end - start;
                if n > 0 && start & ((1 << (63 - n.leading_zeros())) - 1) == 0 {
                    assert_eq!(
                        r.reads.get(),
                        u64::from(n.count_ones()),
                        "reads for [{start}, {end})"
                    );
                }
            }
        }
    }

    #[test]
    fn exhaustive_small_trees_blake3() {
        exhaustive(Blake3Hasher);
    }

    #[test]
    fn exhaustive_small_trees_sha256() {
        exhaustive(Sha256Hasher);
    }

    // ---------------------------------------------------------------------
    // 3. Rejection of everything that is not the exact proof.
    // ---------------------------------------------------------------------

    const REJECT: u64 = 33;

    fn rejects_inclusion<H: TreeHasher + Copy>(h: H) {
        let lh = leaves(&h, 2 * REJECT + 2);
        let tree = memory_tree(h, &lh);
        let roots: Vec<Hash> = (0..lh.len()).map(|n| ref_mth(&h, &lh[..n])).collect();
        let junk = [0xa5u8; 32];

        for size in 1..=REJECT {
            let root = roots[size as usize];
            let proofs: Vec<Vec<Hash>> = (0..size)
                .map(|i| prove_inclusion(&h, &tree, LeafIndex(i), TreeSize(size)).unwrap())
                .collect();
            for index in 0..size {
                let leaf = &lh[index as usize];
                let proof = &proofs[index as usize];
                let check = |i: u64, s: u64, leaf: &Hash, p: &[Hash], root: &Hash| {
                    check_inclusion(&h, LeafIndex(i), TreeSize(s), leaf, p, root)
                };
                check(index, size, leaf, proof, &root).unwrap();

                // Every bit of every proof hash, of the leaf and of the root.
                for k in 0..proof.len() {
                    let mut p = proof.clone();
                    for x in flips(&proof[k]) {
                        p[k] = x;
                        assert_eq!(
                            check(index, size, leaf, &p, &root),
                            Err(InclusionError::RootMismatch)
                        );
                    }
                }
                for x in flips(leaf) {
                    assert_eq!(
                        check(index, size, &x, proof, &root),
                        Err(InclusionError::RootMismatch)
                    );
                }
                for x in flips(&root) {
                    assert_eq!(
                        check(index, size, leaf, proof, &x),
                        Err(InclusionError::RootMismatch)
                    );
                }

                // Wrong index: leaves are distinct, so never valid.
                for j in (0..size + 2).filter(|&j| j != index) {
                    let res = check(j, size, leaf, proof, &root);
                    assert!(res.is_err(), "leaf {index} accepted at {j} in {size}");
                    if j >= size {
                        assert_eq!(res, Err(InclusionError::IndexOutOfRange { index: j, size }));
                    }
                }

                // Wrong size, with the root of that size: valid only if the
                // proof happens to be that size's proof (never, here).
                for s in (index + 1..=2 * REJECT + 1).filter(|&s| s != size) {
                    let res = check(index, s, leaf, proof, &roots[s as usize]);
                    let same = *proof == ref_path(&h, index as usize, &lh[..s as usize]);
                    assert_eq!(
                        res.is_ok(),
                        same,
                        "proof ({index}, {size}) checked as size {s}"
                    );
                    assert!(res.is_err());
                }
                // Doubled and halved size with the genuine root.
                assert!(check(index, size * 2, leaf, proof, &root).is_err());
                assert!(check(index, size / 2, leaf, proof, &root).is_err());

                // Wrong lengths.
                let wrong_len = |p: Vec<Hash>| {
                    assert_eq!(
                        check(index, size, leaf, &p, &root),
                        Err(InclusionError::WrongProofLength {
                            expected: proof.len(),
                            got: p.len()
                        })
                    );
                };
                if !proof.is_empty() {
                    wrong_len(proof[..proof.len() - 1].to_vec());
                    wrong_len(proof[1..].to_vec());
                }
                for extra in [junk, root, *leaf] {
                    let mut p = proof.clone();
                    p.push(extra);
                    wrong_len(p);
                    let mut p = vec![extra];
                    p.extend_from_slice(proof);
                    wrong_len(p);
                }
            }
        }
        // Nothing is in the empty tree.
        assert_eq!(
            check_inclusion(&h, LeafIndex(0), TreeSize(0), &lh[0], &[], &h.empty_root()),
            Err(InclusionError::IndexOutOfRange { index: 0, size: 0 })
        );
    }

    fn rejects_consistency<H: TreeHasher + Copy>(h: H, max: u64) {
        let lh = leaves(&h, max + 1);
        let tree = memory_tree(h, &lh);
        let roots: Vec<Hash> = (0..=lh.len()).map(|n| ref_mth(&h, &lh[..n])).collect();
        let junk = [0x5au8; 32];
        let check = |o: u64, n: u64, ro: &Hash, rn: &Hash, p: &[Hash]| {
            check_consistency(&h, TreeSize(o), TreeSize(n), ro, rn, p)
        };
        let proof_of =
            |o: u64, n: u64| prove_consistency(&h, &tree, TreeSize(o), TreeSize(n)).unwrap();

        for new in 0..=max {
            let rn = roots[new as usize];
            for old in 0..=new {
                let ro = roots[old as usize];
                let proof = proof_of(old, new);
                check(old, new, &ro, &rn, &proof).unwrap();

                for k in 0..proof.len() {
                    let mut p = proof.clone();
                    for x in flips(&proof[k]) {
                        p[k] = x;
                        assert!(
                            check(old, new, &ro, &rn, &p).is_err(),
                            "flip in proof[{k}] ({old}, {new})"
                        );
                    }
                }
                for x in flips(&ro) {
                    assert!(
                        check(old, new, &x, &rn, &proof).is_err(),
                        "old root flip ({old}, {new})"
                    );
                }
                for x in flips(&rn) {
                    let res = check(old, new, &ro, &x, &proof);
                    if old == 0 && new > 0 {
                        // The empty tree is a prefix of anything.
                        assert_eq!(res, Ok(()));
                    } else {
                        assert!(res.is_err(), "new root flip ({old}, {new})");
                    }
                }

                if old < new {
                    // Swapped sizes, swapped roots.
                    assert_eq!(
                        check(new, old, &rn, &ro, &proof),
                        Err(ConsistencyError::OldSizeTooLarge { old: new, new: old })
                    );
                    assert!(check(old, new, &rn, &ro, &proof).is_err());
                }

                // Other sizes with their genuine roots: valid iff the proof
                // is also that pair's proof (e.g. both empty).
                for o2 in (0..=new).filter(|&o2| o2 != old) {
                    let res = check(o2, new, &roots[o2 as usize], &rn, &proof);
                    assert_eq!(
                        res.is_ok(),
                        proof == proof_of(o2, new),
                        "({old}, {new}) as ({o2}, {new})"
                    );
                }
                for n2 in (old..=max).filter(|&n2| n2 != new) {
                    let res = check(old, n2, &ro, &roots[n2 as usize], &proof);
                    assert_eq!(
                        res.is_ok(),
                        proof == proof_of(old, n2),
                        "({old}, {new}) as ({old}, {n2})"
                    );
                }

                // Wrong lengths.
                let wrong_len = |p: Vec<Hash>| {
                    let want = if old == 0 {
                        ConsistencyError::OldSizeZeroNonEmptyProof { got: p.len() }
                    } else {
                        ConsistencyError::WrongProofLength {
                            old,
                            new,
                            expected: proof.len(),
                            got: p.len(),
                        }
                    };
                    assert_eq!(check(old, new, &ro, &rn, &p), Err(want));
                };
                if !proof.is_empty() {
                    wrong_len(proof[..proof.len() - 1].to_vec());
                    wrong_len(proof[1..].to_vec());
                    wrong_len(Vec::new());
                }
                for extra in [junk, ro, rn] {
                    let mut p = proof.clone();
                    p.push(extra);
                    wrong_len(p);
                    let mut p = vec![extra];
                    p.extend_from_slice(&proof);
                    wrong_len(p);
                }
            }
        }
    }

    #[test]
    fn rejects_bad_inclusion_blake3() {
        rejects_inclusion(Blake3Hasher);
    }

    #[test]
    fn rejects_bad_inclusion_sha256() {
        rejects_inclusion(Sha256Hasher);
    }

    #[test]
    fn rejects_bad_consistency_blake3() {
        rejects_consistency(Blake3Hasher, REJECT);
    }

    #[test]
    fn rejects_bad_consistency_sha256() {
        rejects_consistency(Sha256Hasher, REJECT);
    }

    #[test]
    fn consistency_edge_cases() {
        let h = Blake3Hasher;
        let e = h.empty_root();
        let x = h.hash_leaf(b"x");
        let y = h.hash_leaf(b"y");
        let c = |o: u64, n: u64, ro: &Hash, rn: &Hash, p: &[Hash]| {
            check_consistency(&h, TreeSize(o), TreeSize(n), ro, rn, p)
        };
        // old == 0.
        assert_eq!(c(0, 0, &e, &e, &[]), Ok(()));
        assert_eq!(c(0, 0, &x, &e, &[]), Err(ConsistencyError::OldRootMismatch));
        assert_eq!(c(0, 0, &e, &x, &[]), Err(ConsistencyError::NewRootMismatch));
        assert_eq!(c(0, 5, &e, &x, &[]), Ok(()));
        assert_eq!(c(0, 5, &x, &x, &[]), Err(ConsistencyError::OldRootMismatch));
        assert_eq!(
            c(0, 5, &e, &x, &[e]),
            Err(ConsistencyError::OldSizeZeroNonEmptyProof { got: 1 })
        );
        assert_eq!(
            c(0, 0, &e, &e, &[e]),
            Err(ConsistencyError::OldSizeZeroNonEmptyProof { got: 1 })
        );
        // old == new.
        assert_eq!(c(3, 3, &x, &x, &[]), Ok(()));
        assert_eq!(
            c(3, 3, &x, &y, &[]),
            Err(ConsistencyError::SameSizeRootMismatch { size: 3 })
        );
        assert_eq!(
            c(3, 3, &x, &x, &[x]),
            Err(ConsistencyError::WrongProofLength {
                old: 3,
                new: 3,
                expected: 0,
                got: 1
            })
        );
        // old > new.
        assert_eq!(
            c(4, 3, &x, &x, &[]),
            Err(ConsistencyError::OldSizeTooLarge { old: 4, new: 3 })
        );
        assert_eq!(
            c(1, 0, &x, &e, &[]),
            Err(ConsistencyError::OldSizeTooLarge { old: 1, new: 0 })
        );
        // 0 < old < new needs a proof.
        assert_eq!(
            c(1, 2, &x, &y, &[]),
            Err(ConsistencyError::WrongProofLength {
                old: 1,
                new: 2,
                expected: 1,
                got: 0
            })
        );
    }

    #[test]
    fn prove_errors() {
        let h = Blake3Hasher;
        let tree = memory_tree(h, &leaves(&h, 5));
        assert!(matches!(
            prove_inclusion(&h, &tree, LeafIndex(5), TreeSize(5)),
            Err(ProveError::IndexOutOfRange { index: 5, size: 5 })
        ));
        assert!(matches!(
            prove_inclusion(&h, &tree, LeafIndex(0), TreeSize(0)),
            Err(ProveError::IndexOutOfRange { index: 0, size: 0 })
        ));
        assert!(matches!(
            prove_consistency(&h, &tree, TreeSize(4), TreeSize(3)),
            Err(ProveError::SizeOutOfRange { old: 4, new: 3 })
        ));
        // Beyond what is stored: the reader's error comes through.
        assert!(matches!(
            prove_inclusion(&h, &tree, LeafIndex(0), TreeSize(8)),
            Err(ProveError::Read(MissingNode { level: 2, index: 1 }))
        ));
        assert!(matches!(
            prove_consistency(&h, &tree, TreeSize(2), TreeSize(6)),
            Err(ProveError::Read(MissingNode { .. }))
        ));
        assert_eq!(
            tree_hash(&h, &tree, TreeSize(6)),
            Err(MissingNode { level: 1, index: 2 })
        );
        assert_eq!(
            Frontier::load(&tree, TreeSize(8)),
            Err(MissingNode { level: 3, index: 0 })
        );
        // Trivial proofs need no reads at all.
        let r = prefix(&tree, 0);
        assert!(prove_consistency(&h, &r, TreeSize(0), TreeSize(5))
            .unwrap()
            .is_empty());
        assert!(prove_consistency(&h, &r, TreeSize(5), TreeSize(5))
            .unwrap()
            .is_empty());
        assert_eq!(r.reads.get(), 0);
    }

    #[test]
    fn error_messages_name_the_problem() {
        let s = InclusionError::WrongProofLength {
            expected: 3,
            got: 4,
        }
        .to_string();
        assert!(
            s.contains("inclusion proof") && s.contains('3') && s.contains('4'),
            "{s}"
        );
        let s = InclusionError::IndexOutOfRange { index: 7, size: 5 }.to_string();
        assert!(s.contains("index 7") && s.contains("size 5"), "{s}");
        assert!(InclusionError::RootMismatch.to_string().contains("root"));
        let s = ConsistencyError::WrongProofLength {
            old: 2,
            new: 9,
            expected: 3,
            got: 1,
        }
        .to_string();
        assert!(
            s.contains("consistency proof") && s.contains("2 -> 9") && s.contains("expected 3"),
            "{s}"
        );
        let s = ConsistencyError::OldSizeTooLarge { old: 9, new: 2 }.to_string();
        assert!(
            s.contains("old tree size 9") && s.contains("new tree size 2"),
            "{s}"
        );
        assert!(ConsistencyError::OldSizeZeroNonEmptyProof { got: 2 }
            .to_string()
            .contains("must be empty"));
        assert!(ConsistencyError::SameSizeRootMismatch { size: 4 }
            .to_string()
            .contains("different roots"));
        assert!(ConsistencyError::OldRootMismatch
            .to_string()
            .contains("old root"));
        assert!(ConsistencyError::NewRootMismatch
            .to_string()
            .contains("new root"));
        let e: ProveError<MissingNode> = ProveError::Read(MissingNode { level: 1, index: 2 });
        assert!(e.to_string().contains("read"));
        let src = std::error::Error::source(&e).unwrap().to_string();
        assert!(src.contains("level 1") && src.contains("index 2"), "{src}");
        let e: ProveError<MissingNode> = ProveError::IndexOutOfRange { index: 3, size: 3 };
        assert!(e.to_string().contains("leaf index 3"));
    }

    /// Sizes near 2^64 on a tree of identical leaves: no overflow, and the
    /// prover only reads nodes that exist in the requested tree.
    #[test]
    fn huge_trees() {
        let h = Blake3Hasher;
        let big = Uniform::new(&h, u64::MAX);
        let leaf = big.levels[0];
        for size in [
            u64::MAX,
            u64::MAX - 1,
            1 << 63,
            (1 << 63) + 1,
            (1 << 63) - 1,
            0xdead_beef_cafe,
        ] {
            let r = Uniform {
                levels: big.levels.clone(),
                size,
            };
            let root = tree_hash(&h, &r, TreeSize(size)).unwrap();
            assert_eq!(Frontier::load(&r, TreeSize(size)).unwrap().root(&h), root);
            for index in [0, 1, size / 2, size - 2, size - 1] {
                let p = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
                assert_eq!(p.len(), inclusion_proof_len(index, size));
                check_inclusion(&h, LeafIndex(index), TreeSize(size), &leaf, &p, &root).unwrap();
            }
            for old in [1, 2, 3, size / 3, size - 1, size] {
                let ro = tree_hash(&h, &r, TreeSize(old)).unwrap();
                let p = prove_consistency(&h, &r, TreeSize(old), TreeSize(size)).unwrap();
                check_consistency(&h, TreeSize(old), TreeSize(size), &ro, &root, &p).unwrap();
            }
        }
        // Length arithmetic at the extremes (shift by 64 must not panic).
        assert_eq!(
            check_inclusion(&h, LeafIndex(0), TreeSize(u64::MAX), &leaf, &[], &leaf),
            Err(InclusionError::WrongProofLength {
                expected: 64,
                got: 0
            })
        );
        assert_eq!(
            check_inclusion(
                &h,
                LeafIndex(u64::MAX - 1),
                TreeSize(u64::MAX),
                &leaf,
                &[],
                &leaf
            ),
            Err(InclusionError::WrongProofLength {
                expected: 63,
                got: 0
            })
        );
    }

    /// With identical leaves, a proof may be valid at several positions:
    /// this is the "unless the leaves are identical" case.
    #[test]
    fn identical_leaves_share_proofs() {
        let h = Blake3Hasher;
        let leaf = h.hash_leaf(b"same");
        let tree = memory_tree(h, &[leaf; 16]);
        let p0 = prove_inclusion(&h, &tree, LeafIndex(0), TreeSize(16)).unwrap();
        for j in 0..16 {
            check_inclusion(&h, LeafIndex(j), TreeSize(16), &leaf, &p0, &tree.root()).unwrap();
        }
    }

    // ---------------------------------------------------------------------
    // 4. Property tests on larger trees.
    // ---------------------------------------------------------------------

    const BIG: u64 = 3000;

    fn big_tree() -> &'static (MemoryTree<Blake3Hasher>, Vec<Hash>) {
        static TREE: OnceLock<(MemoryTree<Blake3Hasher>, Vec<Hash>)> = OnceLock::new();
        TREE.get_or_init(|| {
            let lh = leaves(&Blake3Hasher, BIG);
            (memory_tree(Blake3Hasher, &lh), lh)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn inclusion_roundtrip(
            (size, index) in (1..=BIG).prop_flat_map(|n| (Just(n), 0..n))
        ) {
            let h = Blake3Hasher;
            let (tree, lh) = big_tree();
            let n = size as usize;
            let r = prefix(tree, size);
            let root = tree_hash(&h, &r, TreeSize(size)).unwrap();
            prop_assert_eq!(root, ref_mth(&h, &lh[..n]));
            r.reads.set(0);
            let proof = prove_inclusion(&h, &r, LeafIndex(index), TreeSize(size)).unwrap();
            let bits = u64::from(bit_len(size));
            prop_assert!(r.reads.get() <= 2 * bits, "{} reads", r.reads.get());
            prop_assert_eq!(&proof, &ref_path(&h, index as usize, &lh[..n]));
            check_inclusion(&h, LeafIndex(index), TreeSize(size), &lh[index as usize], &proof, &root).unwrap();
            // Every other position in the same tree rejects it (distinct leaves).
            for j in [0, index.wrapping_sub(1), index + 1, index ^ 1, size - 1] {
                if j != index && j < size {
                    prop_assert!(check_inclusion(&h, LeafIndex(j), TreeSize(size), &lh[index as usize], &proof, &root).is_err());
                }
            }
        }

        #[test]
        fn consistency_roundtrip(
            (new, old) in (0..=BIG).prop_flat_map(|n| (Just(n), 0..=n))
        ) {
            let h = Blake3Hasher;
            let (tree, lh) = big_tree();
            let r = prefix(tree, new);
            let proof = prove_consistency(&h, &r, TreeSize(old), TreeSize(new)).unwrap();
            let bits = u64::from(bit_len(new));
            prop_assert!(r.reads.get() <= 2 * bits + 1, "{} reads", r.reads.get());
            prop_assert_eq!(&proof, &ref_proof(&h, old as usize, &lh[..new as usize]));
            let ro = ref_mth(&h, &lh[..old as usize]);
            let rn = ref_mth(&h, &lh[..new as usize]);
            check_consistency(&h, TreeSize(old), TreeSize(new), &ro, &rn, &proof).unwrap();
            if old > 0 && old < new {
                prop_assert!(check_consistency(&h, TreeSize(old), TreeSize(new), &rn, &ro, &proof).is_err());
                let mut bad = proof.clone();
                let last = bad.len() - 1;
                bad[last][0] ^= 1;
                prop_assert!(check_consistency(&h, TreeSize(old), TreeSize(new), &ro, &rn, &bad).is_err());
            }
            // The frontier rebuilt at `old`, grown to `new`, has the new root.
            let mut f = Frontier::load(tree, TreeSize(old)).unwrap();
            prop_assert_eq!(f.root(&h), ro);
            for l in &lh[old as usize..new as usize] {
                f.append(&h, *l);
            }
            prop_assert_eq!(f.root(&h), rn);
        }

        /// A proof for (i, n) verifies at (j, n) exactly when leaf j equals
        /// leaf i and their proofs coincide; in particular never for j != i
        /// with a different leaf. Leaves come from a tiny alphabet so that
        /// repeats are common.
        #[test]
        fn proof_binds_position(
            data in (1u8..=3).prop_flat_map(|a| prop::collection::vec(0..a, 1..400)),
            i in any::<prop::sample::Index>(),
            j in any::<prop::sample::Index>(),
        ) {
            let h = Blake3Hasher;
            let mut tree = MemoryTree::new(h);
            for d in &data {
                tree.push(&[*d]);
            }
            let size = tree.size();
            let (i, j) = (i.index(data.len()) as u64, j.index(data.len()) as u64);
            let leaf_i = tree.leaf_hash(LeafIndex(i)).unwrap();
            let leaf_j = tree.leaf_hash(LeafIndex(j)).unwrap();
            let pi = prove_inclusion(&h, &tree, LeafIndex(i), size).unwrap();
            let pj = prove_inclusion(&h, &tree, LeafIndex(j), size).unwrap();
            let ok = check_inclusion(&h, LeafIndex(j), size, &leaf_i, &pi, &tree.root()).is_ok();
            prop_assert_eq!(ok, leaf_i == leaf_j && pi == pj);
            if ok && i != j {
                prop_assert_eq!(data[i as usize], data[j as usize]);
            }
        }
    }
}
