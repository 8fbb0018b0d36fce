//! WAV files for `speech recognize`: broken and lying headers, every sample format users
//! meet (these must work), extreme lengths, and things that are not WAV at all.

use super::{Case, Fixture, put};
use crate::util::{repo, wav_bytes};

/// A WAV file's bytes written field by field, so a header can lie: `data_len` is what the
/// `data` chunk claims (the real length when `None`).
fn wav(
    format: u16,
    channels: u16,
    rate: u32,
    bits: u16,
    data: &[u8],
    data_len: Option<u32>,
) -> Vec<u8> {
    // IMA ADPCM packs 4-bit samples into 256-byte blocks.
    let align = if format == 0x11 {
        256
    } else {
        channels as u32 * bits as u32 / 8
    };
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&format.to_le_bytes());
    b.extend_from_slice(&channels.to_le_bytes());
    b.extend_from_slice(&rate.to_le_bytes());
    b.extend_from_slice(&(rate * align).to_le_bytes());
    b.extend_from_slice(&(align as u16).to_le_bytes());
    b.extend_from_slice(&bits.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&data_len.unwrap_or(data.len() as u32).to_le_bytes());
    b.extend_from_slice(data);
    b
}

/// A spoken digit from the shipped FSDD (8 kHz mono), as samples in [-1, 1].
fn digit() -> Vec<f32> {
    let path = repo().join("datasets/fsdd/recordings/3_theo_0.wav");
    let mut r = hound::WavReader::open(path).unwrap();
    r.samples::<i16>()
        .map(|s| s.unwrap() as f32 / 32768.0)
        .collect()
}

/// `x` at 8 kHz resampled to `rate` (linear interpolation).
fn resampled(x: &[f32], rate: u32) -> Vec<f32> {
    let n = (x.len() as u64 * rate as u64 / 8000) as usize;
    (0..n)
        .map(|i| {
            let t = i as f64 * 8000.0 / rate as f64;
            let (k, f) = (t as usize, (t.fract()) as f32);
            let a = x[k.min(x.len() - 1)];
            let b = x[(k + 1).min(x.len() - 1)];
            a + (b - a) * f
        })
        .collect()
}

/// Writes `x` as `audio/<name>` ([`wav_bytes`]) and returns the path.
fn hound_wav(
    f: &Fixture,
    name: &str,
    x: &[f32],
    rate: u32,
    channels: u16,
    float: bool,
    bits: u16,
) -> String {
    put(f, "audio", name, &wav_bytes(x, rate, channels, float, bits))
}

fn pcm16(x: &[f32]) -> Vec<u8> {
    x.iter()
        .flat_map(|s| ((s * 32767.0) as i16).to_le_bytes())
        .collect()
}

pub fn cases(f: &Fixture) -> Vec<Case> {
    std::fs::create_dir_all(f.dir.join("audio")).unwrap();
    let x = digit();
    let good = wav(1, 1, 8000, 16, &pcm16(&x), None);
    let recognize = |path: &str| -> Vec<String> {
        ["speech", "recognize", "--model", &f.speech, path]
            .map(String::from)
            .to_vec()
    };
    let refused = |name: &str, bytes: &[u8], needles: &[&str]| {
        let path = put(f, "audio", name, bytes);
        let args = recognize(&path);
        let mut n = vec![name];
        n.extend_from_slice(needles);
        Case::refused(&format!("audio/{name}"), &args, &n)
    };
    let works = |name: &str, path: &str| {
        let args = recognize(path);
        Case::works(&format!("audio/{name}"), &args, &[name])
    };

    let mut cases = vec![
        refused("empty.wav", b"", &["empty"]),
        refused(
            "text.wav",
            b"these are words, not samples\n",
            &["not a WAV file"],
        ),
        refused("truncated-header.wav", &good[..30], &["truncated"]),
        refused(
            "truncated-body.wav",
            &good[..good.len() / 2],
            &["truncated"],
        ),
        // The data chunk claims 4 GB: refused without allocating what the header promises.
        refused(
            "lying-length.wav",
            &wav(1, 1, 8000, 16, &pcm16(&x[..800]), Some(0xFFFF_FFF0)),
            &["truncated"],
        ),
        refused(
            "zero-channels.wav",
            &wav(1, 0, 8000, 16, &pcm16(&x), None),
            &["channel"],
        ),
        refused(
            "zero-rate.wav",
            &wav(1, 1, 0, 16, &pcm16(&x), None),
            &["sample rate"],
        ),
        refused(
            "float64.wav",
            &wav(3, 1, 8000, 64, &[0u8; 64], None),
            &["unsupported"],
        ),
        refused(
            "adpcm.wav",
            &wav(0x11, 1, 8000, 4, &[0u8; 512], None),
            &["unsupported"],
        ),
        refused(
            "header-only.wav",
            &wav(1, 1, 8000, 16, &[], None),
            &["no audio"],
        ),
    ];
    // Non-finite float samples: NaN and infinity are not sound.
    let mut bad = x.clone();
    bad[100] = f32::NAN;
    bad[200] = f32::INFINITY;
    let p = hound_wav(f, "nan.wav", &bad, 8000, 1, true, 32);
    cases.push(Case::refused(
        "audio/nan.wav",
        &recognize(&p),
        &["nan.wav", "not finite"],
    ));
    // A folder named like a clip, and a clip that is not there.
    let folder = f.dir.join("audio/folder.wav");
    std::fs::create_dir_all(&folder).unwrap();
    cases.push(Case::refused(
        "audio/folder.wav",
        &recognize(folder.to_str().unwrap()),
        &["folder.wav"],
    ));
    cases.push(Case::refused(
        "audio/missing.wav",
        &recognize("missing.wav"),
        &["missing.wav", "No such file"],
    ));

    // Valid files in the formats other tools write: these must work.
    let works_cases = [
        ("int8.wav", hound_wav(f, "int8.wav", &x, 8000, 1, false, 8)),
        (
            "int24.wav",
            hound_wav(f, "int24.wav", &x, 8000, 1, false, 24),
        ),
        (
            "int32.wav",
            hound_wav(f, "int32.wav", &x, 8000, 1, false, 32),
        ),
        (
            "float32.wav",
            hound_wav(f, "float32.wav", &x, 8000, 1, true, 32),
        ),
        (
            "stereo-44k.wav",
            hound_wav(
                f,
                "stereo-44k.wav",
                &resampled(&x, 44_100),
                44_100,
                2,
                false,
                16,
            ),
        ),
        (
            "stereo-48k.wav",
            hound_wav(
                f,
                "stereo-48k.wav",
                &resampled(&x, 48_000),
                48_000,
                2,
                true,
                32,
            ),
        ),
        (
            "1ms.wav",
            put(
                f,
                "audio",
                "1ms.wav",
                &wav(
                    1,
                    1,
                    8000,
                    16,
                    &pcm16(&x[x.len() / 2..x.len() / 2 + 8]),
                    None,
                ),
            ),
        ),
        (
            "silence.wav",
            put(
                f,
                "audio",
                "silence.wav",
                &wav(1, 1, 8000, 16, &vec![0u8; 16_000], None),
            ),
        ),
        (
            "1hour.wav",
            put(
                f,
                "audio",
                "1hour.wav",
                &wav(
                    1,
                    1,
                    8000,
                    16,
                    &pcm16(&x.repeat(3_600 * 8_000 / x.len() + 1)),
                    None,
                ),
            ),
        ),
    ];
    for (name, path) in &works_cases {
        cases.push(works(name, path));
    }
    cases
}
