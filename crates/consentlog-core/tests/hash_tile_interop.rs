//! Our c2sp.org/tlog-tiles hash tiles against an independent implementation, the `tlog_tiles`
//! crate (a port of Go's golang.org/x/mod/sumdb/tlog, whose tiles C2SP's are): for the spec's
//! tree of 70,000 leaves and sizes around tile edges, every tile the tree has reads the same
//! bytes on both sides and has the same path (Go's spells the height, `tile/8/...`, which
//! C2SP's drops), and Go's `TileHashReader`, which authenticates every tile it reads against
//! the root, computes our roots and proofs from our tiles alone.

use std::cell::RefCell;

use consentlog_core::tlog::{
    prove_consistency, prove_inclusion, tree_hash, HashTile, LeafIndex, MemoryTree, Sha256Hasher,
    TreeSize,
};
use tlog_tiles as go;

struct Stored(Vec<go::Hash>);

impl go::HashReader for Stored {
    fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<go::Hash>, go::Error> {
        Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
    }
}

fn leaf(i: u64) -> Vec<u8> {
    (0..(i % 5) * 3).map(|j| (i * 17 + j) as u8).collect()
}

fn both(n: u64) -> (MemoryTree<Sha256Hasher>, Stored) {
    let mut ours = MemoryTree::new(Sha256Hasher);
    let mut theirs = Stored(Vec::new());
    for i in 0..n {
        let data = leaf(i);
        ours.push(&data);
        let new = go::stored_hashes(i, &data, &theirs).expect("stored hashes");
        theirs.0.extend(new);
    }
    (ours, theirs)
}

fn ours_of(t: &go::Tile) -> HashTile {
    HashTile {
        level: t.level(),
        index: t.level_index(),
        width: t.width() as u16,
    }
}

/// Serves our tiles, read from our tree, to Go's `TileHashReader`; counts the reads.
struct OurTiles<'a> {
    tree: &'a MemoryTree<Sha256Hasher>,
    read: RefCell<usize>,
}

impl go::TileReader for OurTiles<'_> {
    fn height(&self) -> u8 {
        8
    }
    fn read_tiles(&self, tiles: &[go::Tile]) -> Result<Vec<Vec<u8>>, go::Error> {
        *self.read.borrow_mut() += tiles.len();
        Ok(tiles
            .iter()
            .map(|t| {
                ours_of(t)
                    .read(self.tree)
                    .unwrap()
                    .expect("a tile of the tree")
            })
            .collect())
    }
    fn save_tiles(&self, _: &[go::Tile], _: &[Vec<u8>]) {}
}

#[test]
fn every_tile_reads_and_is_named_as_gos() {
    let (ours, theirs) = both(70_000);
    for size in [1, 255, 256, 257, 65_535, 65_536, 65_537, 70_000] {
        let tiles = go::Tile::new_tiles(8, 0, size);
        assert!(!tiles.is_empty());
        for t in &tiles {
            let mine = ours_of(t);
            assert!(mine.tree_size_needed().unwrap() <= size, "{size}: {t:?}");
            assert_eq!(
                t.path().replacen("tile/8/", "tile/", 1),
                mine.path(),
                "{size}"
            );
            assert_eq!(
                HashTile::parse(&mine.path()["tile/".len()..]),
                Ok(mine),
                "{size}"
            );
            let theirs = t.read_data(&theirs).expect("their tile");
            assert_eq!(mine.read(&ours).unwrap().unwrap(), theirs, "{size}: {t:?}");
        }
    }
}

#[test]
fn gos_tile_reader_computes_our_roots_and_proofs_from_our_tiles() {
    let (ours, _) = both(70_000);
    for size in [1u64, 2, 255, 256, 257, 511, 65_536, 65_537, 70_000] {
        let root = tree_hash(&Sha256Hasher, &ours, TreeSize(size)).unwrap();
        let tiles = OurTiles {
            tree: &ours,
            read: RefCell::new(0),
        };
        let reader = go::TileHashReader::new(size, go::Hash(root), &tiles);
        assert_eq!(go::tree_hash(size, &reader).unwrap().0, root, "{size}");
        for i in [0, size / 3, size - 1] {
            let proof = go::prove_record(size, i, &reader).unwrap();
            let mine = prove_inclusion(&Sha256Hasher, &ours, LeafIndex(i), TreeSize(size)).unwrap();
            assert_eq!(
                proof.iter().map(|h| h.0).collect::<Vec<_>>(),
                mine,
                "{i} in {size}"
            );
        }
        for old in [1, size / 2, size] {
            if old == 0 {
                continue;
            }
            let proof = go::prove_tree(size, old, &reader).unwrap();
            let mine =
                prove_consistency(&Sha256Hasher, &ours, TreeSize(old), TreeSize(size)).unwrap();
            assert_eq!(
                proof.iter().map(|h| h.0).collect::<Vec<_>>(),
                mine,
                "{old}->{size}"
            );
        }
        assert!(*tiles.read.borrow() > 0);
    }
}
