//! Seeded image augmentation for training: horizontal flip, random shift, scale and
//! rotation (one affine warp with bilinear sampling), brightness and contrast.

use profundo_core::augment::{Augmenter, bilinear};
use rand::RngExt;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// Augmentation settings. Defaults are mild, as suits aligned face crops.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct FaceAugment {
    /// Mirror left-right with probability 1/2.
    pub flip: bool,
    /// Largest shift, as a fraction of the width / height, both directions.
    pub max_shift: f32,
    /// Largest relative zoom in or out (0.1 = 90%..110%).
    pub max_scale: f32,
    /// Largest rotation in degrees, both directions.
    pub max_rotation: f32,
    /// Largest brightness offset (in units of the normalised intensity).
    pub brightness: f32,
    /// Largest relative contrast change (0.2 = 80%..120%).
    pub contrast: f32,
    /// Side lighting: a left-to-right gain ramp of random direction whose two ends differ
    /// by up to this much (0.8: one side of the face at 0.6 of the light, the other at
    /// 1.4), applied to the image around its typical brightness. 0 (the default) draws
    /// no random number, so existing seeded runs are unchanged.
    pub side_light: f32,
}

impl Default for FaceAugment {
    fn default() -> Self {
        Self {
            flip: true,
            max_shift: 0.06,
            max_scale: 0.08,
            max_rotation: 8.0,
            brightness: 0.2,
            contrast: 0.2,
            side_light: 0.0,
        }
    }
}

impl FaceAugment {
    /// No augmentation at all.
    pub fn off() -> Self {
        Self {
            flip: false,
            max_shift: 0.0,
            max_scale: 0.0,
            max_rotation: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            side_light: 0.0,
        }
    }

    fn geometric(&self) -> bool {
        self.flip || self.max_shift > 0.0 || self.max_scale > 0.0 || self.max_rotation > 0.0
    }
}

fn symmetric(rng: &mut StdRng, max: f32) -> f32 {
    if max > 0.0 {
        rng.random_range(-max..=max)
    } else {
        0.0
    }
}

impl Augmenter for FaceAugment {
    fn is_active(&self) -> bool {
        self.geometric() || self.brightness > 0.0 || self.contrast > 0.0 || self.side_light > 0.0
    }

    fn apply(&self, x: &mut [f32], [channels, h, w]: [usize; 3], rng: &mut StdRng) {
        // Draw every random number in a fixed order, whatever is enabled.
        let flip = self.flip && rng.random_bool(0.5);
        let dx = symmetric(rng, self.max_shift) * w as f32;
        let dy = symmetric(rng, self.max_shift) * h as f32;
        let scale = 1.0 + symmetric(rng, self.max_scale);
        let angle = symmetric(rng, self.max_rotation).to_radians();
        let bright = symmetric(rng, self.brightness);
        let contrast = 1.0 + symmetric(rng, self.contrast);
        if self.geometric() {
            let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
            let (sin, cos) = angle.sin_cos();
            let src = x.to_vec();
            for c in 0..channels {
                let plane = &src[c * h * w..(c + 1) * h * w];
                for yo in 0..h {
                    for xo in 0..w {
                        // Inverse map: output pixel -> source coordinates.
                        let mut u = xo as f32 - cx - dx;
                        let v = yo as f32 - cy - dy;
                        if flip {
                            u = -u;
                        }
                        let xs = (cos * u + sin * v) / scale + cx;
                        let ys = (-sin * u + cos * v) / scale + cy;
                        x[c * h * w + yo * w + xo] = bilinear(plane, h, w, xs, ys);
                    }
                }
            }
        }
        if bright != 0.0 || contrast != 1.0 {
            x.iter_mut().for_each(|v| *v = *v * contrast + bright);
        }
        if self.side_light > 0.0 {
            // Drawn last and only when enabled: the other draws keep their order.
            let swing = symmetric(rng, self.side_light);
            side_light(x, [channels, h, w], swing);
        }
    }
}

/// Standardised face crops hold raw intensities as `(raw - mean) / std`, with the mean
/// about this many standard deviations above black; a gain on the raw light is
/// `x -> (x + OFFSET) * g - OFFSET` on them.
const LIGHT_OFFSET: f32 = 2.5;

/// Multiplies the light by a ramp from `1 - swing / 2` at the left edge to `1 + swing / 2`
/// at the right (negative `swing`: brighter on the left).
fn side_light(x: &mut [f32], [channels, h, w]: [usize; 3], swing: f32) {
    for c in 0..channels {
        for y in 0..h {
            for col in 0..w {
                let t = if w > 1 {
                    col as f32 / (w - 1) as f32
                } else {
                    0.5
                };
                let g = 1.0 + swing * (t - 0.5);
                let v = &mut x[c * h * w + y * w + col];
                *v = (*v + LIGHT_OFFSET) * g - LIGHT_OFFSET;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ramp() -> Vec<f32> {
        (0..4 * 5).map(|i| (i % 5) as f32).collect()
    }

    #[test]
    fn a_pure_flip_mirrors_each_row() {
        let cfg = FaceAugment {
            flip: true,
            ..FaceAugment::off()
        };
        // Find a seed whose first draw flips.
        let mut flipped = None;
        for seed in 0..20 {
            let mut x = ramp();
            cfg.apply(&mut x, [1, 4, 5], &mut StdRng::seed_from_u64(seed));
            if x != ramp() {
                flipped = Some(x);
                break;
            }
        }
        let x = flipped.expect("some seed flips");
        assert_eq!(&x[..5], &[4.0, 3.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn side_light_darkens_one_side_and_brightens_the_other() {
        let lit = FaceAugment {
            side_light: 0.8,
            ..FaceAugment::off()
        };
        let mut x = vec![0.0f32; 5];
        side_light(&mut x, [1, 1, 5], 0.8);
        // Mean-level pixels: 0.6 of the light on the left, 1.4 on the right.
        assert!((x[0] - (2.5 * 0.6 - 2.5)).abs() < 1e-6 && (x[4] - (2.5 * 1.4 - 2.5)).abs() < 1e-6);
        assert!(x[2].abs() < 1e-6);
        assert!(lit.is_active());
    }

    #[test]
    fn augmentation_is_seeded_and_keeps_values_in_range() {
        let cfg = FaceAugment::default();
        let run = |seed| {
            let mut x = ramp();
            cfg.apply(&mut x, [1, 4, 5], &mut StdRng::seed_from_u64(seed));
            x
        };
        assert_eq!(run(3), run(3));
        assert_ne!(run(3), run(4));
        let (lo, hi) = (-0.2 - 4.0 * 0.2, 4.0 * 1.2 + 0.2);
        assert!(run(5).iter().all(|v| (lo..=hi).contains(v)));
    }
}
