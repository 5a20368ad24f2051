//! Hash tiles of c2sp.org/tlog-tiles: `tile/<L>/<N>[.p/<W>]`, 256 (or, partial, `W`) consecutive
//! Merkle Tree Hashes at one height of the tree, so that a client fetching tiles can compute any
//! root or proof itself. docs/FORMAT.md (§14, "Hash tiles and the checkpoint") specifies them; the log serves them
//! (`GET /tile/<L>/<N>[.p/<W>]`).
//!
//! Hash `i` of tile `N` at level `L` is `MTH(D[(N·256 + i)·256^L .. (N·256 + i + 1)·256^L])`: the
//! stored node `(8·L, N·256 + i)` of [`super::tree_hash`]'s flat table (at level 0, the leaf
//! hashes). A tile's body is its hashes concatenated, 32 bytes each. `<N>` and `.p/<W>` are
//! spelled as in entry bundles ([`super::tile`]); `<L>` is decimal, 0 to 63, without leading
//! zeros. Parsing accepts only the canonical spelling, so each tile has exactly one path.

use std::ops::Range;

use super::tile::{encode_index_and_width, parse_index_and_width, TileError, BUNDLE_WIDTH};
use super::tree_hash::HashReader;

/// Hashes in a full tile.
pub const TILE_WIDTH: u64 = BUNDLE_WIDTH;
/// Tree levels a tile spans: a tile at level `L` holds hashes of height `8·L`.
pub const TILE_HEIGHT: u8 = 8;
/// The highest tile level a path may name.
pub const MAX_TILE_LEVEL: u8 = 63;

/// The path of a hash tile: its level, its index within the level and its width.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct HashTile {
    /// `L`: the tile holds node hashes of height `8·L` (level 0: leaf hashes).
    pub level: u8,
    /// `N`: the tile holds the nodes `N·256 ..` of its height.
    pub index: u64,
    /// 1 to 256; 256 is a full tile (no `.p/<W>` suffix).
    pub width: u16,
}

impl HashTile {
    /// Whether it is full (256 hashes).
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == TILE_WIDTH
    }

    /// The stored nodes it holds: their height (`8·L`) and indexes `N·256 .. N·256 + W`; None
    /// when no tree of at most `u64::MAX` leaves has them.
    pub fn nodes(&self) -> Option<(u8, Range<u64>)> {
        let height = self.level.checked_mul(TILE_HEIGHT).filter(|h| *h < 64)?;
        let start = self.index.checked_mul(TILE_WIDTH)?;
        let end = start.checked_add(u64::from(self.width))?;
        // Its last node ends within the first u64::MAX leaves.
        end.checked_mul(1u64 << height)?;
        Some((height, start..end))
    }

    /// The fewest leaves a tree holds for every hash of the tile to be one of its complete
    /// subtrees: `(N·256 + W)·256^L` (None if that is past `u64::MAX`). A log serves the tile
    /// once its tree is at least this large.
    pub fn tree_size_needed(&self) -> Option<u64> {
        // `nodes` checked that this does not overflow.
        self.nodes().map(|(height, nodes)| nodes.end << height)
    }

    /// The path below a log's prefix: `tile/<L>/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/{}/{}",
            self.level,
            encode_index_and_width(self.index, self.width)
        )
    }

    /// Parses what follows `tile/` in a hash tile's path (`<L>/<N>[.p/<W>]`), in its canonical
    /// spelling only.
    pub fn parse(rest: &str) -> Result<HashTile, TileError> {
        let bad = |reason| TileError::Path {
            path: rest.to_string(),
            reason,
        };
        let (level, tail) = rest.split_once('/').ok_or_else(|| bad("no level"))?;
        let level = parse_level(level).ok_or_else(|| bad("level not 0 to 63"))?;
        let (index, width) = parse_index_and_width(tail).map_err(bad)?;
        Ok(HashTile {
            level,
            index,
            width,
        })
    }

    /// The tile's body, read from `r`: its hashes concatenated, `32·W` bytes. A hash `r` lacks
    /// is `r`'s error; a tile no tree can hold reads as `None`.
    pub fn read<R: HashReader>(&self, r: &R) -> Result<Option<Vec<u8>>, R::Error> {
        let Some((height, nodes)) = self.nodes() else {
            return Ok(None);
        };
        let mut out = Vec::with_capacity(usize::from(self.width) * 32);
        for i in nodes {
            out.extend_from_slice(&r.read_node(height, i)?);
        }
        Ok(Some(out))
    }
}

/// A tile level: 0 to 63 in decimal, no leading zeros.
fn parse_level(s: &str) -> Option<u8> {
    if s.is_empty() || s.len() > 2 || (s.len() > 1 && s.starts_with('0')) {
        return None;
    }
    if !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let l: u8 = s.parse().ok()?;
    (l <= MAX_TILE_LEVEL).then_some(l)
}

#[cfg(test)]
mod tests {
    use super::super::memory::MemoryTree;
    use super::super::Sha256Hasher;
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every tile has exactly one path: its own parses back to it, and any text that
        /// parses is that tile's path (nothing else spells it).
        #[test]
        fn tile_paths_are_canonical(
            level in 0u8..=63,
            index in prop_oneof![0u64..5000, (u64::MAX - 2)..=u64::MAX],
            width in 1u16..=256,
            text in "[0-9]{1,3}/(x[0-9]{2,4}/){0,2}[0-9]{2,4}(\\.p/[0-9]{1,3})?",
            noise in "[0-9x./]{0,30}",
        ) {
            let t = HashTile { level, index, width };
            let path = t.path();
            prop_assert_eq!(HashTile::parse(&path["tile/".len()..]), Ok(t));
            for text in [text, noise] {
                if let Ok(u) = HashTile::parse(&text) {
                    prop_assert_eq!(u.path(), format!("tile/{text}"));
                }
            }
        }
    }

    fn tile(level: u8, index: u64, width: u16) -> HashTile {
        HashTile {
            level,
            index,
            width,
        }
    }

    #[test]
    fn paths_are_the_specs_and_round_trip() {
        for (t, path) in [
            (tile(0, 0, 256), "tile/0/000"),
            (tile(0, 273, 112), "tile/0/273.p/112"),
            (tile(1, 1, 17), "tile/1/001.p/17"),
            (tile(2, 0, 1), "tile/2/000.p/1"),
            (tile(63, 1234067, 256), "tile/63/x001/x234/067"),
        ] {
            assert_eq!(t.path(), path);
            assert_eq!(HashTile::parse(&path["tile/".len()..]), Ok(t), "{path}");
        }
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        for bad in [
            "",
            "0",
            "0/",
            "00/000",
            "01/000",
            "64/000",
            "100/000",
            "-1/000",
            "+1/000",
            "a/000",
            "0/0",
            "0/0000",
            "0/x000/001",
            "0/001/002",
            "0/x001",
            "0/000.p/0",
            "0/000.p/256",
            "0/000.p/012",
            "0/000.p/",
            "0/000.p/1/",
            "0/000/",
            "0/000.p/1.p/1",
            "entries/000",
        ] {
            assert!(
                matches!(HashTile::parse(bad), Err(TileError::Path { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn a_tile_holds_the_nodes_of_height_eight_times_its_level() {
        assert_eq!(tile(0, 2, 256).nodes(), Some((0, 512..768)));
        assert_eq!(tile(1, 0, 17).nodes(), Some((8, 0..17)));
        assert_eq!(tile(1, 0, 17).tree_size_needed(), Some(17 * 256));
        assert_eq!(tile(2, 0, 1).tree_size_needed(), Some(65_536));
        // Level 7's first hash covers 2^56 leaves; level 8's would cover 2^64: no tree has it.
        assert_eq!(tile(7, 0, 255).tree_size_needed(), Some(255 << 56));
        assert_eq!(tile(7, 0, 256).tree_size_needed(), None);
        assert_eq!(tile(8, 0, 1).nodes(), None);
        assert_eq!(tile(63, 0, 1).nodes(), None);
        assert_eq!(tile(0, u64::MAX, 1).nodes(), None);
    }

    /// c2sp.org/tlog-tiles: "a tree of size 70,000 will be represented by 273 full level 0
    /// tiles, one partial level 0 tile of width 112, one full level 1 tile, one partial level 1
    /// tile of width 17, and one partial level 2 tile of width 1".
    #[test]
    fn the_specs_tree_of_70000_has_the_specs_tiles_and_each_reads_its_nodes() {
        let mut tree = MemoryTree::new(Sha256Hasher);
        for i in 0..70_000u32 {
            tree.push(&i.to_be_bytes());
        }
        let size = tree.size().0;
        let last = |level: u8| {
            let count = size >> (8 * level);
            tile(level, count / 256, (count % 256) as u16)
        };
        assert_eq!(last(0), tile(0, 273, 112));
        assert_eq!(last(1), tile(1, 1, 17));
        assert_eq!(last(2), tile(2, 0, 1));
        for t in [
            tile(0, 272, 256),
            last(0),
            tile(1, 0, 256),
            last(1),
            last(2),
        ] {
            assert!(t.tree_size_needed().unwrap() <= size, "{t:?}");
            let body = t.read(&tree).unwrap().expect("a tile of some tree");
            assert_eq!(body.len(), 32 * usize::from(t.width));
            let (height, nodes) = t.nodes().unwrap();
            for (k, i) in nodes.enumerate() {
                assert_eq!(
                    body[32 * k..32 * (k + 1)],
                    tree.read_node(height, i).unwrap()
                );
            }
        }
        // One hash more than the tree holds at a level is past it.
        assert!(tile(1, 1, 18).tree_size_needed().unwrap() > size);
        assert!(tile(0, 273, 113).tree_size_needed().unwrap() > size);
    }
}
