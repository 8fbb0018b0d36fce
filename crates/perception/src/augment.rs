//! Seeded training augmentation for sign images (`[3, h, w]` in `[0, 1]`): a small random
//! affine warp (rotation, scale, shift; never a mirror image, which would turn "turn
//! left" into "turn right"), brightness and contrast, an occasional blur, and, with some
//! probability, one corruption of the suite ([`crate::corrupt`]) at a random severity.

use profundo_core::augment::{Augmenter, bilinear};
use rand::RngExt;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

use crate::corrupt::Corruption;

/// Augmentation settings (`[stages.<train>.augment]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SignAugment {
    /// Largest rotation in degrees, both directions.
    pub max_rotation: f32,
    /// Largest relative zoom in or out (0.1 = 90%..110%).
    pub max_scale: f32,
    /// Largest shift as a fraction of the side, both directions.
    pub max_shift: f32,
    /// Largest brightness offset (on `[0, 1]` values).
    pub brightness: f32,
    /// Largest relative contrast change around the image mean (0.3 = 70%..130%).
    pub contrast: f32,
    /// Probability of a light box blur (a distant or out-of-focus sign).
    pub blur: f64,
    /// Probability of one corruption of `corruptions` at a random severity.
    pub corruption: f64,
    /// The corruptions drawn from (default: all).
    pub corruptions: Vec<Corruption>,
}

impl Default for SignAugment {
    fn default() -> Self {
        Self {
            max_rotation: 12.0,
            max_scale: 0.1,
            max_shift: 0.08,
            brightness: 0.15,
            contrast: 0.3,
            blur: 0.1,
            corruption: 0.5,
            corruptions: Corruption::ALL.to_vec(),
        }
    }
}

impl SignAugment {
    /// No augmentation.
    pub fn off() -> Self {
        Self {
            max_rotation: 0.0,
            max_scale: 0.0,
            max_shift: 0.0,
            brightness: 0.0,
            contrast: 0.0,
            blur: 0.0,
            corruption: 0.0,
            corruptions: Vec::new(),
        }
    }

    /// Checks the settings; the error names the field.
    pub fn check(&self) -> Result<(), (&'static str, String)> {
        for (name, p) in [("blur", self.blur), ("corruption", self.corruption)] {
            if !(0.0..=1.0).contains(&p) {
                return Err((name, format!("is a probability, in [0, 1]; got {p}")));
            }
        }
        for (name, v) in [
            ("max_rotation", self.max_rotation),
            ("max_scale", self.max_scale),
            ("max_shift", self.max_shift),
            ("brightness", self.brightness),
            ("contrast", self.contrast),
        ] {
            if !(v.is_finite() && v >= 0.0) {
                return Err((name, format!("must be a non-negative number, got {v}")));
            }
        }
        if self.max_scale >= 1.0 || self.contrast >= 1.0 {
            return Err(("max_scale", "max_scale and contrast must be below 1".into()));
        }
        if self.corruption > 0.0 && self.corruptions.is_empty() {
            return Err(("corruptions", "is empty but corruption > 0".into()));
        }
        Ok(())
    }

    fn geometric(&self) -> bool {
        self.max_rotation > 0.0 || self.max_scale > 0.0 || self.max_shift > 0.0
    }
}

fn symmetric(rng: &mut StdRng, max: f32) -> f32 {
    if max > 0.0 {
        rng.random_range(-max..=max)
    } else {
        0.0
    }
}

impl Augmenter for SignAugment {
    fn is_active(&self) -> bool {
        self.geometric()
            || self.brightness > 0.0
            || self.contrast > 0.0
            || self.blur > 0.0
            || self.corruption > 0.0
    }

    fn apply(&self, x: &mut [f32], [c, h, w]: [usize; 3], rng: &mut StdRng) {
        // Every number is drawn in a fixed order, whatever is enabled.
        let angle = symmetric(rng, self.max_rotation).to_radians();
        let scale = 1.0 + symmetric(rng, self.max_scale);
        let dx = symmetric(rng, self.max_shift) * w as f32;
        let dy = symmetric(rng, self.max_shift) * h as f32;
        let bright = symmetric(rng, self.brightness);
        let contrast = 1.0 + symmetric(rng, self.contrast);
        let blur = self.blur > 0.0 && rng.random_bool(self.blur);
        let corrupt = self.corruption > 0.0 && rng.random_bool(self.corruption);
        if self.geometric() {
            warp(x, [c, h, w], angle, scale, (dx, dy));
        }
        if bright != 0.0 || contrast != 1.0 {
            let mean = x.iter().sum::<f32>() / x.len().max(1) as f32;
            x.iter_mut()
                .for_each(|v| *v = ((*v - mean) * contrast + mean + bright).clamp(0.0, 1.0));
        }
        if blur {
            box_blur(x, [c, h, w]);
        }
        if corrupt && !self.corruptions.is_empty() {
            let kind = self.corruptions[rng.random_range(0..self.corruptions.len())];
            let severity = rng.random_range(1..=3);
            kind.apply(x, [c, h, w], severity, rng);
        }
    }
}

/// Rotates by `angle` and scales by `scale` about the centre, then shifts, with bilinear
/// sampling and the border replicated.
fn warp(x: &mut [f32], [c, h, w]: [usize; 3], angle: f32, scale: f32, (dx, dy): (f32, f32)) {
    let (cx, cy) = ((w as f32 - 1.0) / 2.0, (h as f32 - 1.0) / 2.0);
    let (sin, cos) = angle.sin_cos();
    let src = x.to_vec();
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for yo in 0..h {
            for xo in 0..w {
                let (u, v) = (xo as f32 - cx - dx, yo as f32 - cy - dy);
                let xs = (cos * u + sin * v) / scale + cx;
                let ys = (-sin * u + cos * v) / scale + cy;
                x[ch * h * w + yo * w + xo] = bilinear(plane, h, w, xs, ys);
            }
        }
    }
}

/// A 3x3 box blur, the border replicated.
fn box_blur(x: &mut [f32], [c, h, w]: [usize; 3]) {
    let src = x.to_vec();
    for ch in 0..c {
        let plane = &src[ch * h * w..(ch + 1) * h * w];
        for y in 0..h {
            for col in 0..w {
                let mut sum = 0.0;
                for (oy, ox) in (-1i64..=1).flat_map(|a| (-1i64..=1).map(move |b| (a, b))) {
                    let yy = (y as i64 + oy).clamp(0, h as i64 - 1) as usize;
                    let xx = (col as i64 + ox).clamp(0, w as i64 - 1) as usize;
                    sum += plane[yy * w + xx];
                }
                x[ch * h * w + y * w + col] = sum / 9.0;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn image() -> Vec<f32> {
        (0..3 * 8 * 8).map(|i| (i % 8) as f32 / 8.0).collect()
    }

    #[test]
    fn augmentation_is_seeded_bounded_and_off_means_unchanged() {
        let cfg = SignAugment::default();
        let run = |cfg: &SignAugment, seed| {
            let mut x = image();
            cfg.apply(&mut x, [3, 8, 8], &mut StdRng::seed_from_u64(seed));
            x
        };
        assert_eq!(run(&cfg, 5), run(&cfg, 5));
        assert_ne!(run(&cfg, 5), run(&cfg, 6));
        for seed in 0..20 {
            assert!(run(&cfg, seed).iter().all(|v| (0.0..=1.0).contains(v)));
        }
        assert!(!SignAugment::off().is_active());
        assert_eq!(run(&SignAugment::off(), 1), image());
    }

    #[test]
    fn an_identity_warp_changes_nothing_and_bad_settings_name_their_field() {
        let mut x = image();
        warp(&mut x, [3, 8, 8], 0.0, 1.0, (0.0, 0.0));
        assert_eq!(x, image());
        let bad = SignAugment {
            corruption: 1.5,
            ..SignAugment::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "corruption");
        let bad = SignAugment {
            corruptions: Vec::new(),
            ..SignAugment::default()
        };
        assert_eq!(bad.check().unwrap_err().0, "corruptions");
    }
}
