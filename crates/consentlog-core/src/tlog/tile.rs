//! Entry bundles of c2sp.org/tlog-tiles: the path of a bundle (`tile/entries/<N>[.p/<W>]`) and
//! its body (each entry a big-endian uint16 length, then the entry's bytes). docs/FORMAT.md
//! ("Entry bundles") specifies both byte for byte; the log serves them
//! (`GET /tile/entries/...`) and the replaying witness reads them.
//!
//! `<N>` is the bundle's index, written in zero-padded 3-digit path elements, all but the last
//! prefixed with `x` (1234067 is `x001/x234/067`); `.p/<W>` marks a partial bundle of `W`
//! entries, 1 to 255, in decimal without leading zeros. Bundle `N` holds the entries
//! `N * 256 ..` — 256 of them when full. Parsing accepts only the canonical spelling, so each
//! bundle has exactly one path.

use std::ops::Range;

use thiserror::Error;

/// Entries in a full bundle.
pub const BUNDLE_WIDTH: u64 = 256;
/// The longest entry a bundle can hold (its length is a uint16).
pub const MAX_ENTRY: usize = u16::MAX as usize;

/// The path of an entry bundle: its index and how many entries it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct EntryTile {
    /// `N`: the bundle holds entries from `N * 256`.
    pub index: u64,
    /// 1 to 256; 256 is a full bundle (no `.p/<W>` suffix).
    pub width: u16,
}

/// A malformed bundle path or body.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TileError {
    #[error("bad tile path {path:?}: {reason}")]
    Path { path: String, reason: &'static str },
    #[error("entry {entry} of the bundle is {len} bytes, longer than {MAX_ENTRY}")]
    EntryTooLong { entry: usize, len: usize },
    #[error("the bundle ends inside entry {entry} (expected {expected} entries)")]
    Truncated { entry: usize, expected: usize },
    #[error("the bundle holds more than the {expected} entries expected")]
    TooMany { expected: usize },
}

impl EntryTile {
    /// A full bundle.
    pub fn full(index: u64) -> EntryTile {
        EntryTile {
            index,
            width: BUNDLE_WIDTH as u16,
        }
    }

    /// Whether it is full (256 entries).
    pub fn is_full(&self) -> bool {
        u64::from(self.width) == BUNDLE_WIDTH
    }

    /// The entries it holds, `N * 256 .. N * 256 + W` (None if that overflows a u64).
    pub fn entries(&self) -> Option<Range<u64>> {
        let start = self.index.checked_mul(BUNDLE_WIDTH)?;
        Some(start..start.checked_add(u64::from(self.width))?)
    }

    /// The bundle that holds entry `i` in a tree of `size` (> `i`): full if the tree has all
    /// 256 of its entries, else partial up to `size`.
    pub fn containing(i: u64, size: u64) -> EntryTile {
        let index = i / BUNDLE_WIDTH;
        let start = index * BUNDLE_WIDTH;
        EntryTile {
            index,
            width: (size - start).min(BUNDLE_WIDTH) as u16,
        }
    }

    /// The longest body a bundle of this width can have: every entry [`MAX_ENTRY`] bytes
    /// after its 2-byte length. A reader stops at this many bytes; any longer body cannot
    /// hold exactly `width` entries.
    pub fn max_body_len(&self) -> usize {
        usize::from(self.width) * (2 + MAX_ENTRY)
    }

    /// The path below a log's prefix: `tile/entries/<N>[.p/<W>]`.
    pub fn path(&self) -> String {
        format!(
            "tile/entries/{}",
            encode_index_and_width(self.index, self.width)
        )
    }

    /// Parses what follows `tile/entries/` in a bundle's path, in its canonical spelling only.
    pub fn parse(rest: &str) -> Result<EntryTile, TileError> {
        let bad = |reason| TileError::Path {
            path: rest.to_string(),
            reason,
        };
        let (index, width) = parse_index_and_width(rest).map_err(bad)?;
        let tile = EntryTile { index, width };
        tile.entries().ok_or_else(|| bad("index out of range"))?;
        Ok(tile)
    }
}

/// `n` in 3-digit path elements, all but the last prefixed with `x`.
pub fn encode_index(mut n: u64) -> String {
    let mut groups = vec![n % 1000];
    n /= 1000;
    while n > 0 {
        groups.push(n % 1000);
        n /= 1000;
    }
    let last = groups.len() - 1;
    groups
        .iter()
        .rev()
        .enumerate()
        .map(|(k, g)| {
            if k == last {
                format!("{g:03}")
            } else {
                format!("x{g:03}")
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// `<N>[.p/<W>]`, as tile and bundle paths end: `.p/<W>` only for a partial width (below 256).
pub(crate) fn encode_index_and_width(index: u64, width: u16) -> String {
    let n = encode_index(index);
    if u64::from(width) == BUNDLE_WIDTH {
        n
    } else {
        format!("{n}.p/{width}")
    }
}

/// The inverse of [`encode_index_and_width`]: the index and the width (256 without `.p/`).
pub(crate) fn parse_index_and_width(s: &str) -> Result<(u64, u16), &'static str> {
    let (n, width) = match s.split_once(".p/") {
        None => (s, BUNDLE_WIDTH as u16),
        Some((n, w)) => (n, parse_width(w).ok_or("width not 1 to 255")?),
    };
    Ok((parse_index(n)?, width))
}

/// The inverse of [`encode_index`]: only its output is accepted.
fn parse_index(s: &str) -> Result<u64, &'static str> {
    let parts: Vec<&str> = s.split('/').collect();
    let last = parts.len() - 1;
    let mut n: u64 = 0;
    for (k, part) in parts.iter().enumerate() {
        let digits = if k == last {
            *part
        } else {
            part.strip_prefix('x')
                .ok_or("all but the last element must start with x")?
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err("each element must be 3 digits");
        }
        let g: u64 = digits.parse().expect("3 digits");
        if k == 0 && k != last && g == 0 {
            return Err("leading zero element");
        }
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(g))
            .ok_or("index out of range")?;
    }
    Ok(n)
}

/// A partial width: 1 to 255 in decimal, no leading zeros.
fn parse_width(s: &str) -> Option<u16> {
    if s.is_empty() || s.len() > 3 || s.starts_with('0') || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let w: u16 = s.parse().ok()?;
    (1..BUNDLE_WIDTH as u16).contains(&w).then_some(w)
}

/// Appends `entry` to a bundle body: its length (uint16, big-endian), then its bytes.
pub fn push_entry(bundle: &mut Vec<u8>, entry: &[u8]) -> Result<(), TileError> {
    let len = u16::try_from(entry.len()).map_err(|_| TileError::EntryTooLong {
        entry: 0,
        len: entry.len(),
    })?;
    bundle.extend_from_slice(&len.to_be_bytes());
    bundle.extend_from_slice(entry);
    Ok(())
}

/// The body of a bundle of `entries`.
pub fn encode_bundle<'a>(
    entries: impl IntoIterator<Item = &'a [u8]>,
) -> Result<Vec<u8>, TileError> {
    let mut out = Vec::new();
    for (k, e) in entries.into_iter().enumerate() {
        push_entry(&mut out, e).map_err(|_| TileError::EntryTooLong {
            entry: k,
            len: e.len(),
        })?;
    }
    Ok(out)
}

/// Where each of the `width` entries of the bundle body `bytes` lies in it (no copy): the
/// body must hold exactly `width` entries and nothing after them.
pub fn split_bundle(bytes: &[u8], width: usize) -> Result<Vec<Range<usize>>, TileError> {
    let mut out = Vec::with_capacity(width);
    let mut at = 0usize;
    while at < bytes.len() {
        if out.len() == width {
            return Err(TileError::TooMany { expected: width });
        }
        let truncated = TileError::Truncated {
            entry: out.len(),
            expected: width,
        };
        let len = bytes.get(at..at + 2).ok_or(truncated.clone())?;
        let len = usize::from(u16::from_be_bytes([len[0], len[1]]));
        let start = at + 2;
        if bytes.len() - start < len {
            return Err(truncated);
        }
        out.push(start..start + len);
        at = start + len;
    }
    if out.len() != width {
        return Err(TileError::Truncated {
            entry: out.len(),
            expected: width,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Every bundle has exactly one path: its own parses back to it, and any text that
        /// parses is that bundle's path (nothing else spells it).
        #[test]
        fn bundle_paths_are_canonical(
            index in prop_oneof![0u64..5000, (u64::MAX / 256 - 2)..=(u64::MAX / 256 - 1)],
            width in 1u16..=256,
            text in "(x[0-9]{2,4}/){0,2}[0-9]{2,4}(\\.p/[0-9]{1,3})?",
            noise in "[0-9x./]{0,30}",
        ) {
            let t = EntryTile { index, width };
            let path = t.path();
            prop_assert_eq!(EntryTile::parse(&path["tile/entries/".len()..]), Ok(t));
            for text in [text, noise] {
                if let Ok(u) = EntryTile::parse(&text) {
                    prop_assert_eq!(u.path(), format!("tile/entries/{text}"));
                }
            }
        }

        /// A bundle body is split only when it is exactly `width` entries: then the entries
        /// re-encode to the same bytes; anything else is refused, without a panic.
        #[test]
        fn bundle_bodies_split_strictly(
            bytes in proptest::collection::vec(any::<u8>(), 0..64),
            width in 0usize..8,
        ) {
            if let Ok(spans) = split_bundle(&bytes, width) {
                prop_assert_eq!(spans.len(), width);
                let again = encode_bundle(spans.iter().map(|r| &bytes[r.clone()])).unwrap();
                prop_assert_eq!(again, bytes);
            }
        }
    }

    #[test]
    fn index_paths_are_the_specs() {
        // c2sp.org/tlog-tiles: "index 1234067 will be encoded as x001/x234/067".
        assert_eq!(encode_index(1_234_067), "x001/x234/067");
        assert_eq!(encode_index(0), "000");
        assert_eq!(encode_index(999), "999");
        assert_eq!(encode_index(1000), "x001/000");
        assert_eq!(encode_index(u64::MAX), "x018/x446/x744/x073/x709/x551/615");
        for n in [
            0,
            1,
            255,
            256,
            999,
            1000,
            1_000_000,
            1_234_067,
            u64::MAX / 256 - 1,
        ] {
            let t = EntryTile::full(n);
            let rest = t.path().strip_prefix("tile/entries/").unwrap().to_string();
            assert_eq!(EntryTile::parse(&rest), Ok(t), "{rest}");
        }
        let p = EntryTile { index: 5, width: 7 };
        assert_eq!(p.path(), "tile/entries/005.p/7");
        assert_eq!(EntryTile::parse("005.p/7"), Ok(p));
        assert_eq!(EntryTile::parse("x001/x234/067.p/255").unwrap().width, 255);
    }

    #[test]
    fn the_longest_body_is_its_width_of_longest_entries() {
        for width in [1u16, 2, 255, 256] {
            let t = EntryTile { index: 0, width };
            let longest = vec![0xa5; MAX_ENTRY];
            let body = encode_bundle((0..width).map(|_| longest.as_slice())).unwrap();
            assert_eq!(body.len(), t.max_body_len(), "{width}");
            assert!(split_bundle(&body, usize::from(width)).is_ok());
            let mut longer = body;
            longer.push(0);
            assert!(split_bundle(&longer, usize::from(width)).is_err());
        }
    }

    #[test]
    fn only_the_canonical_spelling_parses() {
        for bad in [
            "",
            "5",
            "05",
            "0005",
            "x000/005",
            "x005",
            "001/005",
            "x01/005",
            "x001/05",
            "x001/x005",
            "+01",
            "-01",
            "00a",
            "005/",
            "/005",
            "005.p/0",
            "005.p/256",
            "005.p/07",
            "005.p/",
            "005.p/1000",
            "005.p/+7",
            "005.p/7/",
            "005.p7",
            // index * 256 overflows a u64
            "x018/x446/x744/x073/x709/x551/615",
            "x999/x999/x999/x999/x999/x999/x999/999",
        ] {
            assert!(EntryTile::parse(bad).is_err(), "{bad:?} parsed");
        }
    }

    #[test]
    fn containing_is_full_or_partial() {
        assert_eq!(
            EntryTile::containing(0, 1),
            EntryTile { index: 0, width: 1 }
        );
        assert_eq!(EntryTile::containing(0, 256), EntryTile::full(0));
        assert_eq!(EntryTile::containing(300, 70_000), EntryTile::full(1));
        assert_eq!(
            EntryTile::containing(69_999, 70_000),
            EntryTile {
                index: 273,
                width: 112
            }
        );
        assert_eq!(EntryTile::full(2).entries(), Some(512..768));
    }

    #[test]
    fn bundles_round_trip_and_hostile_ones_are_refused() {
        let entries: Vec<Vec<u8>> = vec![b"".to_vec(), b"a".to_vec(), vec![7u8; 300]];
        let body = encode_bundle(entries.iter().map(|e| e.as_slice())).unwrap();
        assert_eq!(&body[..5], &[0, 0, 0, 1, b'a']);
        assert_eq!(body.len(), 2 + 3 + 2 + 300);
        let split = split_bundle(&body, 3).unwrap();
        let got: Vec<&[u8]> = split.iter().map(|r| &body[r.clone()]).collect();
        assert_eq!(
            got,
            entries.iter().map(|e| e.as_slice()).collect::<Vec<_>>()
        );
        assert_eq!(
            split_bundle(&body, 2),
            Err(TileError::TooMany { expected: 2 })
        );
        assert_eq!(
            split_bundle(&body, 4),
            Err(TileError::Truncated {
                entry: 3,
                expected: 4
            })
        );
        // A length past the end, and a cut length prefix.
        assert!(matches!(
            split_bundle(&body[..body.len() - 1], 3),
            Err(TileError::Truncated { entry: 2, .. })
        ));
        assert!(matches!(
            split_bundle(&body[..6], 3),
            Err(TileError::Truncated { entry: 2, .. })
        ));
        assert_eq!(split_bundle(&[], 0), Ok(vec![]));
        assert!(matches!(
            encode_bundle([vec![0u8; MAX_ENTRY + 1].as_slice()]),
            Err(TileError::EntryTooLong { entry: 0, .. })
        ));
    }
}
