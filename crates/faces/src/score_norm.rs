//! Symmetric score normalisation (S-norm) against a cohort of faces of other people.
//!
//! A raw similarity means different things for different faces: some people look like many
//! others, some like nobody. S-norm measures each face against a cohort (the training
//! people's images) and rescales the score of a pair by both sides' cohort statistics:
//! `0.5 * ((s - mu_a) / sd_a + (s - mu_b) / sd_b)`, where `mu` and `sd` are the mean and
//! standard deviation of a face's `top` highest cohort scores (adaptive S-norm; `top = 0`
//! takes the whole cohort).

use crate::stages::embeddings::Similarity;

/// The mean of `vectors` (each `dim` long); `None` when there are none.
pub fn mean_embedding<'a>(
    vectors: impl IntoIterator<Item = &'a [f32]>,
    dim: usize,
) -> Option<Vec<f32>> {
    let mut sum = vec![0f64; dim];
    let mut n = 0usize;
    for v in vectors {
        sum.iter_mut().zip(v).for_each(|(s, &x)| *s += x as f64);
        n += 1;
    }
    (n > 0).then(|| sum.into_iter().map(|s| (s / n as f64) as f32).collect())
}

/// Centring: subtracts `center` (the training faces' mean embedding) from `v` and scales
/// the rest to unit length. What all faces share, and so cannot tell people apart, no longer
/// inflates every cosine; a global counterpart of S-norm's per-face statistics.
pub fn center_embedding(v: &mut [f32], center: &[f32]) {
    v.iter_mut().zip(center).for_each(|(x, c)| *x -= c);
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 1e-12 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// A face's cohort statistics: mean and standard deviation of its top cohort scores.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CohortStats {
    /// Mean of the top cohort scores.
    pub mean: f64,
    /// Their standard deviation (floored so a degenerate cohort cannot divide by zero).
    pub sd: f64,
}

/// Cohort embeddings with the people they belong to.
#[derive(Debug, Clone)]
pub struct Cohort<'a> {
    dim: usize,
    vectors: Vec<&'a [f32]>,
    people: Vec<&'a str>,
    top: usize,
    similarity: Similarity,
}

impl<'a> Cohort<'a> {
    /// A cohort of `(person, embedding)` pairs, each `dim` long.
    pub fn new(
        members: impl IntoIterator<Item = (&'a str, &'a [f32])>,
        dim: usize,
        top: usize,
        similarity: Similarity,
    ) -> Self {
        let (people, vectors) = members.into_iter().unzip();
        Self {
            dim,
            vectors,
            people,
            top,
            similarity,
        }
    }

    /// Number of cohort faces.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// Whether the cohort is empty.
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Statistics of `x` against the cohort, leaving out the cohort faces of `exclude`
    /// (a face's own person when it belongs to the cohort's people).
    pub fn stats(&self, x: &[f32], exclude: Option<&str>) -> CohortStats {
        debug_assert_eq!(x.len(), self.dim);
        let mut scores: Vec<f64> = self
            .vectors
            .iter()
            .zip(&self.people)
            .filter(|(_, p)| exclude != Some(**p))
            .map(|(v, _)| self.similarity.score(x, v))
            .collect();
        let k = if self.top == 0 {
            scores.len()
        } else {
            self.top.min(scores.len())
        };
        if k < scores.len() {
            scores.select_nth_unstable_by(k, |a, b| b.total_cmp(a));
            scores.truncate(k);
        }
        let n = scores.len().max(1) as f64;
        let mean = scores.iter().sum::<f64>() / n;
        let var = scores.iter().map(|s| (s - mean) * (s - mean)).sum::<f64>() / n;
        CohortStats {
            mean,
            sd: var.sqrt().max(1e-6),
        }
    }
}

/// The S-normalised score of a pair with raw score `raw`.
pub fn s_norm(raw: f64, a: CohortStats, b: CohortStats) -> f64 {
    0.5 * ((raw - a.mean) / a.sd + (raw - b.mean) / b.sd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_take_the_top_scores_and_leave_out_a_person() {
        let cohort_vecs: [[f32; 2]; 4] = [[1.0, 0.0], [0.0, 1.0], [0.6, 0.8], [-1.0, 0.0]];
        let people = ["a", "b", "c", "d"];
        let cohort = Cohort::new(
            people
                .iter()
                .copied()
                .zip(cohort_vecs.iter().map(|v| &v[..])),
            2,
            2,
            Similarity::Cosine,
        );
        assert_eq!(cohort.len(), 4);
        // Scores of x = (1, 0): a 1.0, b 0.0, c 0.6, d -1.0; the top two are 1.0 and 0.6.
        let s = cohort.stats(&[1.0, 0.0], None);
        assert!(
            (s.mean - 0.8).abs() < 1e-6 && (s.sd - 0.2).abs() < 1e-6,
            "{s:?}"
        );
        // Without person a: 0.6 and 0.0.
        let s = cohort.stats(&[1.0, 0.0], Some("a"));
        assert!(
            (s.mean - 0.3).abs() < 1e-6 && (s.sd - 0.3).abs() < 1e-6,
            "{s:?}"
        );
        // Hand-computed: 0.5 * ((0.9 - 0.8) / 0.2 + (0.9 - 0.3) / 0.3) = 0.5 * (0.5 + 2) = 1.25.
        let a = CohortStats { mean: 0.8, sd: 0.2 };
        let b = CohortStats { mean: 0.3, sd: 0.3 };
        assert!((s_norm(0.9, a, b) - 1.25).abs() < 1e-9);
    }

    #[test]
    fn centring_subtracts_the_mean_and_renormalises() {
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 1.0];
        let mean = mean_embedding([&a[..], &b[..]], 2).unwrap();
        assert_eq!(mean, vec![0.5, 0.5]);
        let (mut x, mut y) = (a, b);
        center_embedding(&mut x, &mean);
        center_embedding(&mut y, &mean);
        let h = std::f32::consts::FRAC_1_SQRT_2;
        assert!((x[0] - h).abs() < 1e-6 && (x[1] + h).abs() < 1e-6, "{x:?}");
        // Two faces at cosine 0 end up opposite once what they share is removed.
        assert!((x[0] * y[0] + x[1] * y[1] + 1.0).abs() < 1e-6);
        assert!(mean_embedding(std::iter::empty(), 2).is_none());
        let mut zero = [0.5f32, 0.5];
        center_embedding(&mut zero, &mean);
        assert_eq!(zero, [0.0, 0.0], "the mean itself stays at zero, no NaN");
    }
}
