//! Seeded augmentation of 2-D inputs (`[channels, rows, cols]`, e.g. mel bands x frames):
//! random circular shift along the columns and SpecAugment-style row/column masks; and
//! [`bilinear`] sampling, which the image domains' warps share.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

/// Settings for [`augment_2d`]. All default to off.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Augment2dConfig {
    /// Largest random shift along the columns (time frames), both directions.
    pub max_shift: usize,
    /// Number of row (frequency) masks per example.
    pub row_masks: usize,
    /// Largest height of a row mask.
    pub max_row_mask: usize,
    /// Number of column (time) masks per example.
    pub col_masks: usize,
    /// Largest width of a column mask.
    pub max_col_mask: usize,
}

impl Augment2dConfig {
    /// Whether any augmentation is enabled.
    pub fn is_active(&self) -> bool {
        self.max_shift > 0
            || (self.row_masks > 0 && self.max_row_mask > 0)
            || (self.col_masks > 0 && self.max_col_mask > 0)
    }
}

/// Seeded, in-place augmentation of one training example, applied by the training loop.
pub trait Augmenter: Sync {
    /// Whether the augmenter changes anything (the loop skips it otherwise).
    fn is_active(&self) -> bool;
    /// Augments one example of `shape = [channels, rows, cols]` in place.
    fn apply(&self, x: &mut [f32], shape: [usize; 3], rng: &mut rand::rngs::StdRng);
}

impl Augmenter for Augment2dConfig {
    fn is_active(&self) -> bool {
        Augment2dConfig::is_active(self)
    }
    fn apply(&self, x: &mut [f32], shape: [usize; 3], rng: &mut rand::rngs::StdRng) {
        augment_2d(x, shape, self, 0.0, rng);
    }
}

/// Augments one example in place; `x` holds `channels * rows * cols` values. Masked cells are
/// set to `fill` (0 for per-utterance normalised features, i.e. the mean).
pub fn augment_2d<R: Rng>(
    x: &mut [f32],
    [channels, rows, cols]: [usize; 3],
    cfg: &Augment2dConfig,
    fill: f32,
    rng: &mut R,
) {
    debug_assert_eq!(x.len(), channels * rows * cols);
    if cfg.max_shift > 0 && cols > 1 {
        let max = cfg.max_shift.min(cols - 1) as i64;
        let shift = rng.random_range(-max..=max);
        let s = shift.rem_euclid(cols as i64) as usize;
        if s != 0 {
            for row in x.chunks_mut(cols) {
                row.rotate_right(s);
            }
        }
    }
    for _ in 0..cfg.row_masks {
        if cfg.max_row_mask == 0 || rows == 0 {
            break;
        }
        let h = rng.random_range(0..=cfg.max_row_mask.min(rows));
        let start = rng.random_range(0..=rows - h);
        for c in 0..channels {
            for r in start..start + h {
                let base = (c * rows + r) * cols;
                x[base..base + cols].fill(fill);
            }
        }
    }
    for _ in 0..cfg.col_masks {
        if cfg.max_col_mask == 0 || cols == 0 {
            break;
        }
        let w = rng.random_range(0..=cfg.max_col_mask.min(cols));
        let start = rng.random_range(0..=cols - w);
        for row in x.chunks_mut(cols) {
            row[start..start + w].fill(fill);
        }
    }
}

/// Bilinear sample of an `h x w` plane at `(x, y)`, replicating the border.
pub fn bilinear(p: &[f32], h: usize, w: usize, x: f32, y: f32) -> f32 {
    let x = x.clamp(0.0, (w - 1) as f32);
    let y = y.clamp(0.0, (h - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(w - 1), (y0 + 1).min(h - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let top = p[y0 * w + x0] * (1.0 - fx) + p[y0 * w + x1] * fx;
    let bottom = p[y1 * w + x0] * (1.0 - fx) + p[y1 * w + x1] * fx;
    top * (1.0 - fy) + bottom * fy
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn off_by_default_and_seeded() {
        let cfg = Augment2dConfig::default();
        assert!(!cfg.is_active());
        let mut x: Vec<f32> = (0..12).map(|v| v as f32).collect();
        let orig = x.clone();
        augment_2d(&mut x, [1, 3, 4], &cfg, 0.0, &mut StdRng::seed_from_u64(1));
        assert_eq!(x, orig);

        let cfg = Augment2dConfig {
            max_shift: 2,
            row_masks: 1,
            max_row_mask: 1,
            col_masks: 1,
            max_col_mask: 2,
        };
        let mut a = orig.clone();
        let mut b = orig.clone();
        augment_2d(&mut a, [1, 3, 4], &cfg, -1.0, &mut StdRng::seed_from_u64(7));
        augment_2d(&mut b, [1, 3, 4], &cfg, -1.0, &mut StdRng::seed_from_u64(7));
        assert_eq!(a, b, "same seed, same augmentation");
    }

    #[test]
    fn shift_rotates_each_row_and_masks_fill() {
        let cfg = Augment2dConfig {
            max_shift: 0,
            row_masks: 0,
            max_row_mask: 0,
            col_masks: 1,
            max_col_mask: 4,
        };
        let mut x = vec![1.0f32; 8];
        // Masks of width 0..=4 are drawn; across seeds some cells must be filled.
        let mut filled = false;
        for seed in 0..20 {
            let mut y = x.clone();
            augment_2d(
                &mut y,
                [1, 2, 4],
                &cfg,
                0.0,
                &mut StdRng::seed_from_u64(seed),
            );
            // A column mask hits both rows in the same columns.
            assert_eq!(y[..4], y[4..]);
            filled |= y.contains(&0.0);
        }
        assert!(filled);
        x.copy_from_slice(&[0., 1., 2., 3., 4., 5., 6., 7.]);
        let shift = Augment2dConfig {
            max_shift: 3,
            ..Default::default()
        };
        augment_2d(
            &mut x,
            [1, 2, 4],
            &shift,
            0.0,
            &mut StdRng::seed_from_u64(3),
        );
        let mut r0 = x[..4].to_vec();
        r0.sort_by(f32::total_cmp);
        assert_eq!(
            r0,
            vec![0., 1., 2., 3.],
            "a shift only rotates values within a row"
        );
    }
}
