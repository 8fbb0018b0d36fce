//! Our log-mel and MFCC against librosa 0.11's own numbers on two shipped FSDD clips, for two
//! settings (fixtures: `tests/fixtures/librosa_reference.json`, made by
//! `tests/fixtures/make_librosa_reference.py`).
//!
//! Tolerance: 0.001 dB on every log-mel cell and 0.001 on every MFCC coefficient (measured: 1.3e-5 and 6e-5) (values
//! are rounded to 1e-5 in the fixture). librosa computes in float32, we in float64.

use std::path::PathBuf;

use profundo_speech::features::{MelConfig, MelExtractor};
use profundo_speech::wav::read_wav;
use serde::Deserialize;

#[derive(Deserialize)]
struct Case {
    clip: String,
    sample_rate: u32,
    n_fft: usize,
    hop_length: usize,
    n_mels: usize,
    fmin: f32,
    fmax: Option<f32>,
    n_mfcc: usize,
    log_mel: Vec<Vec<f64>>,
    mfcc: Vec<Vec<f64>>,
}

#[derive(Deserialize)]
struct Fixture {
    librosa_version: String,
    cases: Vec<Case>,
}

const TOL: f64 = 1e-3;

/// This package's directory, as cargo sets it when it runs the tests. The compile-time value
/// is only the fallback: a build cache shared between checkouts can hold a test binary that
/// was compiled in another, since removed, one.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

#[test]
fn log_mel_and_mfcc_match_librosa() {
    let root = manifest_dir().join("../..");
    let text =
        std::fs::read_to_string(manifest_dir().join("tests/fixtures/librosa_reference.json"))
            .unwrap();
    let fx: Fixture = serde_json::from_str(&text).unwrap();
    assert_eq!(fx.cases.len(), 4);
    for c in &fx.cases {
        let audio = read_wav(&root.join(&c.clip)).unwrap();
        assert_eq!(audio.sample_rate, c.sample_rate);
        let cfg = MelConfig {
            sample_rate: c.sample_rate,
            n_fft: c.n_fft,
            hop_length: c.hop_length,
            n_mels: c.n_mels,
            f_min: c.fmin,
            f_max: c.fmax,
            top_db: Some(80.0),
        };
        let ex = MelExtractor::new(&cfg).unwrap();
        let ours = ex.log_mel(&audio.samples);
        assert_eq!(
            (ours.rows, ours.cols),
            (c.log_mel.len(), c.log_mel[0].len()),
            "{} shape",
            c.clip
        );
        let mut worst = 0.0f64;
        for (r, row) in c.log_mel.iter().enumerate() {
            for (t, &want) in row.iter().enumerate() {
                worst = worst.max((ours.at(r, t) as f64 - want).abs());
            }
        }
        assert!(
            worst <= TOL,
            "{} n_fft {}: log-mel differs from librosa {} by {worst} dB",
            c.clip,
            c.n_fft,
            fx.librosa_version
        );
        let mf = ex.mfcc(&audio.samples, c.n_mfcc);
        let mut worst_mfcc = 0.0f64;
        for (k, row) in c.mfcc.iter().enumerate() {
            for (t, &want) in row.iter().enumerate() {
                worst_mfcc = worst_mfcc.max((mf.at(k, t) as f64 - want).abs());
            }
        }
        assert!(
            worst_mfcc <= TOL,
            "{} n_fft {}: MFCC differs from librosa by {worst_mfcc}",
            c.clip,
            c.n_fft
        );
        eprintln!(
            "{} n_fft {}: max |diff| log-mel {worst:.2e} dB, MFCC {worst_mfcc:.2e}",
            c.clip, c.n_fft
        );
    }
}
