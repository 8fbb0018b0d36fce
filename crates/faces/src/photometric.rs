//! Photometric normalisation against lighting: Tan & Triggs, "Enhanced local texture
//! feature sets for face recognition under difficult lighting conditions" (IEEE TIP 2010).
//! Gamma correction compresses the shading's dynamic range, a difference of Gaussians
//! removes what is left of the slowly varying illumination (and the finest noise), and a
//! two-stage contrast equalisation with a soft cap keeps a few extreme pixels (a cast
//! shadow's edge, a highlight) from setting the scale. Selected with
//! `normalize = "tan_triggs"` in a face pipeline's preprocessing.

/// Gamma applied to intensities in [0, 1] (the paper's 0.2).
pub const GAMMA: f32 = 0.2;
/// Inner Gaussian of the difference of Gaussians, in pixels (the paper's 1).
pub const SIGMA_INNER: f32 = 1.0;
/// Outer Gaussian, in pixels (the paper's 2).
pub const SIGMA_OUTER: f32 = 2.0;
/// Exponent of the robust means of the contrast equalisation (the paper's 0.1).
pub const ALPHA: f64 = 0.1;
/// Cap of the second equalisation and scale of the final tanh (the paper's 10).
pub const TAU: f32 = 10.0;

/// Normalises a `height x width` grey image with values in [0, 1] in place. The result
/// lies in (-[`TAU`], [`TAU`]); a flat image becomes all zeros.
pub fn tan_triggs(v: &mut [f32], height: usize, width: usize) {
    debug_assert_eq!(v.len(), height * width);
    for x in v.iter_mut() {
        *x = x.max(0.0).powf(GAMMA);
    }
    let inner = gaussian_blur(v, height, width, SIGMA_INNER);
    let outer = gaussian_blur(v, height, width, SIGMA_OUTER);
    for ((x, a), b) in v.iter_mut().zip(inner).zip(outer) {
        *x = a - b;
    }
    equalise(v, f32::INFINITY);
    equalise(v, TAU);
    for x in v.iter_mut() {
        *x = TAU * (*x / TAU).tanh();
    }
}

/// Divides by `mean(min(|x|, cap)^ALPHA)^(1/ALPHA)`, leaving an image without contrast
/// (band-pass values of rounding size, under 1e-6) as it is rather than blowing up its
/// rounding errors.
fn equalise(v: &mut [f32], cap: f32) {
    let n = v.len().max(1) as f64;
    let mean = v
        .iter()
        .map(|x| (x.abs().min(cap) as f64).powf(ALPHA))
        .sum::<f64>()
        / n;
    let scale = mean.powf(1.0 / ALPHA);
    if scale > 1e-6 {
        let inv = (1.0 / scale) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

/// A separable Gaussian blur with the border pixels repeated outwards.
fn gaussian_blur(v: &[f32], height: usize, width: usize, sigma: f32) -> Vec<f32> {
    let radius = (3.0 * sigma).ceil() as isize;
    let mut kernel: Vec<f32> = (-radius..=radius)
        .map(|i| (-((i * i) as f32) / (2.0 * sigma * sigma)).exp())
        .collect();
    let total: f32 = kernel.iter().sum();
    kernel.iter_mut().for_each(|k| *k /= total);
    let at = |i: isize, n: usize| i.clamp(0, n as isize - 1) as usize;
    // One 1-D pass along rows (`horizontal`) or columns.
    let pass = |src: &[f32], horizontal: bool| -> Vec<f32> {
        (0..src.len())
            .map(|i| {
                let (y, x) = ((i / width) as isize, (i % width) as isize);
                kernel
                    .iter()
                    .enumerate()
                    .map(|(k, w)| {
                        let d = k as isize - radius;
                        let j = if horizontal {
                            y as usize * width + at(x + d, width)
                        } else {
                            at(y + d, height) * width + x as usize
                        };
                        w * src[j]
                    })
                    .sum()
            })
            .collect()
    };
    pass(&pass(v, true), false)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A seeded textured "face" of `h x w` in [0.1, 0.9].
    fn texture(h: usize, w: usize) -> Vec<f32> {
        (0..h * w)
            .map(|i| {
                let (y, x) = ((i / w) as f32, (i % w) as f32);
                0.5 + 0.2 * (0.9 * x).sin() * (0.7 * y).cos() + 0.15 * (0.37 * (x + 2.0 * y)).sin()
            })
            .collect()
    }

    fn correlation(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len() as f32;
        let (ma, mb) = (a.iter().sum::<f32>() / n, b.iter().sum::<f32>() / n);
        let cov: f32 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
        let va: f32 = a.iter().map(|x| (x - ma).powi(2)).sum();
        let vb: f32 = b.iter().map(|y| (y - mb).powi(2)).sum();
        cov / (va * vb).sqrt()
    }

    #[test]
    fn a_lighting_ramp_across_the_face_is_mostly_removed() {
        let (h, w) = (56, 46);
        let face = texture(h, w);
        // Lit from the left: 1.15 down to 0.35 across the face, as in `scenes`.
        let lit: Vec<f32> = face
            .iter()
            .enumerate()
            .map(|(i, v)| v * (1.15 - 0.8 * (i % w) as f32 / (w - 1) as f32))
            .collect();
        let before = correlation(&face, &lit);
        let (mut a, mut b) = (face.clone(), lit);
        tan_triggs(&mut a, h, w);
        tan_triggs(&mut b, h, w);
        let after = correlation(&a, &b);
        assert!(after > 0.95, "after {after}");
        assert!(after > before, "before {before}, after {after}");
        assert!(a.iter().all(|x| x.abs() < TAU && x.is_finite()));
    }

    #[test]
    fn a_flat_image_becomes_zeros_and_tiny_images_work() {
        let mut flat = vec![0.4; 12 * 10];
        tan_triggs(&mut flat, 12, 10);
        assert!(flat.iter().all(|x| x.abs() < 1e-5), "{flat:?}");
        let mut tiny = texture(8, 8);
        tan_triggs(&mut tiny, 8, 8);
        assert!(tiny.iter().all(|x| x.is_finite()));
        let mut black = vec![0.0; 64];
        tan_triggs(&mut black, 8, 8);
        assert!(black.iter().all(|x| *x == 0.0));
    }
}
