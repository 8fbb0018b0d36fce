//! The corruption suite: what weather, dirt and a poor camera do to a sign, each at three
//! severities, seeded and deterministic (the ImageNet-C way, Hendrycks & Dietterich 2019,
//! with the corruptions a road sign meets): snow (flakes and a white cover over part of
//! the sign), fog, frost and dirt smudges, partial occlusion (a patch over up to 30% of
//! it), motion blur, Gaussian noise and low light.
//!
//! Every function works on one image of `[3, height, width]` RGB values in `[0, 1]`, in
//! place, and draws its randomness from the generator it is given: the same generator
//! state gives the same corrupted image.

use std::fmt;

use profundo_core::augment::bilinear;
use rand::RngExt;
use rand::rngs::StdRng;
use serde::{Deserialize, Serialize};

/// One kind of corruption.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Corruption {
    /// Snowflakes and a white cover over part of the sign (snow stuck to it).
    Snow,
    /// Uneven, low-contrast haze.
    Fog,
    /// Frost and dirt smudges: a few soft, semi-opaque blotches.
    Smudge,
    /// A patch of solid colour over 10 / 20 / 30% of the image (a sticker, a branch).
    Occlusion,
    /// Blur along a line of random direction (a moving car).
    MotionBlur,
    /// Additive Gaussian sensor noise.
    Noise,
    /// A dark exposure: less light, a steeper curve, more noise.
    LowLight,
}

impl Corruption {
    /// Every corruption, in report order.
    pub const ALL: [Corruption; 7] = [
        Corruption::Snow,
        Corruption::Fog,
        Corruption::Smudge,
        Corruption::Occlusion,
        Corruption::MotionBlur,
        Corruption::Noise,
        Corruption::LowLight,
    ];

    /// The name used in parameters and reports.
    pub fn name(self) -> &'static str {
        match self {
            Corruption::Snow => "snow",
            Corruption::Fog => "fog",
            Corruption::Smudge => "smudge",
            Corruption::Occlusion => "occlusion",
            Corruption::MotionBlur => "motion_blur",
            Corruption::Noise => "noise",
            Corruption::LowLight => "low_light",
        }
    }

    /// Corrupts `x` (`[3, h, w]`, values in `[0, 1]`) at `severity` 1 (mild) to 3
    /// (strong); the result stays in `[0, 1]`.
    pub fn apply(self, x: &mut [f32], [c, h, w]: [usize; 3], severity: usize, rng: &mut StdRng) {
        debug_assert_eq!(x.len(), c * h * w);
        let s = severity.clamp(1, 3) - 1;
        let shape = Shape { c, h, w };
        match self {
            Corruption::Snow => snow(x, shape, s, rng),
            Corruption::Fog => fog(x, shape, [0.35, 0.5, 0.65][s], rng),
            Corruption::Smudge => smudge(x, shape, [2, 4, 6][s], rng),
            Corruption::Occlusion => occlude(x, shape, [0.1, 0.2, 0.3][s], rng),
            Corruption::MotionBlur => {
                let len = [3.0, 5.0, 8.0][s] * w as f32 / 32.0;
                motion_blur(x, shape, len, rng)
            }
            Corruption::Noise => noise(x, [0.05, 0.1, 0.16][s], rng),
            Corruption::LowLight => low_light(
                x,
                [0.45, 0.3, 0.18][s],
                [1.2, 1.4, 1.6][s],
                [0.01, 0.02, 0.03][s],
                rng,
            ),
        }
        x.iter_mut().for_each(|v| *v = v.clamp(0.0, 1.0));
    }
}

impl fmt::Display for Corruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Clone, Copy)]
struct Shape {
    c: usize,
    h: usize,
    w: usize,
}

impl Shape {
    fn plane(&self) -> usize {
        self.h * self.w
    }
}

/// A standard normal draw (Box-Muller).
fn gauss(rng: &mut StdRng) -> f32 {
    let u1: f32 = rng.random_range(f32::EPSILON..1.0);
    let u2: f32 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
}

/// A smooth random field over the image, values in `[0, 1]`: a coarse `cells x cells`
/// grid of uniform draws, interpolated bilinearly.
fn smooth_field(shape: Shape, cells: usize, rng: &mut StdRng) -> Vec<f32> {
    let g: Vec<f32> = (0..cells * cells).map(|_| rng.random()).collect();
    let (sy, sx) = (
        (cells - 1) as f32 / (shape.h.max(2) - 1) as f32,
        (cells - 1) as f32 / (shape.w.max(2) - 1) as f32,
    );
    let mut out = Vec::with_capacity(shape.plane());
    for y in 0..shape.h {
        for x in 0..shape.w {
            out.push(bilinear(&g, cells, cells, x as f32 * sx, y as f32 * sy));
        }
    }
    out
}

/// Blends `colour` over every channel with the per-pixel weights `alpha`.
fn blend(x: &mut [f32], shape: Shape, alpha: &[f32], colour: [f32; 3]) {
    for ch in 0..shape.c {
        let col = colour[ch.min(2)];
        let plane = &mut x[ch * shape.plane()..(ch + 1) * shape.plane()];
        for (v, a) in plane.iter_mut().zip(alpha) {
            *v = *v * (1.0 - a) + col * a;
        }
    }
}

fn noise(x: &mut [f32], sigma: f32, rng: &mut StdRng) {
    x.iter_mut().for_each(|v| *v += sigma * gauss(rng));
}

fn low_light(x: &mut [f32], gain: f32, gamma: f32, sigma: f32, rng: &mut StdRng) {
    x.iter_mut()
        .for_each(|v| *v = gain * v.max(0.0).powf(gamma) + sigma * gauss(rng));
}

fn fog(x: &mut [f32], shape: Shape, density: f32, rng: &mut StdRng) {
    let field = smooth_field(shape, 4, rng);
    let alpha: Vec<f32> = field.iter().map(|f| density * (0.7 + 0.6 * f)).collect();
    let grey = rng.random_range(0.75..0.9);
    blend(x, shape, &alpha, [grey, grey, grey * 1.02]);
}

/// Soft-edged ellipse weights: 1 inside, falling to 0 over `edge` of the radius.
fn ellipse(shape: Shape, centre: (f32, f32), radii: (f32, f32), angle: f32, edge: f32) -> Vec<f32> {
    let (sin, cos) = angle.sin_cos();
    let mut out = Vec::with_capacity(shape.plane());
    for y in 0..shape.h {
        for x in 0..shape.w {
            let (dx, dy) = (x as f32 - centre.0, y as f32 - centre.1);
            let (u, v) = (cos * dx + sin * dy, -sin * dx + cos * dy);
            let r = ((u / radii.0).powi(2) + (v / radii.1).powi(2)).sqrt();
            out.push(((1.0 - r) / edge + 1.0).clamp(0.0, 1.0));
        }
    }
    out
}

fn smudge(x: &mut [f32], shape: Shape, count: usize, rng: &mut StdRng) {
    let side = shape.w.min(shape.h) as f32;
    for _ in 0..count {
        let centre = (
            rng.random_range(0.0..shape.w as f32),
            rng.random_range(0.0..shape.h as f32),
        );
        let radii = (
            rng.random_range(0.08..0.22) * side,
            rng.random_range(0.06..0.16) * side,
        );
        let angle = rng.random_range(0.0..std::f32::consts::PI);
        let opacity = rng.random_range(0.45..0.8);
        // Frost (white-blue) or dirt (brown-grey).
        let colour = if rng.random_bool(0.5) {
            [0.86, 0.9, 0.94]
        } else {
            let d = rng.random_range(0.2..0.4);
            [d * 1.15, d, d * 0.8]
        };
        let alpha: Vec<f32> = ellipse(shape, centre, radii, angle, 0.5)
            .into_iter()
            .map(|a| a * opacity)
            .collect();
        blend(x, shape, &alpha, colour);
    }
}

fn occlude(x: &mut [f32], shape: Shape, fraction: f32, rng: &mut StdRng) {
    let area = fraction * (shape.h * shape.w) as f32;
    let aspect = rng.random_range(0.5f32..2.0);
    let pw = ((area * aspect).sqrt().round() as usize).clamp(1, shape.w);
    let ph = ((area / pw as f32).round() as usize).clamp(1, shape.h);
    let x0 = rng.random_range(0..=shape.w - pw);
    let y0 = rng.random_range(0..=shape.h - ph);
    let colour: [f32; 3] = [rng.random(), rng.random(), rng.random()];
    for ch in 0..shape.c {
        for y in y0..y0 + ph {
            for col in x0..x0 + pw {
                x[ch * shape.plane() + y * shape.w + col] = colour[ch.min(2)];
            }
        }
    }
}

fn motion_blur(x: &mut [f32], shape: Shape, length: f32, rng: &mut StdRng) {
    let angle = rng.random_range(0.0..std::f32::consts::PI);
    let taps = (length.ceil() as usize).max(2);
    let (dx, dy) = (angle.cos() * length, angle.sin() * length);
    let src = x.to_vec();
    for ch in 0..shape.c {
        let plane = &src[ch * shape.plane()..(ch + 1) * shape.plane()];
        for y in 0..shape.h {
            for col in 0..shape.w {
                let mut sum = 0.0;
                for k in 0..taps {
                    let t = k as f32 / (taps - 1) as f32 - 0.5;
                    sum += bilinear(
                        plane,
                        shape.h,
                        shape.w,
                        col as f32 + t * dx,
                        y as f32 + t * dy,
                    );
                }
                x[ch * shape.plane() + y * shape.w + col] = sum / taps as f32;
            }
        }
    }
}

/// Snow stuck to the sign (a white cover, from a random side, over 10 / 20 / 30% of the
/// image, with a wavy soft edge), falling flakes, and the light a snowy day scatters.
fn snow(x: &mut [f32], shape: Shape, s: usize, rng: &mut StdRng) {
    let (h, w) = (shape.h as f32, shape.w as f32);
    // The scattered light: a little contrast lost towards white.
    let haze = [0.1, 0.15, 0.2][s];
    x.iter_mut().for_each(|v| *v = *v * (1.0 - haze) + haze);
    // The cover: pixels within `depth` of one side (top most often), the edge waving.
    let cover = [0.1, 0.2, 0.3][s];
    let side = rng.random_range(0..6usize); // 0..=2: top, 3: left, 4: right, 5: bottom
    let phase = rng.random_range(0.0..std::f32::consts::TAU);
    let waves = rng.random_range(1.0..3.0f32);
    let mut alpha = Vec::with_capacity(shape.plane());
    for y in 0..shape.h {
        for col in 0..shape.w {
            let (u, along) = match side {
                3 => (col as f32 / w, y as f32 / h),
                4 => (1.0 - (col as f32 + 1.0) / w, y as f32 / h),
                5 => (1.0 - (y as f32 + 1.0) / h, col as f32 / w),
                _ => (y as f32 / h, col as f32 / w),
            };
            let edge = cover * (1.0 + 0.35 * (waves * std::f32::consts::TAU * along + phase).sin());
            alpha.push(((edge - u) / 0.06 + 0.5).clamp(0.0, 1.0));
        }
    }
    let white = rng.random_range(0.9..1.0);
    blend(x, shape, &alpha, [white, white, white]);
    // Flakes: small soft discs.
    let flakes = ([12, 24, 40][s] as f32 * (h * w) / 1024.0).round() as usize;
    for _ in 0..flakes {
        let centre = (rng.random_range(0.0..w), rng.random_range(0.0..h));
        let r = rng.random_range(0.6..1.6) * w / 32.0;
        let opacity = rng.random_range(0.5..0.95);
        let a: Vec<f32> = ellipse(shape, centre, (r, r), 0.0, 0.8)
            .into_iter()
            .map(|a| a * opacity)
            .collect();
        blend(x, shape, &a, [0.97, 0.97, 0.97]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn sign() -> Vec<f32> {
        // A red disc with a white centre on grey: like a "no entry" sign.
        let (h, w) = (32, 32);
        let mut x = vec![0.5f32; 3 * h * w];
        for y in 0..h {
            for c in 0..w {
                let r = ((y as f32 - 15.5).powi(2) + (c as f32 - 15.5).powi(2)).sqrt();
                let rgb = if r < 8.0 {
                    [0.95, 0.95, 0.95]
                } else if r < 14.0 {
                    [0.8, 0.1, 0.1]
                } else {
                    [0.5, 0.5, 0.5]
                };
                for ch in 0..3 {
                    x[ch * h * w + y * w + c] = rgb[ch];
                }
            }
        }
        x
    }

    fn mean_abs_change(a: &[f32], b: &[f32]) -> f32 {
        a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
    }

    #[test]
    fn every_corruption_is_seeded_bounded_and_grows_with_severity() {
        let clean = sign();
        for c in Corruption::ALL {
            let mut changes = Vec::new();
            for severity in 1..=3 {
                // Averaged over draws: one draw of a random patch may miss the sign.
                let mut total = 0.0;
                for seed in 0..8 {
                    let run = |seed| {
                        let mut x = clean.clone();
                        c.apply(
                            &mut x,
                            [3, 32, 32],
                            severity,
                            &mut StdRng::seed_from_u64(seed),
                        );
                        x
                    };
                    let a = run(seed);
                    assert_eq!(a, run(seed), "{c} is not deterministic");
                    assert!(
                        a.iter().all(|v| (0.0..=1.0).contains(v)),
                        "{c} leaves [0, 1]"
                    );
                    total += mean_abs_change(&clean, &a);
                }
                changes.push(total / 8.0);
            }
            assert!(
                changes[0] > 0.005,
                "{c} severity 1 changes too little: {changes:?}"
            );
            assert!(
                changes[0] < changes[1] && changes[1] < changes[2],
                "{c} does not grow with severity: {changes:?}"
            );
        }
    }

    #[test]
    fn occlusion_covers_the_stated_fraction_and_snow_whitens_one_side() {
        let clean = sign();
        let mut x = clean.clone();
        Corruption::Occlusion.apply(&mut x, [3, 32, 32], 3, &mut StdRng::seed_from_u64(1));
        // Pixels changed in the red plane: at most the patch (30% of 1024, rounded).
        let changed = (0..1024).filter(|&i| x[i] != clean[i]).count();
        assert!(changed <= 330, "{changed}");
        let mut x = clean.clone();
        Corruption::Snow.apply(&mut x, [3, 32, 32], 3, &mut StdRng::seed_from_u64(2));
        let mean: f32 = x.iter().sum::<f32>() / x.len() as f32;
        let clean_mean: f32 = clean.iter().sum::<f32>() / clean.len() as f32;
        assert!(
            mean > clean_mean + 0.05,
            "snow brightens: {mean} vs {clean_mean}"
        );
    }
}
