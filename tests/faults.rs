//! Faults lose nothing: a run killed with SIGKILL in the middle of training, in every
//! domain, continues from its checkpoint when it is simply run again and ends where an
//! uninterrupted run ends; a full disk fails naming the path and leaves the finished run
//! and the stage cache as they were; files are written readable by others.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::util::*;

/// Every file called `name` under `dir`.
fn files_named(dir: &Path, name: &str, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_named(&p, name, out);
        } else if p.file_name().is_some_and(|n| n == name) {
            out.push(p);
        }
    }
}

/// Whether some training under `runs` is under way and has saved progress: a checkpoint
/// (`state.json`) of an unfinished training after at least one epoch, or a fold fitted
/// (`fold-*/manifest.json`) inside a stage's work folder (recommendation saves per fold).
fn progress_saved(runs: &Path) -> bool {
    let mut states = Vec::new();
    files_named(runs, "state.json", &mut states);
    let unfinished_epoch = states.iter().any(|p| {
        std::fs::read_to_string(p)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .is_some_and(|s| s["finished"] == false && s["epochs_done"].as_u64() >= Some(1))
    });
    let mut manifests = Vec::new();
    files_named(runs, "manifest.json", &mut manifests);
    let fold_fitted = manifests.iter().any(|p| {
        let s = p.to_string_lossy();
        s.contains(".work/") && s.contains("/fold-")
    });
    unfinished_epoch || fold_fitted
}

/// `v` without the values that measure time (seconds, minutes), which differ between any
/// two runs.
fn timeless(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| {
                    !["seconds", "minutes", "elapsed", "time_s", "per_s"]
                        .iter()
                        .any(|t| k.contains(t))
                        && !k.ends_with("_s")
                })
                .map(|(k, x)| (k.clone(), timeless(x)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(timeless).collect()),
        other => other.clone(),
    }
}

/// The one run directory of `runs/<name>/` (the one with a `status.json`).
fn the_run(runs: &Path, name: &str) -> PathBuf {
    std::fs::read_dir(runs.join(name))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("status.json").is_file() && !p.ends_with("latest"))
        .unwrap_or_else(|| panic!("no run under {}", runs.join(name).display()))
}

/// Every log of a run directory, concatenated.
fn logs(run: &Path) -> String {
    let mut text = String::new();
    for e in std::fs::read_dir(run.join("logs")).unwrap().flatten() {
        text.push_str(&std::fs::read_to_string(e.path()).unwrap_or_default());
    }
    text
}

/// Runs `pipeline` (named `name`) without interruption; runs it again into another runs
/// folder, kills that with SIGKILL once training has saved progress, and runs it a third
/// time there, as a user would. Returns the metrics of the uninterrupted and of the
/// continued run, and the continued run's logs.
fn kill_and_run_again(dir: &Path, pipeline: &Path, name: &str) -> (Value, Value, String) {
    let p = pipeline.to_str().unwrap();
    let reference = metrics(&run_dir(&ok(dir, &["run", p, "--runs-dir", "whole"]), dir));

    let runs = dir.join("killed");
    let mut child = Command::new(env!("CARGO_BIN_EXE_profundo"))
        .args(["-q", "run", p, "--runs-dir", "killed"])
        .current_dir(dir)
        .env("PROFUNDO_DATA", data_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !progress_saved(&runs) {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{name}: the run finished before training saved any progress; make it longer"
        );
        assert!(
            t0.elapsed() < Duration::from_secs(600),
            "{name}: no progress saved"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed = the_run(&runs, name);
    assert!(
        !killed.join("metrics.json").exists(),
        "{name}: the run was killed after it finished; make it longer"
    );

    let again = ok(dir, &["run", p, "--runs-dir", "killed"]);
    let run = run_dir(&again, dir);
    assert_ne!(run, killed, "a new run directory");
    (reference, metrics(&run), logs(&run))
}

/// Asserts the continued run said it resumed and ended with the uninterrupted metrics.
fn assert_resumed(domain: &str, (reference, resumed, log): (Value, Value, String), said: &str) {
    assert!(
        log.contains(said),
        "{domain}: `{said}` not in the logs:\n{log}"
    );
    assert_eq!(
        timeless(&resumed),
        timeless(&reference),
        "{domain}: the run continued after a kill must end as the uninterrupted run"
    );
}

#[test]
fn speech_killed_mid_training_continues_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wav = tiny_fsdd(dir, &["jackson", "theo"], 8);
    let p = write(dir, "speech.toml", &tiny_pipeline("kill-speech", &wav, 8));
    let out = kill_and_run_again(dir, &p, "kill-speech");
    assert_resumed("speech", out, "resumed from the checkpoint after epoch");
}

#[test]
fn faces_killed_mid_training_continues_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = crate::faces::synthetic_faces(dir, 6, 6);
    let text = crate::faces::tiny_faces_pipeline(&root).replace("epochs = 6", "epochs = 10");
    let p = write(dir, "faces.toml", &text);
    let out = kill_and_run_again(dir, &p, "tiny-faces");
    assert_resumed("faces", out, "resumed from the checkpoint after epoch");
}

#[test]
fn signs_killed_mid_training_continues_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = crate::perception::synthetic_signs(dir, 12, 4);
    let text = crate::perception::tiny_signs_pipeline(&root);
    let p = write(dir, "signs.toml", &text);
    let out = kill_and_run_again(dir, &p, "tiny-signs");
    assert_resumed("perception", out, "resumed from the checkpoint after epoch");
}

#[test]
fn translation_killed_mid_training_continues_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let p = crate::translate::tiny_pipeline(dir, 1_500, 4);
    let out = kill_and_run_again(dir, &p, "translate-tiny");
    assert_resumed("translation", out, "training resumed from the checkpoint");
}

#[test]
fn recommendation_killed_mid_training_continues_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ratings = repo().join("datasets/movietweetings-10k/ratings.dat");
    let text = format!(
        r#"[pipeline]
name = "kill-recs"
seed = 4

[stages.ratings]
kind = "recommend.load_ratings"
path = "{}"
scale = [0, 10]

[stages.split]
kind = "recommend.split"
inputs = ["ratings"]
method = "random"
folds = 4

[stages.mf]
kind = "recommend.train"
inputs = ["ratings", "split"]
model = "mf"
training = {{ factors = 16, epochs = 12, batch_size = 256, lr = 0.005, reg = 0.5 }}

[stages.eval]
kind = "recommend.evaluate"
inputs = {{ ratings = "ratings", split = "split", model = "mf" }}
"#,
        ratings.display()
    );
    let p = write(dir, "recs.toml", &text);
    let out = kill_and_run_again(dir, &p, "kill-recs");
    assert_resumed("recommendation", out, "already fitted (resumed run)");
}

/// A tmpfs mounted for a test's duration (needs root), unmounted when dropped.
struct Tmpfs(std::ffi::CString);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (e.g. `16m`) at `at`, or `None` when this process may not.
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let c = |s: &str| std::ffi::CString::new(s).unwrap();
        let target = c(at.to_str().unwrap());
        let (kind, options) = (c("tmpfs"), c(&format!("size={size}")));
        // SAFETY: every pointer is a valid NUL-terminated string that outlives the call.
        let r = unsafe {
            libc::mount(
                kind.as_ptr(),
                target.as_ptr(),
                kind.as_ptr(),
                0,
                options.as_ptr().cast(),
            )
        };
        (r == 0).then_some(Tmpfs(target))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // SAFETY: the path is a valid NUL-terminated string.
        unsafe { libc::umount2(self.0.as_ptr(), libc::MNT_DETACH) };
    }
}

/// Every file under `dir` (relative path -> content).
fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let kind = e.file_type().unwrap();
            if kind.is_dir() {
                stack.push(p);
            } else if kind.is_file() {
                let rel = p.strip_prefix(dir).unwrap().to_path_buf();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// Fills the filesystem holding `dir` until `keep` bytes are left, with `dir/filler`.
fn fill_disk(dir: &Path, keep: u64) -> PathBuf {
    use std::io::Write;
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let block = vec![0u8; 64 << 10];
    let mut written = 0u64;
    while f.write_all(&block).is_ok() {
        written += block.len() as u64;
    }
    let _ = f.flush();
    f.set_len(written.saturating_sub(keep)).unwrap();
    path
}

#[test]
fn a_full_disk_fails_naming_the_path_and_keeps_the_finished_run_and_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let disk = dir.join("disk");
    let Some(_mounted) = Tmpfs::mount(&disk, "16m") else {
        use std::io::Write;
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED faults::a_full_disk_fails...: mounting a small tmpfs needs root"
        );
        return;
    };
    let runs = disk.join("runs");
    let runs_arg = runs.to_str().unwrap();
    let wav = tiny_fsdd(dir, &["jackson", "theo"], 2);
    let p = write(dir, "speech.toml", &tiny_pipeline("full-disk", &wav, 2));
    let p = p.to_str().unwrap();
    let first = run_dir(&ok(dir, &["run", p, "--runs-dir", runs_arg]), dir);
    let before = snapshot(&runs.join("full-disk"));

    // Every stage again (--force) on a disk with 32 KB left.
    let filler = fill_disk(&disk, 32 << 10);
    let o = profundo(dir, &["run", p, "--runs-dir", runs_arg, "--force"]);
    assert!(!o.ok, "a run on a full disk must fail:\n{}", o.all());
    assert!(
        o.stderr.contains("No space left on device") && o.stderr.contains(runs_arg),
        "the message names the problem and the path:\n{}",
        o.stderr
    );

    // The finished run and the cache are as they were (the failed run may add files; the
    // lock file names its holder).
    let after = snapshot(&runs.join("full-disk"));
    for (file, content) in before.iter().filter(|(f, _)| !f.ends_with(".lock")) {
        assert!(
            after.get(file) == Some(content),
            "{} changed or vanished after the failed run",
            file.display()
        );
    }
    let status = std::fs::read_to_string(first.join("status.json")).unwrap();
    assert!(status.contains("\"finished\""), "{status}");

    // With space again, a plain run takes every stage from the cache.
    std::fs::remove_file(filler).unwrap();
    let again = run_dir(&ok(dir, &["run", p, "--runs-dir", runs_arg]), dir);
    let outcomes = stage_outcomes(&again);
    assert!(
        outcomes
            .iter()
            .all(|(_, o)| o == "cached" || o == "not needed")
            && outcomes.contains(&("train".to_string(), "cached".to_string())),
        "every stage from the intact cache: {outcomes:?}"
    );
}

#[test]
fn written_files_are_readable_by_others() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let wav = tiny_fsdd(dir, &["jackson", "theo"], 2);
    let p = write(dir, "speech.toml", &tiny_pipeline("modes", &wav, 1));
    let run = run_dir(&ok(dir, &["run", p.to_str().unwrap()]), dir);
    for name in [
        "metrics.json",
        "model/manifest.json",
        "model/model.safetensors",
    ] {
        let mode = std::fs::metadata(run.join(name))
            .unwrap()
            .permissions()
            .mode();
        assert!(
            mode & 0o044 == 0o044,
            "{name} has mode {mode:o}; others cannot read it"
        );
    }
}

#[test]
fn a_shipped_recommendation_pipeline_repeats_exactly_with_the_same_seed() {
    let tmp = tempfile::tempdir().unwrap();
    let pipeline = "pipelines/recommend-movietweetings.toml";
    let a = metrics(&run_shipped_in(pipeline, &[], &tmp.path().join("a")));
    let b = metrics(&run_shipped_in(pipeline, &[], &tmp.path().join("b")));
    assert_eq!(timeless(&a), timeless(&b), "same seed, same metrics");
}
