//! State keys computed for events not yet committed. The VRF is evaluated once per triple and
//! its answer lands in the private index with the event's chunk; until then (the next chunk
//! is checked while the previous one commits) this bounded memory answers for it, so a triple
//! seen in consecutive chunks is not evaluated again. The VRF being deterministic, an answer
//! here is the answer the index will hold.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::core::hash::Hash;
use crate::core::vrf::VrfProof;

/// Most answers kept; when full, it is emptied (answers are only ever recomputed, never
/// wrong).
pub const FRESH_KEYS_CAP: usize = 65_536;

/// `BLAKE3(alpha)` → (state key, VRF proof), at most [`FRESH_KEYS_CAP`] of them.
#[derive(Default)]
pub(super) struct FreshKeys(Mutex<HashMap<Hash, (Hash, VrfProof)>>);

impl FreshKeys {
    pub(super) fn get(&self, id: &Hash) -> Option<(Hash, VrfProof)> {
        self.0.lock().expect("fresh keys").get(id).copied()
    }

    pub(super) fn put(&self, id: Hash, answer: (Hash, VrfProof)) {
        let mut m = self.0.lock().expect("fresh keys");
        if m.len() >= FRESH_KEYS_CAP {
            m.clear();
        }
        m.insert(id, answer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_stays_within_its_cap() {
        let f = FreshKeys::default();
        for i in 0..FRESH_KEYS_CAP as u64 + 10 {
            let mut id = [0u8; 32];
            id[..8].copy_from_slice(&i.to_le_bytes());
            f.put(id, ([1; 32], VrfProof([2; 80])));
            assert!(f.0.lock().unwrap().len() <= FRESH_KEYS_CAP);
        }
        let mut last = [0u8; 32];
        last[..8].copy_from_slice(&(FRESH_KEYS_CAP as u64 + 9).to_le_bytes());
        assert_eq!(f.get(&last), Some(([1; 32], VrfProof([2; 80]))));
    }
}
