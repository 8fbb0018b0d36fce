//! Seeded fuzzing of every parser that reads users' files, in process: WAV decoding and
//! resampling, image decoding, pipeline TOML, gallery and manifest JSON, rating tables,
//! tokenizer files and text. Each target starts from real files (seeds), then feeds
//! mutations of them (bit flips, lying lengths, cuts, copies of one part over another);
//! an input that panics, or takes more than [`SLOW`], fails the test and is saved under
//! the target folder's `fuzz-failures/` to replay.
//!
//! In the suite each target runs [`CASES`] inputs with a fixed seed. A longer search:
//! `PROFUNDO_FUZZ_SECONDS=75 cargo test --test regression -- fuzz::` runs every target
//! for that many seconds (a different stream of inputs per `PROFUNDO_FUZZ_SEED`).

use std::io::Write;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use profundo_core::manifest::PassThroughManifest;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::util::{repo, wav_bytes};

/// Inputs per target in the test suite.
const CASES: usize = 2_000;
/// An input that takes longer than this is a failure (a parser that hangs or crawls).
const SLOW: Duration = Duration::from_secs(10);

/// Makes inputs from seeds.
struct Mutator {
    rng: StdRng,
    seeds: Vec<Vec<u8>>,
    /// Half the inputs are made by changing one value of the parsed JSON (a number made
    /// huge or negative, a type changed, a key removed), which reaches past the syntax.
    json: bool,
}

/// JSON pointers of every node of `v`.
fn pointers(v: &serde_json::Value, at: String, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, x) in m {
                pointers(
                    x,
                    format!("{at}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                pointers(x, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
    out.push(at);
}

/// Values that break length fields and counters.
const INTERESTING: [u32; 8] = [
    0,
    1,
    0x7F,
    0xFF,
    0xFFFF,
    0x7FFF_FFFF,
    0x8000_0000,
    0xFFFF_FFFF,
];

impl Mutator {
    /// A seed with one JSON value replaced or removed, or `None` when the seed is not JSON.
    fn next_json(&mut self) -> Option<Vec<u8>> {
        use serde_json::{Value, json};
        let r = &mut self.rng;
        let seed = &self.seeds[r.random_range(0..self.seeds.len())];
        let mut v: Value = serde_json::from_slice(seed).ok()?;
        let mut all = Vec::new();
        pointers(&v, String::new(), &mut all);
        let at = all[r.random_range(0..all.len())].clone();
        let replacements = [
            Value::Null,
            json!(true),
            json!(0),
            json!(-1),
            json!(1e308),
            json!(u64::MAX),
            json!(""),
            json!("../../x"),
            json!("x".repeat(10_000)),
            json!([]),
            json!({}),
            json!([1, 2, 3]),
            json!(vec![0.5; 5_000]),
        ];
        let (parent, key) = at.rsplit_once('/').unwrap_or(("", ""));
        if r.random_range(0..5) == 0 && !at.is_empty() {
            match v.pointer_mut(parent) {
                Some(Value::Object(m)) => {
                    m.remove(&key.replace("~1", "/").replace("~0", "~"));
                }
                Some(Value::Array(a)) => {
                    if let Ok(i) = key.parse::<usize>() {
                        a.remove(i);
                    }
                }
                _ => {}
            }
        } else if let Some(node) = v.pointer_mut(&at) {
            *node = replacements[r.random_range(0..replacements.len())].clone();
        }
        serde_json::to_vec_pretty(&v).ok()
    }

    fn next(&mut self) -> Vec<u8> {
        if self.json
            && self.rng.random()
            && let Some(b) = self.next_json()
        {
            return b;
        }
        let r = &mut self.rng;
        let mut b = self.seeds[r.random_range(0..self.seeds.len())].clone();
        for _ in 0..r.random_range(1..=4) {
            let n = b.len();
            match r.random_range(0..8) {
                0 if n > 0 => {
                    let i = r.random_range(0..n);
                    b[i] ^= 1 << r.random_range(0..8);
                }
                1 if n > 0 => {
                    let i = r.random_range(0..n);
                    b[i] = r.random();
                }
                2 if n >= 4 => {
                    // A lying 32-bit field, either byte order.
                    let i = r.random_range(0..=n - 4);
                    let v = INTERESTING[r.random_range(0..INTERESTING.len())];
                    let bytes = if r.random() {
                        v.to_le_bytes()
                    } else {
                        v.to_be_bytes()
                    };
                    b[i..i + 4].copy_from_slice(&bytes);
                }
                3 if n > 0 => b.truncate(r.random_range(0..n)),
                4 if n > 0 => {
                    let i = r.random_range(0..n);
                    let len = r.random_range(1..=(n - i).min(64));
                    b.drain(i..i + len);
                }
                5 => {
                    let i = r.random_range(0..=n);
                    let extra: Vec<u8> = (0..r.random_range(1..16)).map(|_| r.random()).collect();
                    b.splice(i..i, extra);
                }
                6 if n > 1 => {
                    // A part copied elsewhere (repeats a structure: a chunk, a table, a key).
                    let i = r.random_range(0..n);
                    let len = r.random_range(1..=(n - i).min(256));
                    let part = b[i..i + len].to_vec();
                    let at = r.random_range(0..=n);
                    b.splice(at..at, part);
                }
                7 => {
                    // A piece of another seed spliced in.
                    let other = &self.seeds[r.random_range(0..self.seeds.len())];
                    if !other.is_empty() && n > 0 {
                        let i = r.random_range(0..other.len());
                        let len = r.random_range(1..=(other.len() - i).min(256));
                        let at = r.random_range(0..n);
                        let end = (at + len).min(n);
                        b.splice(at..end, other[i..i + len].iter().copied());
                    }
                }
                _ => {}
            }
        }
        b
    }
}

/// Seconds per target for a long run, from `PROFUNDO_FUZZ_SECONDS`.
fn long_run() -> Option<f64> {
    std::env::var("PROFUNDO_FUZZ_SECONDS")
        .ok()
        .map(|s| s.parse().expect("PROFUNDO_FUZZ_SECONDS must be a number"))
}

/// Feeds `run` the seeds, then mutations of them, until the budget is spent; fails on any
/// input that panics or is slow, after saving it. `run` says whether the parser accepted
/// the input (the count shows the mutations reach past the first checks).
fn fuzz(target: &str, seeds: Vec<Vec<u8>>, run: impl FnMut(&[u8]) -> bool) {
    fuzz_with(target, seeds, false, run)
}

/// [`fuzz`] for JSON files: half the mutations change the parsed document.
fn fuzz_json(target: &str, seeds: Vec<Vec<u8>>, run: impl FnMut(&[u8]) -> bool) {
    fuzz_with(target, seeds, true, run)
}

fn fuzz_with(target: &str, seeds: Vec<Vec<u8>>, json: bool, mut run: impl FnMut(&[u8]) -> bool) {
    assert!(!seeds.is_empty(), "{target}: no seeds");
    let base: u64 = std::env::var("PROFUNDO_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let salt = target
        .bytes()
        .fold(base, |h, b| h.rotate_left(5) ^ b as u64);
    let mut m = Mutator {
        rng: StdRng::seed_from_u64(salt),
        seeds: seeds.clone(),
        json,
    };
    let seconds = long_run();
    let start = Instant::now();
    let (mut n, mut accepted, mut failures) = (0usize, 0usize, Vec::new());
    let failures_dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
    loop {
        let done = match seconds {
            Some(s) => start.elapsed().as_secs_f64() >= s,
            None => n >= CASES,
        };
        if done {
            break;
        }
        let input = seeds.get(n).cloned().unwrap_or_else(|| m.next());
        let t = Instant::now();
        let outcome = catch_unwind(AssertUnwindSafe(|| run(&input)));
        let took = t.elapsed();
        accepted += usize::from(matches!(outcome, Ok(true)));
        if outcome.is_err() || took > SLOW {
            std::fs::create_dir_all(&failures_dir).unwrap();
            let saved = failures_dir.join(format!("{target}-{n}.bin"));
            std::fs::write(&saved, &input).unwrap();
            let what = if outcome.is_err() {
                "panicked"
            } else {
                "was slow"
            };
            failures.push(format!(
                "input {n} {what} ({:.1} s), saved as {}",
                took.as_secs_f64(),
                saved.display()
            ));
        }
        n += 1;
    }
    let _ = writeln!(
        std::io::stderr(),
        "fuzz {target}: {n} inputs ({accepted} accepted) in {:.1} s, {} failures",
        start.elapsed().as_secs_f64(),
        failures.len()
    );
    assert!(failures.is_empty(), "{target}:\n{}", failures.join("\n"));
}

/// Writes `bytes` to `dir/name` (the parsers that take paths), returning the path.
fn file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

fn wav_seed(channels: u16, bits: u16, float: bool, rate: u32) -> Vec<u8> {
    let x: Vec<f32> = (0..200).map(|i| (i as f32 * 0.07).sin() * 0.5).collect();
    wav_bytes(&x, rate, channels, float, bits)
}

#[test]
fn fuzz_wav_reader_and_resampler() {
    let shipped = std::fs::read(repo().join("datasets/fsdd/recordings/3_theo_0.wav")).unwrap();
    let seeds = vec![
        shipped,
        wav_seed(1, 16, false, 8000),
        wav_seed(2, 24, false, 44_100),
        wav_seed(1, 32, true, 48_000),
        wav_seed(3, 8, false, 16_000),
    ];
    fuzz("wav", seeds, |b| {
        match profundo_speech::wav::decode_wav(b, Path::new("fuzz.wav")) {
            Ok(a) => profundo_speech::resample::resample(&a.samples, a.sample_rate, 8000).is_ok(),
            Err(_) => false,
        }
    });
}

fn image_seed(format: image::ImageFormat) -> Vec<u8> {
    let img = image::RgbImage::from_fn(12, 10, |x, y| {
        image::Rgb([(x * 20) as u8, (y * 25) as u8, 90])
    });
    let img = if format == image::ImageFormat::Pnm {
        image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(img).to_luma8())
    } else {
        image::DynamicImage::ImageRgb8(img)
    };
    let mut out = Vec::new();
    img.write_to(&mut std::io::Cursor::new(&mut out), format)
        .unwrap();
    out
}

#[test]
fn fuzz_image_decoder() {
    use image::ImageFormat::*;
    let seeds = [Png, Jpeg, Gif, Bmp, Pnm].map(image_seed).to_vec();
    fuzz(
        "image",
        seeds,
        |b| match profundo_core::image_file::decode(b, Path::new("fuzz.png")) {
            Ok(img) => !profundo_perception::picture::to_input(&img.to_rgb8(), None, 16).is_empty(),
            Err(_) => false,
        },
    );
}

/// Every stage kind the binary knows (as `profundo`'s own registry).
fn registry() -> profundo_pipeline::Registry {
    let mut reg = profundo_pipeline::Registry::new();
    profundo_pipeline::stages::register(&mut reg);
    profundo_speech::register(&mut reg);
    profundo_faces::register(&mut reg);
    profundo_recommend::register(&mut reg);
    profundo_translate::register(&mut reg);
    profundo_perception::register(&mut reg);
    reg
}

#[test]
fn fuzz_pipeline_toml() {
    let mut seeds = Vec::new();
    for e in std::fs::read_dir(repo().join("pipelines")).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "toml") {
            seeds.push(std::fs::read(p).unwrap());
        }
    }
    seeds.sort();
    let reg = registry();
    let file = repo().join("pipelines/fuzz.toml");
    fuzz("pipeline", seeds, |b| {
        let text = String::from_utf8_lossy(b);
        profundo_pipeline::spec::parse(&text, &file, &reg, &[]).is_ok()
    });
}

#[test]
fn fuzz_gallery_json() {
    let tmp = tempfile::tempdir().unwrap();
    let gallery = r#"{
  "format": 1,
  "model_id": "0e962c167f678bd8",
  "embedding_dim": 3,
  "people": [
    {"name": "ada", "images": [{"image": "a.png", "embedding": [0.6, 0.8, 0.0]},
                               {"image": "b.png", "embedding": [0.0, 1.0, 0.0]}]},
    {"name": "alan", "images": [{"image": "c.png", "embedding": [1.0, 0.0, 0.0]}]}
  ]
}"#;
    let seeds = vec![gallery.as_bytes().to_vec()];
    fuzz_json("gallery", seeds, |b| {
        let p = file(tmp.path(), "gallery.json", b);
        match profundo_faces::gallery::Gallery::load(&p, Some(("0e962c167f678bd8", 3))) {
            Ok(g) => {
                let _ = g.identify(&[0.6, 0.8, 0.0], 0.5);
                !g.names().is_empty()
            }
            Err(_) => false,
        }
    });
}

#[test]
fn fuzz_model_manifests() {
    let m = crate::serve::models();
    let manifest = |run: &str| std::fs::read(Path::new(run).join("model/manifest.json")).unwrap();
    let seeds = vec![
        manifest(&m.speech),
        manifest(&m.translate),
        manifest(&m.recommend),
        manifest(&m.faces),
    ];
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fuzz_json("manifest", seeds, |b| {
        file(dir, "manifest.json", b);
        let any = PassThroughManifest::load_any(dir).is_ok();
        let typed = [
            profundo_speech::train::SpeechManifest::load(dir).is_ok(),
            profundo_translate::translator::TranslatorManifest::load(dir).is_ok(),
            profundo_recommend::model_dir::RecommenderManifest::load(dir).is_ok(),
            profundo_perception::train::SignManifest::load(dir).is_ok(),
        ];
        any && typed.contains(&true)
    });
}

#[test]
fn fuzz_rating_tables() {
    use profundo_recommend::table::{Format, TableSpec, read_table};
    let csv = b"user,item,rating,timestamp\n1,10,4,100\n2,10,3.5,101\n2,11,5,102\n3,12,1,103\n";
    let tsv = b"1\t10\t4\t881250949\n2\t10\t3\t881250950\n3\t11\t5\t881250951\n";
    let dat = b"1::10::4::978300760\n2::10::3::978300761\n3::11::5::978300762\n";
    let seeds = vec![csv.to_vec(), tsv.to_vec(), dat.to_vec()];
    let tmp = tempfile::tempdir().unwrap();
    let spec = TableSpec::default();
    fuzz("ratings", seeds, |b| {
        let p = file(tmp.path(), "ratings.csv", b);
        [Format::Csv, Format::Ml100k, Format::Dat]
            .into_iter()
            .map(|format| read_table(&p, format, &spec).is_ok())
            .fold(false, |a, b| a | b)
    });
}

#[test]
fn fuzz_tokenizer_file_and_text() {
    use profundo_translate::tokenizer::Subword;
    let m = crate::serve::models();
    let tokenizer = std::fs::read(Path::new(&m.translate).join("model/tokenizer.json")).unwrap();
    let langs = ["en".to_string(), "es".to_string()];
    let tmp = tempfile::tempdir().unwrap();
    let good = Subword::open(&file(tmp.path(), "good.json", &tokenizer), &langs).unwrap();
    // The tokenizer file itself.
    fuzz_json("tokenizer-file", vec![tokenizer], |b| {
        Subword::open(&file(tmp.path(), "tokenizer.json", b), &langs).is_ok()
    });
    // Text to encode, and token ids to decode.
    let texts = [
        "el perro come la comida.",
        "¿Dónde está la estación? 👋🏽",
        "مرحبا بالعالم שלום",
        "...!!!???",
        "a\u{0}b\u{200b}c\r\n\t",
    ];
    let seeds = texts.iter().map(|t| t.as_bytes().to_vec()).collect();
    let vocab = good.vocab_size() as u32;
    fuzz("tokenizer-text", seeds, |b| {
        let text = String::from_utf8_lossy(b);
        let ids: Vec<u32> = b.iter().map(|&x| x as u32 * 7 % (vocab + 10)).collect();
        let decoded = good.decode(&ids).is_ok();
        good.encode(&text).is_ok() && decoded
    });
}
