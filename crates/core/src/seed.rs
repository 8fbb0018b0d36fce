//! Seed derivation: one pipeline seed gives every random choice its own stream.
//!
//! [`derive`] hashes the pipeline seed, a purpose (`"translate.step"`, say: what the stream
//! is for) and an index (an epoch, a step, an item) into a new seed, so two purposes never
//! share a stream and a step's randomness does not depend on how many draws came before it.
//! That is what lets a run resumed at step *k* draw exactly what the uninterrupted run drew.

/// The seed for `purpose`'s `index`-th use under the pipeline seed `seed` (the first 8
/// bytes of blake3 over the three).
pub fn derive(seed: u64, purpose: &str, index: u64) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(purpose.as_bytes());
    h.update(&index.to_le_bytes());
    let bytes: [u8; 8] = h.finalize().as_bytes()[..8]
        .try_into()
        .expect("blake3 gives 32 bytes");
    u64::from_le_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_differ_by_seed_purpose_and_index_and_repeat() {
        let a = derive(7, "translate.step", 3);
        assert_eq!(a, derive(7, "translate.step", 3));
        assert_ne!(a, derive(8, "translate.step", 3));
        assert_ne!(a, derive(7, "translate.init", 3));
        assert_ne!(a, derive(7, "translate.step", 4));
    }
}
