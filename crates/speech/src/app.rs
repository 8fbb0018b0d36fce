//! The speech apps: recognise clips and spot spoken words in a long recording.

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use profundo_core::backend::{self, BackendKind};
use profundo_core::manifest::{MANIFEST_FILE, resolve_model_dir};
use profundo_core::metrics::{mean_rows, top_k_indices};
use profundo_core::model::NormStats;
use serde::Serialize;

use crate::augment::{parse_speed_view, speed_change};
use crate::input::{Featurizer, Normalize};
use crate::model::{BatchNormScope, ConvEnsemble};
use crate::resample::resample;
use crate::train::{SpeechManifest, load_ensemble};
use crate::wav::{Audio, read_wav};
use crate::{Result, SpeechError};

/// A loaded speech classifier with its feature pipeline.
pub struct Recognizer {
    model: ConvEnsemble,
    manifest: SpeechManifest,
    featurizer: Featurizer,
    batch_norm: BatchNormScope,
    /// Speed factors of the test-time views the model was evaluated with (manifest
    /// `model.views`): every prediction is the mean over the clip and these views.
    views: Vec<f32>,
    device: Device,
}

/// One recognised clip.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recognition {
    /// The clip.
    pub path: String,
    /// Best label.
    pub label: String,
    /// Its probability.
    pub score: f32,
    /// The three best labels with probabilities.
    pub top: Vec<LabelScore>,
}

/// A label and its probability.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LabelScore {
    /// The label.
    pub label: String,
    /// Its probability.
    pub score: f32,
}

impl Recognizer {
    /// Loads a model from a model directory, a run directory or `runs/<pipeline>` onto
    /// `backend`'s `device` (`"cpu"`, or `"cuda:N"` with tch).
    pub fn load(path: &Path, backend: BackendKind, device: &str) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let device = backend::device(backend, device)?;
        let (model, manifest) = load_ensemble(&dir, &device)?;
        let in_manifest =
            |e: String| SpeechError::Config(format!("{}: {e}", dir.join(MANIFEST_FILE).display()));
        let featurizer =
            Featurizer::new(&manifest.model.features).map_err(|e| in_manifest(e.to_string()))?;
        let batch_norm = manifest.model.batch_norm;
        let views = speed_views(&manifest.model.views).map_err(in_manifest)?;
        Ok(Self {
            model,
            manifest,
            featurizer,
            batch_norm,
            views,
            device,
        })
    }

    /// Speed factors of the test-time views averaged into every prediction (none for a
    /// model trained without `test_speeds`).
    pub fn views(&self) -> &[f32] {
        &self.views
    }

    /// The model's manifest.
    pub fn manifest(&self) -> &SpeechManifest {
        &self.manifest
    }

    /// The feature pipeline.
    pub fn featurizer(&self) -> &Featurizer {
        &self.featurizer
    }

    /// Class probabilities for several clips at the model's sample rate, one row each;
    /// each clip is prepared on its own.
    pub fn probabilities(&self, clips: &[&[f32]]) -> Vec<Vec<f32>> {
        self.over_views(clips, |clips| {
            let inputs = clips.iter().map(|c| self.featurizer.compute(c)).collect();
            self.classify(inputs, NormStats::Running)
        })
    }

    /// Class probabilities for several clips of one speaker: a model trained with
    /// `normalize = "speaker"` normalises the features with statistics pooled over all of
    /// them, and one trained with `batch_norm = "group"` normalises every layer with their
    /// statistics (the more clips, the closer to training); other models as
    /// [`Self::probabilities`].
    pub fn probabilities_same_speaker(&self, clips: &[&[f32]]) -> Vec<Vec<f32>> {
        let stats = self.batch_norm.stats_for_group(clips.len());
        self.over_views(clips, |clips| {
            self.classify(self.featurizer.compute_same_speaker(clips), stats)
        })
    }

    /// The mean of `probs` over the clips and each test-time view of them, as the pipeline
    /// evaluated the model: a view's clips go through `probs` together (one speaker's
    /// clips played at one speed share their statistics).
    fn over_views(
        &self,
        clips: &[&[f32]],
        probs: impl Fn(&[&[f32]]) -> Vec<Vec<f32>>,
    ) -> Vec<Vec<f32>> {
        let sr = self.featurizer.config().mel.sample_rate;
        let views = self.views.iter().map(|&speed| {
            // The rates are fixed and valid (checked when the model was trained); a clip
            // that could not be resampled would count with its own samples.
            let played: Vec<Vec<f32>> = clips
                .iter()
                .map(|c| speed_change(c, sr, speed).unwrap_or_else(|_| c.to_vec()))
                .collect();
            let refs: Vec<&[f32]> = played.iter().map(Vec::as_slice).collect();
            probs(&refs)
        });
        mean_rows(std::iter::once(probs(clips)).chain(views))
    }

    /// Whether the model expects statistics over several clips of one speaker
    /// (`normalize = "speaker"` or `batch_norm = "group"`).
    pub fn wants_speaker_statistics(&self) -> bool {
        self.featurizer.config().normalize == Normalize::Speaker
            || self.batch_norm == BatchNormScope::Group
    }

    fn classify(&self, inputs: Vec<Vec<f32>>, stats: NormStats) -> Vec<Vec<f32>> {
        if inputs.is_empty() {
            return Vec::new();
        }
        let [c, h, w] = self.featurizer.shape();
        let items = inputs.len();
        let buf: Vec<f32> = inputs.into_iter().flatten().collect();
        let x = Tensor::<4>::from_data(TensorData::new(buf, [items, c, h, w]), &self.device);
        let probs = self.model.probabilities_with(x, stats);
        let n = self.manifest.model.labels.len();
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
        let top: Vec<LabelScore> = top_k_indices(probs, 3)
            .into_iter()
            .map(|i| LabelScore {
                label: self.manifest.model.labels[i].clone(),
                score: probs[i],
            })
            .collect();
        let (label, score) = top
            .first()
            .map(|t| (t.label.clone(), t.score))
            .unwrap_or_default();
        Recognition {
            path: path.to_string(),
            label,
            score,
            top,
        }
    }

    /// Recognises several clips in memory in one batch, each prepared alone (`names` are
    /// only echoed back).
    pub fn recognize_batch(&self, names: &[String], clips: &[&[f32]]) -> Vec<Recognition> {
        names
            .iter()
            .zip(self.probabilities(clips))
            .map(|(name, probs)| self.describe(name, &probs))
            .collect()
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

/// The speed factors of a manifest's test-time views (`model.views`, e.g.
/// `["speed=0.9"]`).
fn speed_views(views: &[String]) -> std::result::Result<Vec<f32>, String> {
    views
        .iter()
        .map(|v| {
            parse_speed_view(v).ok_or_else(|| {
                format!("unknown test-time view `{v}` in model.views (expected \"speed=F\")")
            })
        })
        .collect()
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
    use crate::model::ConvClassifierConfig;
    use crate::train::{SpeechModel, SpeechTraining, save_ensemble};

    /// An untrained temporal CNN saved with per-clip MFCC features, batch norm `scope` and
    /// test-time `views`, loaded as a recogniser.
    fn recognizer(dir: &Path, scope: BatchNormScope, views: &[&str]) -> Recognizer {
        let device = backend::device(BackendKind::Flex, "cpu").unwrap();
        device.seed(4);
        let cfg = ConvClassifierConfig {
            channels: vec![8, 8],
            kernel: 3,
            dropout: 0.0,
            temporal: true,
        };
        let shape = [1, 13, 48];
        let features = serde_json::from_value(serde_json::json!({
            "frames": 48, "kind": "speech.mfcc", "n_mfcc": 13, "normalize": "band",
            "pre_emphasis": 0.97, "trim_db": 40.0,
            "mel": {"f_max": null, "f_min": 0.0, "hop_length": 128, "n_fft": 256,
                    "n_mels": 40, "sample_rate": 8000, "top_db": 80.0}
        }))
        .unwrap();
        let section = SpeechModel {
            networks: vec![cfg.clone()],
            input_shape: shape,
            labels: (0..3).map(|d| d.to_string()).collect(),
            features,
            batch_norm: scope,
            views: views.iter().map(|v| v.to_string()).collect(),
            training: SpeechTraining {
                config: Default::default(),
                augment: Default::default(),
                fold: "final".into(),
                train_items: 0,
                valid_items: 0,
                best_epoch: 1,
                stop: profundo_core::train::StopReason::Completed,
                seed: 0,
                backend: "flex".into(),
            },
        };
        let manifest = SpeechManifest::new("speech.digits", "test", section);
        save_ensemble(dir, &[cfg.init(shape, 3, &device)], &manifest).unwrap();
        Recognizer::load(dir, BackendKind::Flex, "cpu").unwrap()
    }

    fn tones() -> Vec<Vec<f32>> {
        [300.0f32, 450.0, 800.0, 1200.0]
            .iter()
            .map(|f| {
                (0..4000)
                    .map(|i| 0.3 * (i as f32 * f * std::f32::consts::TAU / 8000.0).sin())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn a_group_batch_norm_model_normalises_one_speakers_clips_together() {
        let tmp = tempfile::tempdir().unwrap();
        let clips = tones();
        let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();

        let group = recognizer(&tmp.path().join("group"), BatchNormScope::Group, &[]);
        assert!(group.wants_speaker_statistics());
        let alone = group.probabilities(&refs);
        let together = group.probabilities_same_speaker(&refs);
        // Per-clip features are the same either way, so only batch norm differs.
        let inputs = refs.iter().map(|c| group.featurizer.compute(c)).collect();
        let want = group.classify(inputs, NormStats::for_group(refs.len()));
        assert_eq!(together, want, "all clips in one batch, its own statistics");
        assert_ne!(together, alone);

        let pooled = recognizer(&tmp.path().join("pooled"), BatchNormScope::Pooled, &[]);
        assert!(!pooled.wants_speaker_statistics());
        assert_eq!(
            pooled.probabilities_same_speaker(&refs),
            pooled.probabilities(&refs)
        );
    }

    /// Replaces the test-time views in the manifest in `dir`.
    fn edit_views(dir: &Path, views: serde_json::Value) {
        let path = dir.join("manifest.json");
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        m["model"]["views"] = views;
        std::fs::write(&path, m.to_string()).unwrap();
    }

    #[test]
    fn a_model_with_test_time_views_averages_the_clip_and_its_views() {
        let tmp = tempfile::tempdir().unwrap();
        let clips = tones();
        let refs: Vec<&[f32]> = clips.iter().map(Vec::as_slice).collect();
        let viewed = recognizer(
            &tmp.path().join("viewed"),
            BatchNormScope::Pooled,
            &["speed=0.9", "speed=1.1"],
        );
        // The same weights without the views: the model files copied, views taken out.
        let plain_dir = tmp.path().join("plain");
        std::fs::create_dir_all(&plain_dir).unwrap();
        for f in std::fs::read_dir(tmp.path().join("viewed")).unwrap() {
            let f = f.unwrap().path();
            std::fs::copy(&f, plain_dir.join(f.file_name().unwrap())).unwrap();
        }
        edit_views(&plain_dir, serde_json::json!([]));
        let plain = Recognizer::load(&plain_dir, BackendKind::Flex, "cpu").unwrap();
        assert!(plain.views().is_empty());
        assert_eq!(viewed.views(), &[0.9, 1.1]);
        let played = |f: f32| -> Vec<Vec<f32>> {
            clips
                .iter()
                .map(|c| speed_change(c, 8000, f).unwrap())
                .collect()
        };
        let (slow, fast) = (played(0.9), played(1.1));
        let as_refs = |v: &[Vec<f32>]| -> Vec<Vec<f32>> {
            let r: Vec<&[f32]> = v.iter().map(Vec::as_slice).collect();
            plain.probabilities(&r)
        };
        let (a, b, c) = (plain.probabilities(&refs), as_refs(&slow), as_refs(&fast));
        let got = viewed.probabilities(&refs);
        for (k, row) in got.iter().enumerate() {
            for (j, p) in row.iter().enumerate() {
                let want = (a[k][j] + b[k][j] + c[k][j]) / 3.0;
                assert!((p - want).abs() < 1e-6, "clip {k} class {j}: {p} vs {want}");
            }
        }
        assert_ne!(got, a, "the views must change the prediction");
    }

    #[test]
    fn an_unknown_test_time_view_is_an_error_naming_the_manifest() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("m");
        recognizer(&dir, BatchNormScope::Pooled, &[]);
        edit_views(&dir, serde_json::json!(["pitch=2"]));
        let err = Recognizer::load(&dir, BackendKind::Flex, "cpu")
            .err()
            .expect("an unknown view must fail")
            .to_string();
        assert!(
            err.contains("manifest.json") && err.contains("pitch=2"),
            "{err}"
        );
    }

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
