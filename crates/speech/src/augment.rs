//! Waveform augmentation: speed (tempo + pitch) perturbation, gain, time shift and additive
//! white noise at a signal-to-noise ratio, all drawn from a seeded RNG.

use rand::{Rng, RngExt};
use serde::{Deserialize, Serialize};

use crate::Result;
use crate::resample::resample;

/// Waveform augmentation settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct WaveAugmentConfig {
    /// Augmented copies made of every training clip.
    pub copies: usize,
    /// Speed factor range `[min, max]` (e.g. `[0.9, 1.1]`); changes tempo and pitch.
    pub speed: Option<[f32; 2]>,
    /// Gain range in dB.
    pub gain_db: Option<[f32; 2]>,
    /// Largest time shift in milliseconds (either direction).
    pub max_shift_ms: f32,
    /// SNR range in dB of added white noise (e.g. `[10, 30]`).
    pub noise_snr_db: Option<[f32; 2]>,
    /// Speed factors of test-time views (e.g. `[0.9, 1.1]`): every original clip also gets
    /// one copy at exactly each factor, nothing else changed. Training never uses them; a
    /// held-out clip's prediction is the mean over the clip and its views, and the apps do
    /// the same (the trained model's manifest lists the views).
    pub test_speeds: Vec<f32>,
}

impl Default for WaveAugmentConfig {
    fn default() -> Self {
        Self {
            copies: 2,
            speed: Some([0.9, 1.1]),
            gain_db: Some([-6.0, 6.0]),
            max_shift_ms: 100.0,
            noise_snr_db: Some([10.0, 40.0]),
            test_speeds: Vec::new(),
        }
    }
}

fn draw<R: Rng>(rng: &mut R, [lo, hi]: [f32; 2]) -> f32 {
    if hi > lo {
        rng.random_range(lo..hi)
    } else {
        lo
    }
}

/// Mean power of a signal.
pub fn power(x: &[f32]) -> f64 {
    x.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>() / x.len().max(1) as f64
}

/// Adds white Gaussian noise so that signal power / noise power = `snr_db`.
pub fn add_noise<R: Rng>(x: &mut [f32], snr_db: f32, rng: &mut R) {
    let p = power(x);
    if p <= 0.0 {
        return;
    }
    let sigma = (p / 10f64.powf(snr_db as f64 / 10.0)).sqrt();
    for v in x.iter_mut() {
        // Box-Muller transform.
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random_range(0.0..1.0);
        let g = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
        *v += (sigma * g) as f32;
    }
}

/// `x` (sampled at `sample_rate` Hz) played `factor` times faster: tempo and pitch change
/// together, as on a tape, and the result is at `sample_rate` again.
pub fn speed_change(x: &[f32], sample_rate: u32, factor: f32) -> Result<Vec<f32>> {
    let from = (sample_rate as f32 * factor).round() as u32;
    resample(x, from, sample_rate)
}

/// The name of the test-time view that plays a clip `factor` times faster (`speed=0.9`).
pub fn speed_view_name(factor: f32) -> String {
    format!("speed={factor}")
}

/// The speed factor of a view named by [`speed_view_name`]; `None` for any other name.
pub fn parse_speed_view(name: &str) -> Option<f32> {
    name.strip_prefix("speed=")?
        .parse::<f32>()
        .ok()
        .filter(|f| f.is_finite() && *f > 0.0)
}

/// One augmented copy of `x` (sampled at `sample_rate` Hz).
pub fn augment_clip<R: Rng>(
    x: &[f32],
    sample_rate: u32,
    cfg: &WaveAugmentConfig,
    rng: &mut R,
) -> Result<Vec<f32>> {
    let mut y = match cfg.speed {
        Some(range) => {
            // Steps of 1% keep the resampling ratio simple.
            let f = (draw(rng, range) * 100.0).round() / 100.0;
            speed_change(x, sample_rate, f)?
        }
        None => x.to_vec(),
    };
    if let Some(range) = cfg.gain_db {
        let g = 10f32.powf(draw(rng, range) / 20.0);
        y.iter_mut().for_each(|v| *v *= g);
    }
    let max_shift = (cfg.max_shift_ms / 1000.0 * sample_rate as f32) as i64;
    if max_shift > 0 {
        let s = rng.random_range(-max_shift..=max_shift);
        if s > 0 {
            let mut z = vec![0.0; s as usize];
            z.extend_from_slice(&y);
            y = z;
        } else if s < 0 {
            let cut = ((-s) as usize).min(y.len() / 4);
            y.drain(..cut);
        }
    }
    if let Some(range) = cfg.noise_snr_db {
        add_noise(&mut y, draw(rng, range), rng);
    }
    for v in y.iter_mut() {
        *v = v.clamp(-1.0, 1.0);
    }
    Ok(y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn noise_reaches_the_requested_snr() {
        let x: Vec<f32> = (0..20000).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        let mut y = x.clone();
        add_noise(&mut y, 20.0, &mut StdRng::seed_from_u64(1));
        let noise: Vec<f32> = y.iter().zip(&x).map(|(a, b)| a - b).collect();
        let snr = 10.0 * (power(&x) / power(&noise)).log10();
        assert!((snr - 20.0).abs() < 0.5, "snr {snr}");
    }

    #[test]
    fn augmentation_is_seeded_and_speed_changes_length() {
        let x: Vec<f32> = (0..8000).map(|i| 0.3 * (i as f32 * 0.1).sin()).collect();
        let cfg = WaveAugmentConfig {
            copies: 1,
            speed: Some([1.2, 1.2]),
            gain_db: None,
            max_shift_ms: 0.0,
            noise_snr_db: None,
            test_speeds: Vec::new(),
        };
        let y = augment_clip(&x, 8000, &cfg, &mut StdRng::seed_from_u64(3)).unwrap();
        assert!((y.len() as f32 - 8000.0 / 1.2).abs() < 10.0, "{}", y.len());
        let cfg = WaveAugmentConfig::default();
        let a = augment_clip(&x, 8000, &cfg, &mut StdRng::seed_from_u64(9)).unwrap();
        let b = augment_clip(&x, 8000, &cfg, &mut StdRng::seed_from_u64(9)).unwrap();
        assert_eq!(a, b);
    }
}
