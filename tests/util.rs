//! Helpers for the regression suite: run the real binary in throw-away directories.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The repository root, as cargo sets it when it runs the tests. The compile-time value is
/// only the fallback: a build cache shared between checkouts can hold a test binary that was
/// compiled in another, since removed, one.
pub fn repo() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

/// The data folder the binary reads non-shipped datasets from: `$PROFUNDO_DATA`, else the
/// platform's data directory (what `profundo data fetch` fills).
pub fn data_dir() -> PathBuf {
    profundo_data::data_dir()
}

/// The prefix of every test that needs a dataset the repository does not ship; the
/// fresh-clone test (tests/data.rs) runs them all with an empty data folder.
pub const NEEDS_DATA: &str = "needs_data_";

/// The folder of the catalogued dataset `name` when every file of it is there. When it is
/// not: with `PROFUNDO_REQUIRE_DATA=1` (as `.ci/run` sets) the test fails naming the
/// dataset; otherwise one `SKIPPED` line goes to standard error (past the test harness's
/// capture, so `cargo test` shows it) and the caller returns early.
pub fn dataset(name: &str) -> Option<PathBuf> {
    use std::io::Write;
    let catalog = profundo_data::Catalog::builtin().expect("the compiled-in catalogue");
    let d = catalog.get(name).expect("a catalogued dataset");
    let at = d.location();
    if profundo_data::verify::present_at(d, &at).expect("its manifest") {
        return Some(at);
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let why = format!(
        "dataset `{name}` ({}) is not at {}; {}",
        d.title,
        at.display(),
        d.fetch_hint()
    );
    if profundo_data::location::data_required() {
        panic!(
            "{why} ({}=1 makes a missing dataset a failure)",
            profundo_data::REQUIRE_ENV
        );
    }
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
    None
}

/// The result of one `profundo` invocation.
#[derive(Debug)]
pub struct Out {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    /// stdout and stderr together, for assertions on messages.
    pub fn all(&self) -> String {
        format!("{}\n{}", self.stdout, self.stderr)
    }
}

/// Runs `profundo args...` in `cwd`.
pub fn profundo(cwd: &Path, args: &[&str]) -> Out {
    profundo_with_data(cwd, args, &data_dir())
}

/// The `profundo` command, logging at info level, with `data` as its data folder.
pub fn command(cwd: &Path, args: &[&str], data: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_profundo"));
    c.args(args)
        .current_dir(cwd)
        .env("PROFUNDO_LOG", "info")
        .env("PROFUNDO_DATA", data);
    c
}

/// Runs `profundo args...` in `cwd` with `data` as its data folder.
pub fn profundo_with_data(cwd: &Path, args: &[&str], data: &Path) -> Out {
    let out = command(cwd, args, data)
        .output()
        .expect("failed to start profundo");
    let o = Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    assert!(
        !o.stderr.contains("panicked"),
        "profundo panicked: {}",
        o.stderr
    );
    o
}

/// Runs and asserts success.
pub fn ok(cwd: &Path, args: &[&str]) -> Out {
    let o = profundo(cwd, args);
    assert!(o.ok, "profundo {args:?} failed:\n{}", o.all());
    o
}

/// Runs and asserts failure whose message contains every one of `needles`.
pub fn fails_with(cwd: &Path, args: &[&str], needles: &[&str]) -> Out {
    let o = profundo(cwd, args);
    assert!(!o.ok, "profundo {args:?} should have failed:\n{}", o.all());
    for n in needles {
        assert!(
            o.stderr.contains(n),
            "profundo {args:?}: expected `{n}` in the error:\n{}",
            o.stderr
        );
    }
    o
}

/// Copies `takes` takes of every digit for `speakers` from the shipped FSDD into `dir/wav`.
pub fn tiny_fsdd(dir: &Path, speakers: &[&str], takes: usize) -> PathBuf {
    let src = repo().join("datasets/fsdd/recordings");
    let dest = dir.join("wav");
    std::fs::create_dir_all(&dest).unwrap();
    for s in speakers {
        for d in 0..10 {
            for t in 0..takes {
                let name = format!("{d}_{s}_{t}.wav");
                std::fs::copy(src.join(&name), dest.join(&name)).unwrap();
            }
        }
    }
    dest
}

/// A small but complete pipeline over `wav_dir`: hold out `theo`, tiny CNN, few epochs.
pub fn tiny_pipeline(name: &str, wav_dir: &Path, epochs: usize) -> String {
    format!(
        r#"[pipeline]
name = "{name}"
seed = 7

[stages.audio]
kind = "speech.load_wav"
path = "{wav}"

[stages.split]
kind = "split.by_group"
inputs = ["audio"]
test_groups = ["theo"]

[stages.features]
kind = "speech.log_mel"
inputs = ["audio"]
frames = 32

[stages.train]
kind = "speech.train"
inputs = ["features", "split"]
valid_fraction = 0.2

[stages.train.model]
channels = [8, 16]
dropout = 0.1

[stages.train.training]
epochs = {epochs}
batch_size = 32
lr = 0.005

[stages.eval]
kind = "eval.classification"
inputs = ["train"]

[stages.export]
kind = "export.model"
inputs = ["train", "eval"]
"#,
        wav = wav_dir.display()
    )
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

/// Reads a run's `metrics.json`.
pub fn metrics(run: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("metrics.json")).unwrap()).unwrap()
}

/// `(stage, outcome)` for every stage of a run, from its `status.json` (`ran`, `cached`, ...).
pub fn stage_outcomes(run: &Path) -> Vec<(String, String)> {
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["name"].as_str().unwrap().to_string(),
                s["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// The run directory printed by `profundo run` (`run: PATH`).
pub fn run_dir(out: &Out, cwd: &Path) -> PathBuf {
    let line = out
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("run: "))
        .expect("no `run:` line");
    cwd.join(line.trim())
}

/// Runs a shipped pipeline (path relative to the repository) with `extra` arguments into
/// `runs` and returns the run directory.
pub fn run_shipped_in(pipeline: &str, extra: &[&str], runs: &Path) -> PathBuf {
    let repo = repo();
    let mut args = vec!["run", pipeline, "--runs-dir", runs.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = ok(&repo, &args);
    run_dir(&out, &repo)
}

/// Runs a shipped pipeline into a throw-away runs directory and returns its `metrics.json`.
pub fn run_shipped(pipeline: &str) -> serde_json::Value {
    let tmp = tempfile::tempdir().unwrap();
    metrics(&run_shipped_in(pipeline, &[], tmp.path()))
}

/// A WAV file's bytes written with hound: `channels` copies of each sample of `x` (in
/// [-1, 1]), as 32-bit float or `bits`-bit integers, at `rate` Hz.
pub fn wav_bytes(x: &[f32], rate: u32, channels: u16, float: bool, bits: u16) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels,
        sample_rate: rate,
        bits_per_sample: bits,
        sample_format: if float {
            hound::SampleFormat::Float
        } else {
            hound::SampleFormat::Int
        },
    };
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = hound::WavWriter::new(&mut out, spec).unwrap();
    let full = ((1i64 << (bits - 1)) - 1) as f32;
    for &s in x {
        for _ in 0..channels {
            if float {
                w.write_sample(s).unwrap();
            } else if bits == 8 {
                w.write_sample((s * full) as i8).unwrap();
            } else {
                w.write_sample((s * full) as i32).unwrap();
            }
        }
    }
    w.finalize().unwrap();
    out.into_inner()
}
