//! Whitening of centred embeddings (PCA whitening with shrinkage), fitted on the training
//! faces: the directions in which all training faces vary most (lighting, glasses, pose
//! that the network learned to encode strongly) are scaled down and the weak ones up, so no
//! few directions dominate every cosine. Each ensemble member's block is whitened on its
//! own, then scaled to length `1 / sqrt(members)`, so a score stays the mean of the
//! members' cosines.

use nalgebra::{DMatrix, SymmetricEigen};
use serde::{Deserialize, Serialize};

/// A fitted whitening transform: one `block x block` matrix per ensemble member.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Whitening {
    /// Shrinkage: each eigenvalue `l` of the training covariance is scaled by
    /// `1 / sqrt(l + shrink * mean eigenvalue)`; larger keeps more of the original geometry.
    pub shrink: f64,
    /// Values per member.
    pub block: usize,
    /// Per member, the `block x block` matrix, row after row.
    pub matrices: Vec<Vec<f32>>,
}

impl Whitening {
    /// Fits the transform on `vectors` (centred embeddings of `dim = members * block`
    /// values each). `None` without vectors or when `dim` is not a multiple of `members`.
    pub fn fit(vectors: &[&[f32]], dim: usize, members: usize, shrink: f64) -> Option<Self> {
        if vectors.is_empty() || members == 0 || dim == 0 || !dim.is_multiple_of(members) {
            return None;
        }
        let block = dim / members;
        let n = vectors.len();
        let matrices = (0..members)
            .map(|b| {
                // One row per vector: this member's values.
                let x = DMatrix::<f64>::from_fn(n, block, |i, j| vectors[i][b * block + j] as f64);
                let cov = x.transpose() * &x / n as f64;
                let eig = SymmetricEigen::new(cov);
                let floor = shrink * eig.eigenvalues.mean();
                let scale = eig
                    .eigenvalues
                    .map(|l| 1.0 / (l.max(0.0) + floor).sqrt().max(1e-12));
                let w = &eig.eigenvectors
                    * DMatrix::from_diagonal(&scale)
                    * eig.eigenvectors.transpose();
                // Row after row.
                w.transpose().iter().map(|&x| x as f32).collect()
            })
            .collect();
        Some(Self {
            shrink,
            block,
            matrices,
        })
    }

    /// Embedding size the transform expects.
    pub fn dim(&self) -> usize {
        self.block * self.matrices.len()
    }

    /// Whether the transform is whole and fits embeddings of `dim` values (a manifest may
    /// hold anything).
    pub fn fits(&self, dim: usize) -> bool {
        self.dim() == dim
            && self
                .matrices
                .iter()
                .all(|m| m.len() == self.block * self.block)
    }

    /// Whitens `v` in place: each member's block multiplied by its matrix and scaled to
    /// length `1 / sqrt(members)`.
    pub fn apply(&self, v: &mut [f32]) {
        let scale = 1.0 / (self.matrices.len().max(1) as f32).sqrt();
        for (part, w) in v.chunks_mut(self.block.max(1)).zip(&self.matrices) {
            let y: Vec<f32> = w
                .chunks(self.block)
                .map(|row| row.iter().zip(part.iter()).map(|(a, b)| a * b).sum())
                .collect();
            let norm = y.iter().map(|x| x * x).sum::<f32>().sqrt();
            let k = if norm > 1e-12 { scale / norm } else { 0.0 };
            part.iter_mut().zip(&y).for_each(|(o, &x)| *o = x * k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points with variance 100 along the first axis and 1 along the second.
    fn stretched() -> Vec<Vec<f32>> {
        (0..200)
            .map(|i| {
                let a = ((i * 37 % 101) as f32 / 101.0 - 0.5) * 2.0 * 17.3;
                let b = ((i * 53 % 97) as f32 / 97.0 - 0.5) * 2.0 * 1.73;
                vec![a, b]
            })
            .collect()
    }

    fn variances(points: &[Vec<f32>], w: &Whitening) -> (f32, f32) {
        let m = &w.matrices[0];
        let (mut va, mut vb) = (0.0, 0.0);
        for p in points {
            va += (m[0] * p[0] + m[1] * p[1]).powi(2);
            vb += (m[2] * p[0] + m[3] * p[1]).powi(2);
        }
        (va / points.len() as f32, vb / points.len() as f32)
    }

    #[test]
    fn whitening_evens_out_the_variances_the_more_the_less_it_is_shrunk() {
        let pts = stretched();
        let refs: Vec<&[f32]> = pts.iter().map(Vec::as_slice).collect();
        let full = Whitening::fit(&refs, 2, 1, 0.0).unwrap();
        let (a, b) = variances(&pts, &full);
        assert!((a - 1.0).abs() < 0.05 && (b - 1.0).abs() < 0.05, "{a} {b}");
        let shrunk = Whitening::fit(&refs, 2, 1, 1.0).unwrap();
        let (a, b) = variances(&pts, &shrunk);
        let before = 100.0f32;
        assert!(a / b > 1.5 && a / b < before, "ratio {}", a / b);
    }

    #[test]
    fn each_member_block_comes_out_with_length_one_over_sqrt_members() {
        let pts: Vec<Vec<f32>> = (0..50)
            .map(|i| {
                (0..6)
                    .map(|d| ((i * 7 + d * 13) % 11) as f32 - 5.0)
                    .collect()
            })
            .collect();
        let refs: Vec<&[f32]> = pts.iter().map(Vec::as_slice).collect();
        let w = Whitening::fit(&refs, 6, 3, 0.1).unwrap();
        assert_eq!((w.block, w.matrices.len(), w.dim()), (2, 3, 6));
        let mut v = pts[4].clone();
        w.apply(&mut v);
        for part in v.chunks(2) {
            let len = part.iter().map(|x| x * x).sum::<f32>().sqrt();
            assert!((len - 1.0 / 3f32.sqrt()).abs() < 1e-5, "{len}");
        }
        assert!(Whitening::fit(&refs, 6, 4, 0.1).is_none());
    }
}
