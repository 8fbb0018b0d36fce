//! The pipeline engine through the CLI: seeded determinism, resume after a kill,
//! `--until` / `--from` / `--force`, `list` and `validate`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::util::*;

fn setup(name: &str, epochs: usize) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tiny_fsdd(tmp.path(), &["jackson", "theo"], 8);
    let p = write(tmp.path(), "tiny.toml", &tiny_pipeline(name, &wav, epochs));
    (tmp, p)
}

fn state_of(runs: &Path, name: &str) -> Option<serde_json::Value> {
    let cache = runs.join(name).join("cache");
    for e in std::fs::read_dir(cache).ok()?.flatten() {
        let p = e.path().join("checkpoints/theo/state.json");
        if let Ok(t) = std::fs::read_to_string(&p) {
            return serde_json::from_str(&t).ok();
        }
    }
    None
}

#[test]
fn a_killed_run_resumes_to_the_same_result_as_an_uninterrupted_one() {
    let (tmp, pipeline) = setup("tiny-resume", 8);
    let dir = tmp.path();
    let p = pipeline.to_str().unwrap();

    // Uninterrupted reference, twice: same seed, same backend, same metrics.
    let a = ok(dir, &["run", p, "--runs-dir", "ref-a"]);
    let b = ok(dir, &["run", p, "--runs-dir", "ref-b"]);
    let (ma, mb) = (metrics(&run_dir(&a, dir)), metrics(&run_dir(&b, dir)));
    assert_eq!(ma, mb, "seeded runs must give identical metrics");

    // Kill a run after its first checkpoint, then resume it.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_profundo"))
        .args(["-q", "run", p, "--runs-dir", "killed"])
        .current_dir(dir)
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let runs = dir.join("killed");
    loop {
        if let Some(s) = state_of(&runs, "tiny-resume")
            && s["epochs_done"].as_u64().unwrap_or(0) >= 2
        {
            assert_eq!(
                s["finished"], false,
                "the run must be killed mid-training for this test"
            );
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(300),
            "no checkpoint appeared"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the run finished before it could be killed"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let run = std::fs::read_dir(runs.join("tiny-resume"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.join("status.json").is_file())
        .unwrap();
    let status: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("status.json")).unwrap()).unwrap();
    assert_eq!(
        status["state"], "running",
        "a killed run is left unfinished"
    );
    assert!(
        !run.join("metrics.json").exists(),
        "a killed run has no metrics that look complete"
    );

    let resumed = ok(dir, &["run", "--resume", run.to_str().unwrap()]);
    let log = std::fs::read_to_string(run.join("logs/train.log")).unwrap();
    assert!(
        log.contains("resumed from the checkpoint after epoch"),
        "{log}"
    );
    assert_eq!(
        metrics(&run),
        ma,
        "resumed run must reach the uninterrupted result"
    );
    assert!(
        resumed
            .stdout
            .contains(run.file_name().unwrap().to_str().unwrap())
    );

    // Resuming a finished run is an error.
    fails_with(
        dir,
        &["run", "--resume", run.to_str().unwrap()],
        &["finished", "nothing to resume"],
    );
}

#[test]
fn until_from_and_force_select_what_runs() {
    let (tmp, pipeline) = setup("tiny-select", 2);
    let dir = tmp.path();
    let p = pipeline.to_str().unwrap();
    let outcomes = |out: &Out| stage_outcomes(&run_dir(out, dir));
    let until = ok(dir, &["run", p, "--until", "features"]);
    let o = outcomes(&until);
    assert!(
        o.contains(&("features".into(), "ran".into()))
            && o.contains(&("train".into(), "skipped".into())),
        "{o:?}"
    );
    let full = ok(dir, &["run", p]);
    let o = outcomes(&full);
    assert!(
        o.contains(&("features".into(), "cached".into()))
            && o.contains(&("train".into(), "ran".into())),
        "{o:?}"
    );
    let from = ok(dir, &["run", p, "--from", "train"]);
    let o = outcomes(&from);
    assert!(
        o.contains(&("features".into(), "cached".into()))
            && o.contains(&("train".into(), "ran".into()))
            && o.contains(&("eval".into(), "ran".into())),
        "{o:?}"
    );
    let force = ok(dir, &["run", p, "--force"]);
    assert!(
        outcomes(&force).iter().all(|(_, s)| s == "ran"),
        "{:?}",
        outcomes(&force)
    );
    fails_with(dir, &["run", p, "--from", "trian"], &["no stage `trian`"]);
}

#[test]
fn list_and_validate_describe_the_stage_kinds() {
    let repo = repo();
    let out = ok(&repo, &["list"]);
    for kind in [
        "speech.load_wav",
        "speech.log_mel",
        "speech.mfcc",
        "speech.augment",
        "split.by_group",
        "split.by_pattern",
        "speech.train",
        "eval.classification",
        "export.model",
        "faces.load_images",
        "faces.train_embedding",
        "faces.eigenfaces",
        "faces.evaluate",
    ] {
        assert!(out.stdout.contains(kind), "`list` misses {kind}");
    }
    assert!(
        out.stdout.contains("n_mels: integer = 40"),
        "parameters show type and default:\n{}",
        out.stdout
    );
    let json = ok(&repo, &["list", "--json"]);
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(v.as_array().unwrap().len() >= 9);
    for p in std::fs::read_dir(repo.join("pipelines")).unwrap().flatten() {
        ok(&repo, &["validate", p.path().to_str().unwrap()]);
    }
}
