//! The speech apps: recognise clips and spot spoken words in a long recording.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use profundo_core::backend::{self, BackendKind};
use profundo_core::manifest::{Manifest, load_conv_ensemble, resolve_model_dir};
use profundo_core::metrics::top_k_indices;
use profundo_core::model::ConvEnsemble;
use serde::Serialize;

use crate::input::{Featurizer, Normalize};
use crate::resample::resample;
use crate::wav::{Audio, read_wav};
use crate::{Result, SpeechError};

/// A loaded speech classifier with its feature pipeline.
pub struct Recognizer {
    model: ConvEnsemble,
    manifest: Manifest,
    featurizer: Featurizer,
    device: Device,
}

/// One recognised clip.
#[derive(Debug, Clone, Serialize)]
pub struct Recognition {
    /// The clip.
    pub path: String,
    /// Best label.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// The three best labels with probabilities.
    pub top: Vec<(String, f32)>,
}

impl Recognizer {
    /// Loads a model from a model directory, a run directory or `runs/<pipeline>` onto
    /// `backend`'s `device` (`"cpu"`, or `"cuda:N"` with tch).
    pub fn load(path: &Path, backend: BackendKind, device: &str) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let device = backend::device(backend, device)?;
        let (model, manifest) = load_conv_ensemble(&dir, &device)?;
        let featurizer = Featurizer::from_manifest(&manifest.features)
            .map_err(|e| SpeechError::Config(format!("{}: {e}", dir.display())))?;
        Ok(Self {
            model,
            manifest,
            featurizer,
            device,
        })
    }

    /// The model's manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The feature pipeline.
    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    /// Class probabilities for several clips at the model's sample rate, one row each;
    /// each clip is prepared on its own.
    pub fn probabilities(&self, clips: &[&[f32]]) -> Vec<Vec<f32>> {
        let inputs: Vec<Vec<f32>> = clips.iter().map(|c| self.featurizer.compute(c)).collect();
        self.classify(inputs)
    }

    /// Class probabilities for several clips of one speaker: a model trained with
    /// `normalize = "speaker"` normalises them with statistics pooled over all of them
    /// (the more clips, the closer to training); other models as [`Self::probabilities`].
    pub fn probabilities_same_speaker(&self, clips: &[&[f32]]) -> Vec<Vec<f32>> {
        self.classify(self.featurizer.compute_same_speaker(clips))
    }

    /// Whether the model expects a speaker's pooled statistics (`normalize = "speaker"`).
    pub fn wants_speaker_statistics(&self) -> bool {
        self.featurizer.config().normalize == Normalize::Speaker
    }

    fn classify(&self, inputs: Vec<Vec<f32>>) -> Vec<Vec<f32>> {
        if inputs.is_empty() {
            return Vec::new();
        }
        let [c, h, w] = self.featurizer.shape();
        let items = inputs.len();
        let buf: Vec<f32> = inputs.into_iter().flatten().collect();
        let x = Tensor::<4>::from_data(TensorData::new(buf, [items, c, h, w]), &self.device);
        let probs = self.model.probabilities(x);
        let n = self.manifest.labels.len();
        let flat: Vec<f32> = probs.into_data().try_to_vec().unwrap_or_default();
        flat.chunks(n).map(<[f32]>::to_vec).collect()
    }

    /// Brings audio to the model's sample rate.
    pub fn prepare(&self, audio: &Audio) -> Result<Vec<f32>> {
        resample(
            &audio.samples,
            audio.sample_rate,
            self.featurizer.config().mel.sample_rate,
        )
    }

    /// Recognises one clip in memory (`path` is only echoed back).
    pub fn recognize_samples(&self, path: &str, samples: &[f32]) -> Recognition {
        let probs = self.probabilities(&[samples]).pop().unwrap_or_default();
        self.describe(path, &probs)
    }

    fn describe(&self, path: &str, probs: &[f32]) -> Recognition {
        let top: Vec<(String, f32)> = top_k_indices(probs, 3)
            .into_iter()
            .map(|i| (self.manifest.labels[i].clone(), probs[i]))
            .collect();
        let (label, score) = top.first().cloned().unwrap_or_default();
        Recognition {
            path: path.to_string(),
            label,
            score,
            top,
        }
    }

    /// Reads and recognises a WAV file.
    pub fn recognize_file(&self, path: &Path) -> Result<Recognition> {
        let audio = read_wav(path)?;
        let samples = self.prepare(&audio)?;
        Ok(self.recognize_samples(&path.display().to_string(), &samples))
    }

    /// Reads and recognises several WAV files of one speaker together
    /// ([`Self::probabilities_same_speaker`]). Fails on the first unreadable file.
    pub fn recognize_same_speaker(&self, paths: &[&Path]) -> Result<Vec<Recognition>> {
        let clips = paths
            .iter()
            .map(|p| self.prepare(&read_wav(p)?))
            .collect::<Result<Vec<_>>>()?;
        let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        Ok(paths
            .iter()
            .zip(self.probabilities_same_speaker(&refs))
            .map(|(p, probs)| self.describe(&p.display().to_string(), &probs))
            .collect())
    }
}

/// Settings of [`spot`].
#[derive(Debug, Clone)]
pub struct SpotConfig {
    /// Energy window length in seconds.
    pub window_s: f32,
    /// Energy hop in seconds.
    pub hop_s: f32,
    /// Moving-average smoothing of the energy envelope, in windows.
    pub smooth: usize,
    /// A window is speech if its energy is within this many dB of the loudest window.
    pub threshold_db: f32,
    /// Gaps shorter than this (seconds) inside a word are bridged.
    pub min_gap_s: f32,
    /// Segments shorter than this (seconds) are ignored.
    pub min_len_s: f32,
    /// Detections whose probability is below this are dropped.
    pub min_score: f32,
}

impl Default for SpotConfig {
    fn default() -> Self {
        Self {
            window_s: 0.025,
            hop_s: 0.010,
            smooth: 5,
            threshold_db: 30.0,
            min_gap_s: 0.12,
            min_len_s: 0.08,
            min_score: 0.5,
        }
    }
}

/// A word found in a recording.
#[derive(Debug, Clone, Serialize)]
pub struct Detection {
    /// Start in seconds.
    pub start: f32,
    /// End in seconds.
    pub end: f32,
    /// Recognised label.
    pub label: String,
    /// Its probability.
    pub score: f32,
}

/// Finds spoken words in a long recording: a sliding energy window, smoothed and
/// thresholded, cuts the recording into segments; the recogniser labels each segment.
pub fn spot(rec: &Recognizer, samples: &[f32], cfg: &SpotConfig) -> Vec<Detection> {
    let sr = rec.featurizer().config().mel.sample_rate as f32;
    let segments = voiced_segments(samples, sr, cfg);
    let clips: Vec<&[f32]> = segments.iter().map(|&(s, e)| &samples[s..e]).collect();
    // One recording, one speaker: its words share the speaker's statistics.
    let probs = rec.probabilities_same_speaker(&clips);
    segments
        .iter()
        .zip(probs)
        .filter_map(|(&(s, e), p)| {
            let r = rec.describe("", &p);
            (r.score >= cfg.min_score).then(|| Detection {
                start: s as f32 / sr,
                end: e as f32 / sr,
                label: r.label,
                score: r.score,
            })
        })
        .collect()
}

/// Sample ranges whose smoothed energy is within `threshold_db` of the loudest window.
pub fn voiced_segments(samples: &[f32], sr: f32, cfg: &SpotConfig) -> Vec<(usize, usize)> {
    let win = ((cfg.window_s * sr) as usize).max(1);
    let hop = ((cfg.hop_s * sr) as usize).max(1);
    if samples.len() < win {
        return Vec::new();
    }
    let n = 1 + (samples.len() - win) / hop;
    let energy: Vec<f32> = (0..n)
        .map(|t| {
            let s = &samples[t * hop..t * hop + win];
            10.0 * (s.iter().map(|v| v * v).sum::<f32>() / win as f32 + 1e-10).log10()
        })
        .collect();
    let k = cfg.smooth.max(1);
    let smoothed: Vec<f32> = (0..n)
        .map(|t| {
            let lo = t.saturating_sub(k / 2);
            let hi = (t + k / 2 + 1).min(n);
            energy[lo..hi].iter().sum::<f32>() / (hi - lo) as f32
        })
        .collect();
    let max = smoothed.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let thresh = max - cfg.threshold_db;
    let mut segs: Vec<(usize, usize)> = Vec::new();
    let mut start = None;
    for (t, &e) in smoothed.iter().enumerate() {
        match (e > thresh, start) {
            (true, None) => start = Some(t),
            (false, Some(s)) => {
                segs.push((s, t));
                start = None;
            }
            _ => {}
        }
    }
    if let Some(s) = start {
        segs.push((s, n));
    }
    // Bridge short gaps, drop short segments, convert to samples.
    let gap = (cfg.min_gap_s / cfg.hop_s).ceil() as usize;
    let mut merged: Vec<(usize, usize)> = Vec::new();
    for s in segs {
        match merged.last_mut() {
            Some(last) if s.0 - last.1 <= gap => last.1 = s.1,
            _ => merged.push(s),
        }
    }
    let min_len = (cfg.min_len_s / cfg.hop_s).ceil() as usize;
    merged
        .into_iter()
        .filter(|(s, e)| e - s >= min_len)
        .map(|(s, e)| (s * hop, ((e - 1) * hop + win).min(samples.len())))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_found_between_silences() {
        let sr = 8000.0;
        let mut y = vec![0.0f32; 24000];
        for (i, v) in y.iter_mut().enumerate() {
            if (4000..8000).contains(&i) || (14000..17000).contains(&i) {
                *v = 0.5 * (i as f32 * 0.2).sin();
            }
        }
        let segs = voiced_segments(&y, sr, &SpotConfig::default());
        assert_eq!(segs.len(), 2, "{segs:?}");
        assert!(
            (segs[0].0 as i64 - 4000).abs() < 500 && (segs[0].1 as i64 - 8000).abs() < 500,
            "{segs:?}"
        );
        assert!(
            (segs[1].0 as i64 - 14000).abs() < 500 && (segs[1].1 as i64 - 17000).abs() < 500,
            "{segs:?}"
        );
    }
}
