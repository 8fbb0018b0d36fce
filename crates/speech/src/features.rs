//! Log-mel spectrograms and MFCCs computed exactly as librosa does by default:
//! `librosa.feature.melspectrogram(y, sr, n_fft, hop_length, center=True, pad_mode="constant",
//! window="hann", power=2.0, htk=False, norm="slaney")`, `power_to_db(ref=1.0, amin=1e-10,
//! top_db=80)` and `mfcc(dct_type=2, norm="ortho")`. Checked against librosa's own output in
//! `tests/librosa_reference.rs` (fixtures made by `tests/fixtures/make_librosa_reference.py`).

use std::sync::Arc;

use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};
use serde::{Deserialize, Serialize};

use crate::{Result, SpeechError};

/// A matrix stored row-major: `rows` (mel bands or coefficients) x `cols` (frames).
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    /// Number of rows.
    pub rows: usize,
    /// Number of columns (frames).
    pub cols: usize,
    /// Values, row after row.
    pub data: Vec<f32>,
}

impl Matrix {
    /// Value at (`r`, `c`).
    pub fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.cols + c]
    }
}

/// Spectral analysis settings shared by log-mel and MFCC.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MelConfig {
    /// Sample rate in Hz.
    pub sample_rate: u32,
    /// FFT size (= window length) in samples.
    pub n_fft: usize,
    /// Hop between frames in samples.
    pub hop_length: usize,
    /// Number of mel bands.
    pub n_mels: usize,
    /// Lowest band edge in Hz.
    pub f_min: f32,
    /// Highest band edge in Hz (default: sample_rate / 2).
    pub f_max: Option<f32>,
    /// Dynamic range kept by `power_to_db`, in dB (librosa's default 80; `None` = unclipped).
    pub top_db: Option<f32>,
}

impl MelConfig {
    /// Checks the settings.
    pub fn check(&self) -> Result<()> {
        let nyq = self.sample_rate as f32 / 2.0;
        let bad = |m: String| Err(SpeechError::Config(m));
        if self.n_fft < 16 || self.hop_length == 0 || self.n_mels == 0 {
            return bad(format!(
                "n_fft ({}) must be >= 16, hop_length and n_mels positive",
                self.n_fft
            ));
        }
        let f_max = self.f_max.unwrap_or(nyq);
        if !(0.0 <= self.f_min && self.f_min < f_max && f_max <= nyq) {
            return bad(format!(
                "need 0 <= f_min < f_max <= sample_rate/2 ({nyq} Hz), got f_min {} f_max {f_max}",
                self.f_min
            ));
        }
        Ok(())
    }
}

/// Slaney's mel scale (librosa `hz_to_mel(htk=False)`).
pub fn hz_to_mel(f: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if f >= min_log_hz {
        min_log_mel + (f / min_log_hz).ln() / logstep
    } else {
        f / f_sp
    }
}

/// Inverse of [`hz_to_mel`].
pub fn mel_to_hz(m: f64) -> f64 {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    let min_log_mel = min_log_hz / f_sp;
    let logstep = 6.4f64.ln() / 27.0;
    if m >= min_log_mel {
        min_log_hz * (logstep * (m - min_log_mel)).exp()
    } else {
        f_sp * m
    }
}

/// librosa's `filters.mel(norm="slaney", htk=False)`: `n_mels` x `n_fft/2 + 1` weights.
pub fn mel_filterbank(
    sample_rate: u32,
    n_fft: usize,
    n_mels: usize,
    f_min: f64,
    f_max: f64,
) -> Matrix {
    let n_bins = n_fft / 2 + 1;
    let fft_freqs: Vec<f64> = (0..n_bins)
        .map(|i| i as f64 * sample_rate as f64 / n_fft as f64)
        .collect();
    let (lo, hi) = (hz_to_mel(f_min), hz_to_mel(f_max));
    let mel_f: Vec<f64> = (0..n_mels + 2)
        .map(|i| mel_to_hz(lo + (hi - lo) * i as f64 / (n_mels + 1) as f64))
        .collect();
    let mut data = vec![0f32; n_mels * n_bins];
    for m in 0..n_mels {
        let (f0, f1, f2) = (mel_f[m], mel_f[m + 1], mel_f[m + 2]);
        let enorm = 2.0 / (f2 - f0);
        for (b, &f) in fft_freqs.iter().enumerate() {
            let lower = (f - f0) / (f1 - f0);
            let upper = (f2 - f) / (f2 - f1);
            let w = lower.min(upper).max(0.0);
            data[m * n_bins + b] = (w * enorm) as f32;
        }
    }
    Matrix {
        rows: n_mels,
        cols: n_bins,
        data,
    }
}

/// Computes log-mel spectrograms (and MFCCs) for one configuration; cheap to share across
/// threads.
#[derive(Clone)]
pub struct MelExtractor {
    cfg: MelConfig,
    window: Vec<f64>,
    fft: Arc<dyn Fft<f64>>,
    filters: Matrix,
}

impl MelExtractor {
    /// Prepares the window, FFT plan and filterbank.
    pub fn new(cfg: &MelConfig) -> Result<Self> {
        cfg.check()?;
        let n = cfg.n_fft;
        // scipy.signal.get_window("hann", n, fftbins=True): periodic Hann.
        let window = (0..n)
            .map(|i| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let fft = FftPlanner::new().plan_fft_forward(n);
        let f_max = cfg.f_max.unwrap_or(cfg.sample_rate as f32 / 2.0) as f64;
        let filters = mel_filterbank(cfg.sample_rate, n, cfg.n_mels, cfg.f_min as f64, f_max);
        Ok(Self {
            cfg: cfg.clone(),
            window,
            fft,
            filters,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &MelConfig {
        &self.cfg
    }

    /// Number of frames for `n` samples (`center=True`): `1 + n / hop`.
    pub fn n_frames(&self, n: usize) -> usize {
        1 + n / self.cfg.hop_length
    }

    /// Power spectrogram `|STFT|^2`, `n_fft/2 + 1` bins x frames, zero-padded by `n_fft/2`
    /// on both sides.
    pub fn power_spectrogram(&self, y: &[f32]) -> Matrix {
        let n_fft = self.cfg.n_fft;
        let hop = self.cfg.hop_length;
        let pad = n_fft / 2;
        let frames = self.n_frames(y.len());
        let bins = n_fft / 2 + 1;
        let mut out = vec![0f32; bins * frames];
        let mut buf = vec![Complex::new(0.0f64, 0.0); n_fft];
        let mut scratch = vec![Complex::new(0.0f64, 0.0); self.fft.get_inplace_scratch_len()];
        for t in 0..frames {
            let start = (t * hop) as isize - pad as isize;
            for (k, slot) in buf.iter_mut().enumerate() {
                let i = start + k as isize;
                let v = if i >= 0 && (i as usize) < y.len() {
                    y[i as usize] as f64
                } else {
                    0.0
                };
                *slot = Complex::new(v * self.window[k], 0.0);
            }
            self.fft.process_with_scratch(&mut buf, &mut scratch);
            for (b, c) in buf.iter().take(bins).enumerate() {
                out[b * frames + t] = c.norm_sqr() as f32;
            }
        }
        Matrix {
            rows: bins,
            cols: frames,
            data: out,
        }
    }

    /// Mel power spectrogram, `n_mels` x frames.
    pub fn mel_spectrogram(&self, y: &[f32]) -> Matrix {
        let spec = self.power_spectrogram(y);
        let (mels, bins, frames) = (self.filters.rows, spec.rows, spec.cols);
        let mut out = vec![0f32; mels * frames];
        for m in 0..mels {
            let w = &self.filters.data[m * bins..(m + 1) * bins];
            let row = &mut out[m * frames..(m + 1) * frames];
            for (b, &wb) in w.iter().enumerate() {
                if wb == 0.0 {
                    continue;
                }
                let s = &spec.data[b * frames..(b + 1) * frames];
                for (o, &v) in row.iter_mut().zip(s) {
                    *o += wb * v;
                }
            }
        }
        Matrix {
            rows: mels,
            cols: frames,
            data: out,
        }
    }

    /// Log-mel spectrogram in dB (`power_to_db` with this config's `top_db`).
    pub fn log_mel(&self, y: &[f32]) -> Matrix {
        let mut m = self.mel_spectrogram(y);
        power_to_db(&mut m.data, self.cfg.top_db);
        m
    }

    /// MFCCs, `n_mfcc` x frames (DCT-II, orthonormal, of the log-mel spectrogram).
    pub fn mfcc(&self, y: &[f32], n_mfcc: usize) -> Matrix {
        dct_ortho(&self.log_mel(y), n_mfcc)
    }
}

/// librosa's `power_to_db(S, ref=1.0, amin=1e-10, top_db)`, in place.
pub fn power_to_db(values: &mut [f32], top_db: Option<f32>) {
    let mut max = f32::NEG_INFINITY;
    for v in values.iter_mut() {
        *v = 10.0 * (v.max(1e-10) as f64).log10() as f32;
        max = max.max(*v);
    }
    if let Some(top) = top_db {
        let floor = max - top;
        for v in values.iter_mut() {
            *v = v.max(floor);
        }
    }
}

/// Orthonormal DCT-II along the rows (scipy `dct(type=2, norm="ortho", axis=0)`), keeping
/// the first `n` coefficients.
pub fn dct_ortho(x: &Matrix, n: usize) -> Matrix {
    let rows = x.rows;
    let mut out = vec![0f32; n * x.cols];
    for k in 0..n {
        let scale = if k == 0 {
            (1.0 / rows as f64).sqrt()
        } else {
            (2.0 / rows as f64).sqrt()
        };
        let basis: Vec<f64> = (0..rows)
            .map(|i| {
                scale
                    * (std::f64::consts::PI * k as f64 * (2 * i + 1) as f64 / (2 * rows) as f64)
                        .cos()
            })
            .collect();
        for c in 0..x.cols {
            let s: f64 = (0..rows)
                .map(|i| basis[i] * x.data[i * x.cols + c] as f64)
                .sum();
            out[k * x.cols + c] = s as f32;
        }
    }
    Matrix {
        rows: n,
        cols: x.cols,
        data: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slaney_mel_scale_round_trips_and_has_its_knee_at_1khz() {
        assert!((hz_to_mel(1000.0) - 15.0).abs() < 1e-12);
        assert!((hz_to_mel(500.0) - 7.5).abs() < 1e-12);
        for f in [0.0, 300.0, 1000.0, 3999.0, 7000.0] {
            assert!((mel_to_hz(hz_to_mel(f)) - f).abs() < 1e-9);
        }
    }

    #[test]
    fn a_tone_peaks_in_the_right_band_and_dct_of_constant_is_dc_only() {
        let cfg = MelConfig {
            sample_rate: 8000,
            n_fft: 256,
            hop_length: 128,
            n_mels: 40,
            f_min: 0.0,
            f_max: None,
            top_db: Some(80.0),
        };
        let ex = MelExtractor::new(&cfg).unwrap();
        let y: Vec<f32> = (0..8000)
            .map(|i| (2.0 * std::f32::consts::PI * 1000.0 * i as f32 / 8000.0).sin())
            .collect();
        let m = ex.mel_spectrogram(&y);
        assert_eq!((m.rows, m.cols), (40, 1 + 8000 / 128));
        let col = 30;
        let best = (0..40)
            .max_by(|&a, &b| m.at(a, col).total_cmp(&m.at(b, col)))
            .unwrap();
        let mel_f: Vec<f64> = (0..42)
            .map(|i| mel_to_hz(hz_to_mel(4000.0) * i as f64 / 41.0))
            .collect();
        assert!(
            mel_f[best] < 1000.0 && 1000.0 < mel_f[best + 2],
            "band {best}"
        );
        let c = Matrix {
            rows: 4,
            cols: 1,
            data: vec![2.0; 4],
        };
        let d = dct_ortho(&c, 3);
        assert!((d.data[0] - 4.0).abs() < 1e-6 && d.data[1].abs() < 1e-6 && d.data[2].abs() < 1e-6);
    }
}
