//! Sample-rate conversion with rubato's FFT resampler (fixed ratio, anti-aliased).

use rubato::audioadapter_buffers::direct::SequentialSliceOfVecs;
use rubato::{Fft, FixedSync, Resampler};

use crate::{Result, SpeechError};

/// Resamples mono `samples` from `from` Hz to `to` Hz (a copy when the rates are equal).
pub fn resample(samples: &[f32], from: u32, to: u32) -> Result<Vec<f32>> {
    if from == to || samples.is_empty() {
        return Ok(samples.to_vec());
    }
    let err = |e: &dyn std::fmt::Display| {
        SpeechError::Config(format!("resampling {from} Hz -> {to} Hz: {e}"))
    };
    let mut r = Fft::<f32>::new(from as usize, to as usize, 1024, 1, FixedSync::Input)
        .map_err(|e| err(&e))?;
    let buf = vec![samples.to_vec()];
    let input = SequentialSliceOfVecs::new(&buf, 1, samples.len()).map_err(|e| err(&e))?;
    let out = r
        .process_all(&input, samples.len(), None)
        .map_err(|e| err(&e))?;
    Ok(out.take_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, rate: u32, n: usize) -> Vec<f32> {
        (0..n)
            .map(|i| (2.0 * std::f32::consts::PI * freq * i as f32 / rate as f32).sin())
            .collect()
    }

    #[test]
    fn a_tone_keeps_its_frequency_and_length() {
        let x = sine(440.0, 16000, 16000);
        let y = resample(&x, 16000, 8000).unwrap();
        assert!((y.len() as i64 - 8000).abs() <= 2, "length {}", y.len());
        let want = sine(440.0, 8000, y.len());
        // Compare away from the edges.
        let err: f32 = y[200..7800]
            .iter()
            .zip(&want[200..7800])
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(err < 0.02, "max error {err}");
    }

    #[test]
    fn equal_rates_copy() {
        let x = vec![0.1, 0.2, 0.3];
        assert_eq!(resample(&x, 8000, 8000).unwrap(), x);
    }
}
