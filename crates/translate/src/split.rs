//! Held-out sets cut from a corpus with a seed: dev and test pairs are distinct on both
//! sides, and every training pair that shares a sentence (either side) with dev or test is
//! removed, so no held-out source sentence is ever seen in training.

use std::collections::HashSet;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::corpus::ParallelCorpus;
use crate::error::{Result, TranslateError};

/// Pair indices of each part.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorpusSplit {
    /// Training pairs.
    pub train: Vec<u32>,
    /// Development pairs (model selection), in random order.
    pub dev: Vec<u32>,
    /// Test pairs (reported once), in random order.
    pub test: Vec<u32>,
    /// Training pairs removed because they share a sentence with dev or test.
    pub overlap_removed: usize,
}

/// Cuts `dev` and `test` pairs from `corpus` with `seed`.
pub fn split(corpus: &ParallelCorpus, dev: usize, test: usize, seed: u64) -> Result<CorpusSplit> {
    let n = corpus.pairs.len();
    if dev + test == 0 || dev + test >= n / 2 {
        return Err(TranslateError::config(
            "dev/test",
            format!(
                "{dev} dev + {test} test pairs must be positive and under half of the {n} pairs"
            ),
        ));
    }
    let mut order: Vec<u32> = (0..n as u32).collect();
    order.shuffle(&mut StdRng::seed_from_u64(seed));
    let mut held: [HashSet<&str>; 2] = [HashSet::new(), HashSet::new()];
    let (mut test_ids, mut dev_ids) = (Vec::with_capacity(test), Vec::with_capacity(dev));
    for &i in &order {
        if test_ids.len() == test && dev_ids.len() == dev {
            break;
        }
        let [a, b] = &corpus.pairs[i as usize];
        if held[0].contains(a.as_str()) || held[1].contains(b.as_str()) {
            continue;
        }
        held[0].insert(a);
        held[1].insert(b);
        if test_ids.len() < test {
            test_ids.push(i);
        } else {
            dev_ids.push(i);
        }
    }
    let chosen: HashSet<u32> = test_ids.iter().chain(&dev_ids).copied().collect();
    let mut train = Vec::with_capacity(n);
    let mut overlap_removed = 0;
    for i in 0..n as u32 {
        if chosen.contains(&i) {
            continue;
        }
        let [a, b] = &corpus.pairs[i as usize];
        if held[0].contains(a.as_str()) || held[1].contains(b.as_str()) {
            overlap_removed += 1;
        } else {
            train.push(i);
        }
    }
    // Held-out ids stay in their shuffled order: a prefix (`dev_sentences`, examples in
    // reports) is then a random sample, not the corpus's first (often shortest) lines.
    Ok(CorpusSplit {
        train,
        dev: dev_ids,
        test: test_ids,
        overlap_removed,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::corpus::LoadStats;

    fn corpus() -> ParallelCorpus {
        let mut pairs = Vec::new();
        for i in 0..200 {
            pairs.push([format!("en {}", i % 150), format!("es {i}")]);
        }
        ParallelCorpus {
            languages: ["en".into(), "es".into()],
            pairs,
            stats: LoadStats::default(),
        }
    }

    #[test]
    fn held_out_sentences_never_appear_in_training() {
        let c = corpus();
        let s = split(&c, 10, 20, 7).unwrap();
        assert_eq!((s.dev.len(), s.test.len()), (10, 20));
        let held: HashSet<&str> = s
            .dev
            .iter()
            .chain(&s.test)
            .flat_map(|&i| c.pairs[i as usize].iter().map(String::as_str))
            .collect();
        for &i in &s.train {
            for side in &c.pairs[i as usize] {
                assert!(!held.contains(side.as_str()), "{side} leaked into training");
            }
        }
        assert_eq!(
            s.train.len() + s.dev.len() + s.test.len() + s.overlap_removed,
            200
        );
        assert!(
            s.overlap_removed > 0,
            "duplicated English sides must be removed"
        );
        assert_eq!(s, split(&c, 10, 20, 7).unwrap(), "same seed, same split");
        assert_ne!(s.test, split(&c, 10, 20, 8).unwrap().test);
    }

    #[test]
    fn too_large_held_out_sets_are_refused() {
        assert!(split(&corpus(), 60, 60, 1).is_err());
    }
}
