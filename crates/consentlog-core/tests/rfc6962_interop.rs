//! Our RFC 6962 tree (SHA-256) against an independent implementation, the `tlog_tiles` crate
//! (a port of Go's golang.org/x/mod/sumdb/tlog): the same roots for every size, the same
//! inclusion and consistency proofs for every pair, and each side accepts the other's proofs.

use consentlog_core::tlog::{
    check_consistency, check_inclusion, prove_consistency, prove_inclusion, tree_hash, LeafIndex,
    MemoryTree, Sha256Hasher, TreeHasher, TreeSize,
};
use tlog_tiles as go;

/// Up to this many leaves, every size and every pair is compared.
const N: u64 = 70;

struct Stored(Vec<go::Hash>);

impl go::HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<go::Hash>, go::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

fn leaf(i: u64) -> Vec<u8> {
    // Leaves of varying length, some empty.
    (0..(i % 7) * 5).map(|j| (i * 31 + j) as u8).collect()
}

fn both() -> (MemoryTree<Sha256Hasher>, Stored) {
    let mut ours = MemoryTree::new(Sha256Hasher);
    let mut theirs = Stored(Vec::new());
    for i in 0..N {
        let data = leaf(i);
        ours.push(&data);
        let new = go::stored_hashes(i, &data, &theirs).expect("stored hashes");
        theirs.0.extend(new);
    }
    (ours, theirs)
}

#[test]
fn leaf_and_node_hashes_agree() {
    let h = Sha256Hasher;
    for i in 0..N {
        assert_eq!(h.hash_leaf(&leaf(i)), go::record_hash(&leaf(i)).0);
    }
    let (a, b) = ([1u8; 32], [2u8; 32]);
    assert_eq!(
        h.hash_children(&a, &b),
        go::node_hash(go::Hash(a), go::Hash(b)).0
    );
    assert_eq!(h.empty_root(), go::EMPTY_HASH.0);
}

#[test]
fn roots_agree_for_every_size() {
    let (ours, theirs) = both();
    for t in 0..=N {
        let mine = tree_hash(&Sha256Hasher, &ours, TreeSize(t)).unwrap();
        assert_eq!(mine, go::tree_hash(t, &theirs).unwrap().0, "size {t}");
    }
}

#[test]
fn inclusion_proofs_agree_and_cross_verify() {
    let (ours, theirs) = both();
    for t in 1..=N {
        let root = go::tree_hash(t, &theirs).unwrap();
        for i in 0..t {
            let mine = prove_inclusion(&Sha256Hasher, &ours, LeafIndex(i), TreeSize(t)).unwrap();
            let other = go::prove_record(t, i, &theirs).unwrap();
            assert_eq!(
                mine,
                other.iter().map(|h| h.0).collect::<Vec<_>>(),
                "{i} in {t}"
            );
            let lh = go::record_hash(&leaf(i));
            let as_go: Vec<go::Hash> = mine.iter().map(|&h| go::Hash(h)).collect();
            go::check_record(&as_go, t, root, i, lh).expect("theirs accepts ours");
            check_inclusion(
                &Sha256Hasher,
                LeafIndex(i),
                TreeSize(t),
                &lh.0,
                &mine,
                &root.0,
            )
            .expect("ours accepts ours");
        }
    }
}

#[test]
fn consistency_proofs_agree_and_cross_verify() {
    let (ours, theirs) = both();
    for new in 1..=N {
        let new_root = go::tree_hash(new, &theirs).unwrap();
        for old in 1..=new {
            let old_root = go::tree_hash(old, &theirs).unwrap();
            let mine =
                prove_consistency(&Sha256Hasher, &ours, TreeSize(old), TreeSize(new)).unwrap();
            let other = go::prove_tree(new, old, &theirs).unwrap();
            assert_eq!(
                mine,
                other.iter().map(|h| h.0).collect::<Vec<_>>(),
                "{old}->{new}"
            );
            let as_go: Vec<go::Hash> = mine.iter().map(|&h| go::Hash(h)).collect();
            go::check_tree(&as_go, new, new_root, old, old_root).expect("theirs accepts ours");
            check_consistency(
                &Sha256Hasher,
                TreeSize(old),
                TreeSize(new),
                &old_root.0,
                &new_root.0,
                &mine,
            )
            .expect("ours accepts ours");
        }
    }
}
