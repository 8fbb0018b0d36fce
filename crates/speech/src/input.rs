//! From a clip to the model's input: trim silence, compute log-mel or MFCC, normalise per
//! utterance, centre into a fixed number of frames. The same [`FeatureConfig`] is stored in
//! the model manifest, so apps prepare clips exactly as training did.

use serde::{Deserialize, Serialize};

use crate::features::{Matrix, MelConfig, MelExtractor};
use crate::{Result, SpeechError};

/// Complete feature settings, as stored in a model manifest (`features`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureConfig {
    /// The stage kind that defined these features (`speech.log_mel` or `speech.mfcc`).
    pub kind: String,
    /// Spectral analysis settings.
    pub mel: MelConfig,
    /// MFCC coefficients (only for `speech.mfcc`).
    pub n_mfcc: Option<usize>,
    /// Fixed number of frames of the model input (longer clips are centre-cropped, shorter
    /// ones centred and zero-padded).
    pub frames: usize,
    /// Trim leading/trailing audio quieter than the loudest frame by this many dB.
    pub trim_db: Option<f32>,
    /// Per-clip normalisation of the features.
    pub normalize: Normalize,
    /// Pre-emphasis coefficient `a` (`y[n] - a * y[n - 1]` after trimming): lifts the weak
    /// high frequencies of fricatives (the /s/ of "six") against the vowels. `None`: off
    /// (models saved before the setting existed).
    #[serde(default)]
    pub pre_emphasis: Option<f32>,
}

/// Per-clip feature normalisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Raw dB / coefficient values.
    None,
    /// Zero mean, unit variance over the whole clip.
    Utterance,
    /// Zero mean, unit variance per band over time (cepstral mean and variance
    /// normalisation): removes the recording channel's and the speaker's fixed colouring.
    Band,
    /// Per band, with the mean and spread pooled over all clips of the same speaker
    /// (speaker-level CMVN, as Kaldi's `apply-cmvn --utt2spk`): removes the speaker's
    /// colouring but keeps each word's own average spectrum (the vowel of "two" against
    /// "four"). The statistics come from unlabelled clips of the speaker; a clip given
    /// alone is normalised with its own statistics, which is [`Normalize::Band`].
    Speaker,
}

/// Per-band mean and standard deviation pooled over frames of one or more clips.
#[derive(Debug, Clone, PartialEq)]
pub struct BandStats {
    /// Mean of each band.
    pub mean: Vec<f64>,
    /// Standard deviation of each band (at least `1e-5`).
    pub std: Vec<f64>,
}

impl BandStats {
    /// Pools every frame of `mats`; `None` when they hold no frame or disagree on the
    /// number of bands.
    pub fn pool<'a>(mats: impl IntoIterator<Item = &'a Matrix>) -> Option<Self> {
        let mut rows = None;
        let (mut sum, mut sq, mut n) = (Vec::new(), Vec::new(), 0usize);
        for m in mats {
            if *rows.get_or_insert(m.rows) != m.rows {
                return None;
            }
            sum.resize(m.rows, 0.0f64);
            sq.resize(m.rows, 0.0f64);
            for (r, band) in m.data.chunks(m.cols.max(1)).enumerate().take(m.rows) {
                for &v in band {
                    sum[r] += v as f64;
                    sq[r] += v as f64 * v as f64;
                }
            }
            n += m.cols;
        }
        if n == 0 {
            return None;
        }
        let n = n as f64;
        let mean: Vec<f64> = sum.iter().map(|s| s / n).collect();
        let std = sq
            .iter()
            .zip(&mean)
            .map(|(q, m)| (q / n - m * m).max(0.0).sqrt().max(1e-5))
            .collect();
        Some(Self { mean, std })
    }

    /// Subtracts each band's mean and divides by its spread.
    pub fn apply(&self, m: &mut Matrix) {
        for (r, band) in m.data.chunks_mut(m.cols.max(1)).enumerate().take(m.rows) {
            let (mean, std) = (self.mean[r], self.std[r]);
            for v in band {
                *v = ((*v as f64 - mean) / std) as f32;
            }
        }
    }
}

/// Turns clips into fixed-size model inputs.
#[derive(Clone)]
pub struct Featurizer {
    cfg: FeatureConfig,
    extractor: MelExtractor,
}

impl Featurizer {
    /// Prepares the extractor; checks the settings.
    pub fn new(cfg: &FeatureConfig) -> Result<Self> {
        if cfg.frames == 0 {
            return Err(SpeechError::Config("frames must be positive".into()));
        }
        if cfg.kind == "speech.mfcc" && cfg.n_mfcc.is_none_or(|n| n == 0 || n > cfg.mel.n_mels) {
            return Err(SpeechError::Config(format!(
                "n_mfcc must be in 1..={}",
                cfg.mel.n_mels
            )));
        }
        Ok(Self {
            cfg: cfg.clone(),
            extractor: MelExtractor::new(&cfg.mel)?,
        })
    }

    /// The settings.
    pub fn config(&self) -> &FeatureConfig {
        &self.cfg
    }

    /// Model input shape `[1, rows, frames]`.
    pub fn shape(&self) -> [usize; 3] {
        let rows = if self.cfg.kind == "speech.mfcc" {
            self.cfg.n_mfcc.unwrap_or(13)
        } else {
            self.cfg.mel.n_mels
        };
        [1, rows, self.cfg.frames]
    }

    /// Number of samples the fixed input covers.
    pub fn window_samples(&self) -> usize {
        (self.cfg.frames.saturating_sub(1)) * self.cfg.mel.hop_length
    }

    /// One clip's features before normalisation (trimmed, pre-emphasised).
    pub fn matrix(&self, samples: &[f32]) -> Matrix {
        let y = match self.cfg.trim_db {
            Some(db) => trim_silence(samples, db, self.cfg.mel.n_fft, self.cfg.mel.hop_length),
            None => samples,
        };
        let emphasised;
        let y = match self.cfg.pre_emphasis {
            Some(a) => {
                emphasised = pre_emphasis(y, a);
                &emphasised[..]
            }
            None => y,
        };
        if self.cfg.kind == "speech.mfcc" {
            self.extractor.mfcc(y, self.cfg.n_mfcc.unwrap_or(13))
        } else {
            self.extractor.log_mel(y)
        }
    }

    /// Normalises a matrix and fits it to the model's frames. `speaker`: the speaker's
    /// pooled statistics, used by [`Normalize::Speaker`] (without them the clip's own).
    pub fn finish(&self, mut m: Matrix, speaker: Option<&BandStats>) -> Vec<f32> {
        match (self.cfg.normalize, speaker) {
            (Normalize::None, _) => {}
            (Normalize::Utterance, _) => normalize(&mut m.data),
            (Normalize::Speaker, Some(s)) => s.apply(&mut m),
            (Normalize::Band | Normalize::Speaker, _) => {
                m.data.chunks_mut(m.cols.max(1)).for_each(normalize)
            }
        }
        fit_frames(&m.data, m.rows, m.cols, self.cfg.frames)
    }

    /// Model input for one clip at the configured sample rate: `rows * frames` values.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        self.finish(self.matrix(samples), None)
    }

    /// Model inputs for several clips of one speaker: with [`Normalize::Speaker`] they are
    /// normalised with statistics pooled over all of them; otherwise as [`Self::compute`].
    pub fn compute_same_speaker(&self, clips: &[&[f32]]) -> Vec<Vec<f32>> {
        if self.cfg.normalize != Normalize::Speaker {
            return clips.iter().map(|c| self.compute(c)).collect();
        }
        let mats: Vec<Matrix> = clips.iter().map(|c| self.matrix(c)).collect();
        let stats = BandStats::pool(&mats);
        mats.into_iter()
            .map(|m| self.finish(m, stats.as_ref()))
            .collect()
    }
}

/// `y[n] - a * y[n - 1]`, with `y[-1] = 0`.
pub fn pre_emphasis(y: &[f32], a: f32) -> Vec<f32> {
    std::iter::once(0.0)
        .chain(y.iter().copied())
        .zip(y)
        .map(|(prev, &x)| x - a * prev)
        .collect()
}

/// The part of `y` between the first and last frame whose RMS is within `top_db` of the
/// loudest frame (librosa `effects.trim` semantics); the whole clip if all is quiet.
pub fn trim_silence(y: &[f32], top_db: f32, frame: usize, hop: usize) -> &[f32] {
    if y.len() < frame {
        return y;
    }
    let n = 1 + (y.len() - frame) / hop;
    let rms: Vec<f32> = (0..n)
        .map(|t| {
            let s = &y[t * hop..t * hop + frame];
            (s.iter().map(|v| v * v).sum::<f32>() / frame as f32).sqrt()
        })
        .collect();
    let max = rms.iter().copied().fold(0.0f32, f32::max);
    if max <= 0.0 {
        return y;
    }
    let thresh = max * 10f32.powf(-top_db / 20.0);
    let first = rms.iter().position(|&r| r > thresh).unwrap_or(0);
    let last = rms.iter().rposition(|&r| r > thresh).unwrap_or(n - 1);
    let start = first * hop;
    let end = (last * hop + frame).min(y.len());
    &y[start..end]
}

/// Zero mean, unit variance over all values (no-op for constant input).
pub fn normalize(x: &mut [f32]) {
    let n = x.len().max(1) as f64;
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n;
    let std = var.sqrt().max(1e-5);
    for v in x.iter_mut() {
        *v = ((*v as f64 - mean) / std) as f32;
    }
}

/// Centre-crops or centre-pads (with zeros) a `rows` x `cols` matrix to `frames` columns.
pub fn fit_frames(x: &[f32], rows: usize, cols: usize, frames: usize) -> Vec<f32> {
    let mut out = vec![0f32; rows * frames];
    if cols >= frames {
        let off = (cols - frames) / 2;
        for r in 0..rows {
            out[r * frames..(r + 1) * frames]
                .copy_from_slice(&x[r * cols + off..r * cols + off + frames]);
        }
    } else {
        let off = (frames - cols) / 2;
        for r in 0..rows {
            out[r * frames + off..r * frames + off + cols]
                .copy_from_slice(&x[r * cols..(r + 1) * cols]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_frames_centres() {
        let x = [1., 2., 3., 4., 5., 6.]; // 2 rows x 3 cols
        assert_eq!(
            fit_frames(&x, 2, 3, 5),
            vec![0., 1., 2., 3., 0., 0., 4., 5., 6., 0.]
        );
        assert_eq!(fit_frames(&x, 2, 3, 1), vec![2., 5.]);
    }

    #[test]
    fn trim_drops_leading_and_trailing_silence() {
        let mut y = vec![0.0f32; 4000];
        for (i, v) in y.iter_mut().enumerate().take(2600).skip(1000) {
            *v = (i as f32 * 0.3).sin();
        }
        let t = trim_silence(&y, 40.0, 256, 64);
        assert!(t.len() < 2200 && t.len() >= 1600, "{}", t.len());
    }

    #[test]
    fn pooled_band_stats_match_hand_computed_values() {
        // Band 0 holds 1, 3 then 5, 7; band 1 holds 2, 2 then 2, 2.
        let a = Matrix {
            rows: 2,
            cols: 2,
            data: vec![1., 3., 2., 2.],
        };
        let b = Matrix {
            rows: 2,
            cols: 2,
            data: vec![5., 7., 2., 2.],
        };
        let s = BandStats::pool([&a, &b]).unwrap();
        assert_eq!(s.mean, vec![4.0, 2.0]);
        assert!((s.std[0] - 5f64.sqrt()).abs() < 1e-12, "{:?}", s.std);
        assert_eq!(s.std[1], 1e-5, "a constant band keeps the floor");
        let mut c = a.clone();
        s.apply(&mut c);
        assert!((c.data[0] + 3.0 / 5f64.sqrt() as f32).abs() < 1e-6);
        assert_eq!(c.data[2], 0.0);
        assert!(BandStats::pool([] as [&Matrix; 0]).is_none());
        let odd = Matrix {
            rows: 3,
            cols: 1,
            data: vec![0.; 3],
        };
        assert!(BandStats::pool([&a, &odd]).is_none());
    }

    #[test]
    fn speaker_normalisation_keeps_what_tells_clips_apart_and_alone_equals_band() {
        let mut cfg: FeatureConfig = serde_json::from_value(serde_json::json!({
            "kind": "speech.mfcc",
            "mel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 128, "n_mels": 40,
                    "f_min": 0.0, "f_max": null, "top_db": 80.0},
            "n_mfcc": 13, "frames": 48, "trim_db": null, "normalize": "band"
        }))
        .unwrap();
        let tone = |hz: f32| -> Vec<f32> {
            (0..4000)
                .map(|i| 0.3 * (i as f32 * hz * std::f32::consts::TAU / 8000.0).sin())
                .collect()
        };
        let (low, high) = (tone(300.0), tone(1800.0));
        let band = Featurizer::new(&cfg).unwrap();
        cfg.normalize = Normalize::Speaker;
        let speaker = Featurizer::new(&cfg).unwrap();
        // Alone, a clip is normalised with its own statistics: exactly `band`.
        assert_eq!(speaker.compute(&low), band.compute(&low));
        // Per clip, a steady tone's bands are flat after normalisation, so the two tones
        // look alike; pooled over both clips, each keeps its own spectrum.
        let mean_c1 = |x: &[f32]| x[48..96].iter().sum::<f32>() / 48.0;
        let pooled = speaker.compute_same_speaker(&[&low, &high]);
        let apart = (mean_c1(&pooled[0]) - mean_c1(&pooled[1])).abs();
        let alone = (mean_c1(&band.compute(&low)) - mean_c1(&band.compute(&high))).abs();
        assert!(
            apart > 0.5 && alone < 0.1,
            "pooled {apart}, per clip {alone}"
        );
        // Other settings ignore the pooling.
        assert_eq!(
            band.compute_same_speaker(&[&low, &high]),
            vec![band.compute(&low), band.compute(&high)]
        );
    }

    #[test]
    fn pre_emphasis_subtracts_the_scaled_previous_sample() {
        assert_eq!(pre_emphasis(&[1.0, 2.0, 4.0], 0.5), [1.0, 1.5, 3.0]);
        assert!(pre_emphasis(&[], 0.97).is_empty());
    }

    #[test]
    fn settings_without_pre_emphasis_load_without_it_and_new_ones_apply_it() {
        let mut features = serde_json::json!({
            "kind": "speech.mfcc",
            "mel": {"sample_rate": 8000, "n_fft": 256, "hop_length": 128, "n_mels": 40,
                    "f_min": 0.0, "f_max": null, "top_db": 80.0},
            "n_mfcc": 13, "frames": 48, "trim_db": 40.0, "normalize": "band"
        });
        let old = Featurizer::new(&serde_json::from_value(features.clone()).unwrap()).unwrap();
        assert_eq!(old.config().pre_emphasis, None);
        features["pre_emphasis"] = serde_json::json!(0.97);
        let new = Featurizer::new(&serde_json::from_value(features.clone()).unwrap()).unwrap();
        assert_eq!(new.config().pre_emphasis, Some(0.97));
        let clip: Vec<f32> = (0..4000)
            .map(|i| (i as f32 * 0.05).sin() + (i as f32 * 2.9).sin() * 0.1)
            .collect();
        assert_ne!(
            old.compute(&clip),
            new.compute(&clip),
            "pre-emphasis changes the features"
        );
    }

    #[test]
    fn normalize_gives_zero_mean_unit_variance() {
        let mut x = vec![1.0, 2.0, 3.0, 4.0];
        normalize(&mut x);
        let mean: f32 = x.iter().sum::<f32>() / 4.0;
        let var: f32 = x.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 4.0;
        assert!(mean.abs() < 1e-6 && (var - 1.0).abs() < 1e-5);
    }
}
