//! The eigenfaces baseline (Turk & Pentland 1991): PCA on the training images, faces
//! compared by Euclidean distance between their projections.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::{FacesError, Result};

/// A fitted PCA basis.
#[derive(Debug, Clone)]
pub struct Eigenfaces {
    /// Mean training image.
    pub mean: Vec<f32>,
    /// Unit-length principal directions, one row of `dim` values each, strongest first.
    pub components: Vec<Vec<f32>>,
}

impl Eigenfaces {
    /// Fits up to `k` components to `images` (each `dim` values), via the eigenvectors of
    /// the `n x n` Gram matrix (cheap when there are fewer images than pixels).
    pub fn fit(images: &[&[f32]], k: usize) -> Result<Self> {
        let n = images.len();
        if n < 2 {
            return Err(FacesError::Config(format!(
                "eigenfaces needs at least 2 training images, got {n}"
            )));
        }
        let dim = images[0].len();
        let mut mean = vec![0.0f64; dim];
        for img in images {
            mean.iter_mut()
                .zip(img.iter())
                .for_each(|(m, &v)| *m += v as f64);
        }
        mean.iter_mut().for_each(|m| *m /= n as f64);
        let x = DMatrix::from_fn(n, dim, |i, j| images[i][j] as f64 - mean[j]);
        let gram = &x * x.transpose();
        let eig = SymmetricEigen::new(gram);
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| eig.eigenvalues[b].total_cmp(&eig.eigenvalues[a]));
        let mut components = Vec::new();
        for &i in order.iter().take(k.min(n - 1)) {
            let lambda = eig.eigenvalues[i];
            if lambda <= 1e-9 {
                break;
            }
            let u = x.transpose() * eig.eigenvectors.column(i);
            let norm = u.norm();
            components.push(u.iter().map(|&v| (v / norm) as f32).collect());
        }
        Ok(Self {
            mean: mean.into_iter().map(|m| m as f32).collect(),
            components,
        })
    }

    /// Projection of one image onto the components.
    pub fn project(&self, img: &[f32]) -> Vec<f32> {
        self.components
            .iter()
            .map(|c| {
                c.iter()
                    .zip(img.iter().zip(&self.mean))
                    .map(|(w, (x, m))| w * (x - m))
                    .sum()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_component_follows_the_direction_of_largest_variance() {
        // Points spread along (1, 1, 0) with a little noise along (0, 0, 1).
        let pts: Vec<Vec<f32>> = (0..10)
            .map(|i| {
                let t = i as f32 - 4.5;
                vec![t, t, if i % 2 == 0 { 0.1 } else { -0.1 }]
            })
            .collect();
        let refs: Vec<&[f32]> = pts.iter().map(Vec::as_slice).collect();
        let pca = Eigenfaces::fit(&refs, 2).unwrap();
        assert_eq!(pca.components.len(), 2);
        let c = &pca.components[0];
        let s = std::f32::consts::FRAC_1_SQRT_2;
        assert!(
            (c[0].abs() - s).abs() < 1e-4 && (c[1].abs() - s).abs() < 1e-4 && c[2].abs() < 1e-2,
            "{c:?}"
        );
        // Two components span the data: projections keep distances (9*sqrt(2) along the
        // line, 0.2 across it).
        let (a, b) = (pca.project(&pts[0]), pca.project(&pts[9]));
        let d: f32 = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).powi(2))
            .sum::<f32>()
            .sqrt();
        assert!((d - (162.0f32 + 0.04).sqrt()).abs() < 1e-3, "{d}");
    }
}
