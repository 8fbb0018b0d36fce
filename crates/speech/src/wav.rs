//! WAV reading with hound: integer 8/16/24/32-bit and 32-bit float, any number of channels
//! (mixed to mono), with an error naming the file and the problem for anything else.

use std::path::Path;

use crate::{Result, SpeechError};

/// The largest magnitude accepted of a float sample (nominally in [-1, 1]; a little over
/// is headroom, a huge value is a corrupt file and would overflow the resampler's FFT).
pub const MAX_FLOAT_SAMPLE: f32 = 1000.0;

/// Mono audio in [-1, 1].
#[derive(Debug, Clone, PartialEq)]
pub struct Audio {
    /// Samples, mono.
    pub samples: Vec<f32>,
    /// Sample rate in Hz.
    pub sample_rate: u32,
}

impl Audio {
    /// Duration in seconds.
    pub fn seconds(&self) -> f64 {
        self.samples.len() as f64 / self.sample_rate as f64
    }
}

fn wav_err(path: &Path, message: impl Into<String>) -> SpeechError {
    SpeechError::Wav {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads a WAV file and mixes it to mono.
pub fn read_wav(path: &Path) -> Result<Audio> {
    let bytes = std::fs::read(path).map_err(|e| wav_err(path, format!("cannot read file: {e}")))?;
    decode_wav(&bytes, path)
}

/// Decodes a WAV file held in memory (an upload, say) and mixes it to mono; `path` names
/// it in errors.
pub fn decode_wav(bytes: &[u8], path: &Path) -> Result<Audio> {
    if bytes.is_empty() {
        return Err(wav_err(path, "empty file (0 bytes), not a WAV file"));
    }
    let reader = hound::WavReader::new(std::io::Cursor::new(bytes))
        .map_err(|e| wav_err(path, describe(&e)))?;
    let spec = reader.spec();
    if spec.sample_rate == 0 {
        return Err(wav_err(path, "the header gives a sample rate of 0 Hz"));
    }
    let channels = spec.channels.max(1) as usize;
    let expected = reader.len() as usize;
    // The header may promise more samples than the file holds: reserve only what the bytes
    // present can hold.
    let present = bytes.len() / (spec.bits_per_sample as usize).div_ceil(8).max(1);
    let interleaved: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
        (hound::SampleFormat::Float, 32) => {
            collect(path, reader.into_samples::<f32>(), expected, present, |s| s)?
        }
        (hound::SampleFormat::Int, bits @ (8 | 16 | 24 | 32)) => {
            let scale = 1.0 / (1u64 << (bits - 1)) as f32;
            collect(path, reader.into_samples::<i32>(), expected, present, |s| {
                s as f32 * scale
            })?
        }
        (fmt, bits) => {
            return Err(wav_err(
                path,
                format!(
                    "unsupported sample format: {bits}-bit {fmt:?} (supported: 8/16/24/32-bit integer PCM, 32-bit float)"
                ),
            ));
        }
    };
    if interleaved.is_empty() {
        return Err(wav_err(path, "the WAV file holds no audio samples"));
    }
    if let Some(k) = interleaved
        .iter()
        .position(|s| !s.is_finite() || s.abs() > MAX_FLOAT_SAMPLE)
    {
        return Err(wav_err(
            path,
            format!(
                "sample {k} is {} (not finite, or far outside [-1, 1]): the audio is corrupt",
                interleaved[k]
            ),
        ));
    }
    let samples = if channels == 1 {
        interleaved
    } else {
        interleaved
            .chunks_exact(channels)
            .map(|f| f.iter().sum::<f32>() / channels as f32)
            .collect()
    };
    Ok(Audio {
        samples,
        sample_rate: spec.sample_rate,
    })
}

fn collect<S, I: Iterator<Item = hound::Result<S>>>(
    path: &Path,
    iter: I,
    expected: usize,
    present: usize,
    convert: impl Fn(S) -> f32,
) -> Result<Vec<f32>> {
    let mut out = Vec::with_capacity(expected.min(present));
    for s in iter {
        match s {
            Ok(v) => out.push(convert(v)),
            Err(e) => {
                return Err(wav_err(
                    path,
                    format!(
                        "truncated or corrupt audio data after {} of {expected} samples ({})",
                        out.len(),
                        describe(&e)
                    ),
                ));
            }
        }
    }
    if out.len() < expected {
        return Err(wav_err(
            path,
            format!(
                "truncated: the header promises {expected} samples, the file holds {}",
                out.len()
            ),
        ));
    }
    Ok(out)
}

fn describe(e: &hound::Error) -> String {
    match e {
        hound::Error::FormatError(m) if m.contains("RIFF") || m.contains("WAVE") => {
            format!("not a WAV file (no RIFF/WAVE header: {m})")
        }
        hound::Error::FormatError(m)
            if m.contains("bits per sample") || m.contains("sample format") =>
        {
            format!(
                "unsupported sample format ({m}); supported: 8/16/24/32-bit integer PCM, 32-bit float"
            )
        }
        hound::Error::FormatError(m) => format!("malformed WAV file: {m}"),
        hound::Error::Unsupported => {
            "unsupported WAV encoding (supported: integer PCM and 32-bit float)".into()
        }
        hound::Error::IoError(io) if io.kind() == std::io::ErrorKind::UnexpectedEof => {
            "truncated WAV file (ends inside the header or data)".into()
        }
        other => other.to_string(),
    }
}

/// Writes mono float samples as a 16-bit PCM WAV file (used by tests and examples).
pub fn write_wav_i16(path: &Path, samples: &[f32], sample_rate: u32) -> Result<()> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).map_err(|e| wav_err(path, e.to_string()))?;
    for &s in samples {
        w.write_sample((s.clamp(-1.0, 1.0) * 32767.0) as i16)
            .map_err(|e| wav_err(path, e.to_string()))?;
    }
    w.finalize().map_err(|e| wav_err(path, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(path: &Path, spec: hound::WavSpec, frames: &[Vec<f64>]) {
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for f in frames {
            for &v in f {
                match (spec.sample_format, spec.bits_per_sample) {
                    (hound::SampleFormat::Float, _) => w.write_sample(v as f32).unwrap(),
                    (_, 8) => w.write_sample((v * 127.0) as i8).unwrap(),
                    (_, 16) => w.write_sample((v * 32767.0) as i16).unwrap(),
                    (_, 24) => w.write_sample((v * 8_388_607.0) as i32).unwrap(),
                    _ => w.write_sample((v * 2_147_483_647.0) as i32).unwrap(),
                }
            }
        }
        w.finalize().unwrap();
    }

    #[test]
    fn every_supported_format_reads_to_the_same_values() {
        let dir = tempfile::tempdir().unwrap();
        let frames: Vec<Vec<f64>> = (0..100)
            .map(|i| vec![(i as f64 / 100.0) - 0.5, 0.25])
            .collect();
        for (fmt, bits) in [
            (hound::SampleFormat::Int, 8),
            (hound::SampleFormat::Int, 16),
            (hound::SampleFormat::Int, 24),
            (hound::SampleFormat::Int, 32),
            (hound::SampleFormat::Float, 32),
        ] {
            let p = dir.path().join(format!("{bits}-{fmt:?}.wav"));
            let spec = hound::WavSpec {
                channels: 2,
                sample_rate: 16000,
                bits_per_sample: bits,
                sample_format: fmt,
            };
            write(&p, spec, &frames);
            let a = read_wav(&p).unwrap();
            assert_eq!(a.sample_rate, 16000);
            assert_eq!(a.samples.len(), 100);
            for (i, s) in a.samples.iter().enumerate() {
                let want = (((i as f64 / 100.0) - 0.5) + 0.25) / 2.0;
                assert!(
                    (*s as f64 - want).abs() < 0.02,
                    "{bits}-bit {fmt:?} sample {i}: {s} vs {want}"
                );
            }
        }
    }

    #[test]
    fn bad_files_name_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.wav");
        std::fs::write(&empty, b"").unwrap();
        let e = read_wav(&empty).unwrap_err().to_string();
        assert!(e.contains("empty.wav") && e.contains("empty file"), "{e}");

        let text = dir.path().join("notes.wav");
        std::fs::write(&text, b"this is a text file, not audio\n").unwrap();
        let e = read_wav(&text).unwrap_err().to_string();
        assert!(
            e.contains("notes.wav") && e.contains("not a WAV file"),
            "{e}"
        );

        let good = dir.path().join("good.wav");
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        write(
            &good,
            spec,
            &(0..1000).map(|_| vec![0.1]).collect::<Vec<_>>(),
        );
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.wav");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let e = read_wav(&cut).unwrap_err().to_string();
        assert!(e.contains("cut.wav") && e.contains("truncated"), "{e}");

        let missing = dir.path().join("missing.wav");
        let e = read_wav(&missing).unwrap_err().to_string();
        assert!(
            e.contains("missing.wav") && e.contains("cannot read"),
            "{e}"
        );
    }

    #[test]
    fn unsupported_format_is_named() {
        // A WAV header declaring 64-bit float, which profundo does not read.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f64.wav");
        let mut b = Vec::new();
        b.extend_from_slice(b"RIFF");
        b.extend_from_slice(&(36u32 + 16).to_le_bytes());
        b.extend_from_slice(b"WAVEfmt ");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&3u16.to_le_bytes()); // IEEE float
        b.extend_from_slice(&1u16.to_le_bytes());
        b.extend_from_slice(&8000u32.to_le_bytes());
        b.extend_from_slice(&(8000u32 * 8).to_le_bytes());
        b.extend_from_slice(&8u16.to_le_bytes());
        b.extend_from_slice(&64u16.to_le_bytes());
        b.extend_from_slice(b"data");
        b.extend_from_slice(&16u32.to_le_bytes());
        b.extend_from_slice(&[0u8; 16]);
        std::fs::write(&p, b).unwrap();
        let e = read_wav(&p).unwrap_err().to_string();
        assert!(
            e.contains("f64.wav") && (e.contains("unsupported") || e.contains("Unsupported")),
            "{e}"
        );
    }
}
