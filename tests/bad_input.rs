//! Bad input is part of the product: each case exits non-zero with a message naming the
//! file and the problem, and never panics (`util::profundo` asserts no panic).

use std::path::Path;

use crate::util::*;

const HEAD: &str = "[pipeline]\nname = \"bad\"\n\n";

fn stage_audio(path: &str) -> String {
    format!("[stages.audio]\nkind = \"speech.load_wav\"\npath = \"{path}\"\n\n")
}

fn validate_fails(text: &str, needles: &[&str]) {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "bad.toml", text);
    let mut all = vec!["bad.toml"];
    all.extend_from_slice(needles);
    fails_with(tmp.path(), &["validate", p.to_str().unwrap()], &all);
    // `run` validates the same way before doing anything.
    fails_with(
        tmp.path(),
        &["run", p.to_str().unwrap(), "--runs-dir", "runs"],
        &all,
    );
    assert!(
        !tmp.path().join("runs").exists(),
        "nothing may run on an invalid pipeline"
    );
}

#[test]
fn malformed_toml_names_the_line() {
    validate_fails(
        &format!("{HEAD}[stages.audio\nkind = \"speech.load_wav\"\n"),
        &["bad.toml:4", "invalid TOML"],
    );
}

#[test]
fn unknown_stage_kind_suggests_the_nearest() {
    validate_fails(
        &format!(
            "{HEAD}{}[stages.f]\nkind = \"speech.logmel\"\ninputs = [\"audio\"]\n",
            stage_audio("x")
        ),
        &[
            "bad.toml:9",
            "unknown stage kind `speech.logmel`",
            "did you mean `speech.log_mel`?",
        ],
    );
}

#[test]
fn unknown_parameter_names_line_and_suggests() {
    validate_fails(
        &format!(
            "{HEAD}{}[stages.f]\nkind = \"speech.log_mel\"\ninputs = [\"audio\"]\nn_mel = 40\n",
            stage_audio("x")
        ),
        &[
            "bad.toml:11",
            "unknown field `n_mel`",
            "did you mean `n_mels`?",
        ],
    );
}

#[test]
fn wrong_type_names_the_parameter() {
    validate_fails(
        &format!(
            "{HEAD}{}[stages.f]\nkind = \"speech.log_mel\"\ninputs = [\"audio\"]\nframes = \"many\"\n",
            stage_audio("x")
        ),
        &["bad.toml:11", "`frames`", "invalid type"],
    );
}

#[test]
fn missing_and_misspelled_inputs() {
    validate_fails(
        &format!(
            "{HEAD}{}[stages.f]\nkind = \"speech.log_mel\"\ninputs = [\"audoi\"]\n",
            stage_audio("x")
        ),
        &[
            "bad.toml:10",
            "input `audoi` is not a stage",
            "did you mean `audio`?",
        ],
    );
    validate_fails(
        &format!(
            "{HEAD}{}[stages.f]\nkind = \"speech.log_mel\"\n",
            stage_audio("x")
        ),
        &["missing input `audio`"],
    );
}

#[test]
fn wrong_artifact_type_is_caught_before_running() {
    validate_fails(
        &format!(
            "{HEAD}{}[stages.split]\nkind = \"split.by_group\"\ninputs = [\"audio\"]\nleave_one_out = true\n\n[stages.train]\nkind = \"speech.train\"\ninputs = [\"audio\", \"split\"]\n",
            stage_audio("x")
        ),
        &["input `features` expects `features` but stage `audio` produces `audio`"],
    );
}

#[test]
fn cycles_are_reported() {
    validate_fails(
        &format!(
            "{HEAD}[stages.a]\nkind = \"speech.augment\"\ninputs = [\"b\"]\n\n[stages.b]\nkind = \"speech.augment\"\ninputs = [\"a\"]\n"
        ),
        &["cycle between stages a, b"],
    );
}

#[test]
fn unset_environment_variable_is_named() {
    validate_fails(
        &format!("{HEAD}{}", stage_audio("${PROFUNDO_SURELY_UNSET_VAR}/wav")),
        &[
            "bad.toml:6",
            "environment variable `PROFUNDO_SURELY_UNSET_VAR` is not set",
        ],
    );
}

fn run_audio(dir: &Path, text: &str) -> Out {
    let p = write(dir, "p.toml", text);
    // `--until split` runs only loading and splitting.
    profundo(
        dir,
        &[
            "run",
            p.to_str().unwrap(),
            "--runs-dir",
            "runs",
            "--until",
            "split",
        ],
    )
}

fn audio_pipeline(wav: &Path, extra: &str) -> String {
    format!(
        "{HEAD}[stages.audio]\nkind = \"speech.load_wav\"\npath = \"{}\"\n{extra}\n[stages.split]\nkind = \"split.by_group\"\ninputs = [\"audio\"]\ntest_groups = [\"theo\"]\n",
        wav.display()
    )
}

#[test]
fn missing_or_empty_dataset_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("nowhere");
    let o = run_audio(tmp.path(), &audio_pipeline(&missing, ""));
    assert!(
        !o.ok && o.stderr.contains("nowhere") && o.stderr.contains("does not exist"),
        "{}",
        o.stderr
    );
    let empty = tmp.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let o = run_audio(tmp.path(), &audio_pipeline(&empty, ""));
    assert!(
        !o.ok && o.stderr.contains("empty") && o.stderr.contains("no .wav files"),
        "{}",
        o.stderr
    );
}

#[test]
fn extra_dataset_directories_are_checked_and_their_clips_kept_out_of_testing() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tiny_fsdd(tmp.path(), &["jackson", "theo"], 2);
    let extra = tmp.path().join("synthetic");
    std::fs::create_dir(&extra).unwrap();
    for d in 0..10 {
        std::fs::copy(
            wav.join(format!("{d}_jackson_0.wav")),
            extra.join(format!("{d}_tts01_0.wav")),
        )
        .unwrap();
    }
    let split = "[stages.split]\nkind = \"split.by_group\"\ninputs = [\"audio\"]\n";
    let pipeline = |extra_paths: &str, split_params: &str| {
        format!(
            "{HEAD}[stages.audio]\nkind = \"speech.load_wav\"\npath = \"{}\"\nextra_paths = [{extra_paths}]\n\n{split}{split_params}\n",
            wav.display()
        )
    };
    let quoted = format!("\"{}\"", extra.display());
    let o = run_audio(
        tmp.path(),
        &pipeline(
            &quoted,
            "leave_one_out = true\ntrain_only_groups = \"tts.*\"\n",
        ),
    );
    assert!(o.ok, "{}", o.all());
    assert!(o.stderr.contains("50 clips"), "{}", o.stderr);
    for speaker in ["jackson", "theo"] {
        assert!(
            o.stderr
                .contains(&format!("fold {speaker}: 30 train items, 20 test items")),
            "{}",
            o.stderr
        );
    }
    assert!(!o.stderr.contains("fold tts01"), "{}", o.stderr);
    // A synthetic voice cannot be the test set.
    let o = run_audio(
        tmp.path(),
        &pipeline(
            &quoted,
            "test_groups = [\"tts01\"]\ntrain_only_groups = \"tts.*\"\n",
        ),
    );
    assert!(
        !o.ok && o.stderr.contains("matches train_only_groups"),
        "{}",
        o.all()
    );
    // A missing extra directory is named.
    let missing = format!("\"{}\"", tmp.path().join("nowhere").display());
    let o = run_audio(tmp.path(), &pipeline(&missing, "leave_one_out = true\n"));
    assert!(
        !o.ok && o.stderr.contains("nowhere") && o.stderr.contains("does not exist"),
        "{}",
        o.all()
    );
    // The same clip name in two directories is ambiguous.
    std::fs::copy(wav.join("3_theo_1.wav"), extra.join("3_theo_1.wav")).unwrap();
    let o = run_audio(tmp.path(), &pipeline(&quoted, "leave_one_out = true\n"));
    assert!(
        !o.ok && o.stderr.contains("3_theo_1") && o.stderr.contains("occurs twice"),
        "{}",
        o.all()
    );
}

/// Adds the three kinds of broken WAV to a dataset directory.
fn add_broken(wav: &Path) {
    std::fs::write(wav.join("1_theo_90.wav"), b"").unwrap();
    std::fs::write(wav.join("2_theo_91.wav"), b"just some text, not audio\n").unwrap();
    let good = std::fs::read(wav.join("3_theo_0.wav")).unwrap();
    std::fs::write(wav.join("3_theo_92.wav"), &good[..good.len() / 3]).unwrap();
}

#[test]
fn corrupt_clips_are_skipped_with_a_count_or_stop_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let wav = tiny_fsdd(tmp.path(), &["jackson", "theo"], 5);
    add_broken(&wav);
    let o = run_audio(tmp.path(), &audio_pipeline(&wav, ""));
    assert!(o.ok, "{}", o.all());
    assert!(o.stderr.contains("3 of 103 files skipped"), "{}", o.stderr);
    for f in ["1_theo_90.wav", "2_theo_91.wav", "3_theo_92.wav"] {
        assert!(o.stderr.contains(f), "warning names {f}: {}", o.stderr);
    }
    assert!(
        o.stderr.contains("empty file")
            && o.stderr.contains("not a WAV file")
            && o.stderr.contains("truncated"),
        "{}",
        o.stderr
    );
    let o = run_audio(
        tmp.path(),
        &audio_pipeline(&wav, "max_bad_fraction = 0.01\n"),
    );
    assert!(
        !o.ok && o.stderr.contains("too many bad files") && o.stderr.contains("3 of 103"),
        "{}",
        o.stderr
    );
}

#[test]
fn apps_reject_bad_wavs_and_non_model_directories() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let not_model = dir.join("not-a-model");
    std::fs::create_dir(&not_model).unwrap();
    let clip = repo().join("datasets/fsdd/recordings/0_george_0.wav");
    fails_with(
        dir,
        &[
            "speech",
            "recognize",
            "--model",
            not_model.to_str().unwrap(),
            clip.to_str().unwrap(),
        ],
        &["not-a-model", "not a model directory", "manifest.json"],
    );
    fails_with(
        dir,
        &[
            "speech",
            "recognize",
            "--model",
            "does/not/exist",
            clip.to_str().unwrap(),
        ],
        &["does/not/exist", "does not exist"],
    );

    // A tiny trained model to feed bad clips to.
    let wav = tiny_fsdd(dir, &["jackson", "theo"], 3);
    let p = write(dir, "tiny.toml", &tiny_pipeline("tiny-app", &wav, 1));
    let out = ok(dir, &["run", p.to_str().unwrap()]);
    let run = run_dir(&out, dir);
    let model = run.to_str().unwrap();
    std::fs::write(dir.join("zero.wav"), b"").unwrap();
    std::fs::write(dir.join("text.wav"), b"hello, I am text\n").unwrap();
    let good = std::fs::read(&clip).unwrap();
    std::fs::write(dir.join("cut.wav"), &good[..good.len() / 2]).unwrap();
    for (f, why) in [
        ("zero.wav", "empty file"),
        ("text.wav", "not a WAV file"),
        ("cut.wav", "truncated"),
    ] {
        fails_with(
            dir,
            &["speech", "recognize", "--model", model, f],
            &[f, why],
        );
    }
    // 64-bit float samples: a valid WAV we do not read.
    let mut b = Vec::new();
    b.extend_from_slice(b"RIFF");
    b.extend_from_slice(&52u32.to_le_bytes());
    b.extend_from_slice(b"WAVEfmt ");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&3u16.to_le_bytes());
    b.extend_from_slice(&1u16.to_le_bytes());
    b.extend_from_slice(&8000u32.to_le_bytes());
    b.extend_from_slice(&64000u32.to_le_bytes());
    b.extend_from_slice(&8u16.to_le_bytes());
    b.extend_from_slice(&64u16.to_le_bytes());
    b.extend_from_slice(b"data");
    b.extend_from_slice(&16u32.to_le_bytes());
    b.extend_from_slice(&[0u8; 16]);
    std::fs::write(dir.join("f64.wav"), b).unwrap();
    let o = fails_with(
        dir,
        &["speech", "recognize", "--model", model, "f64.wav"],
        &["f64.wav"],
    );
    assert!(
        o.stderr.to_lowercase().contains("unsupported"),
        "{}",
        o.stderr
    );
    // A good clip next to a bad one: the good one is still answered.
    let o = profundo(
        dir,
        &[
            "speech",
            "recognize",
            "--model",
            model,
            clip.to_str().unwrap(),
            "zero.wav",
        ],
    );
    assert!(
        !o.ok && o.stdout.contains("0_george_0.wav") && o.stderr.contains("1 of 2 file(s)"),
        "{}",
        o.all()
    );
}
