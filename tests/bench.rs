//! `profundo bench models`: the rows it prints (timings are measured, never asserted).

use crate::util::{fails_with, ok};

#[test]
fn bench_models_prints_one_row_per_model_backend_and_measure() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "bench",
        "models",
        "--models",
        "recommend-mf,speech-cnn",
        "--no-pytorch",
        "--rounds",
        "3",
        "--seconds",
        "0",
        "--json",
    ];
    let out = ok(dir.path(), &args);
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    let keys: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| r[k].as_str().unwrap().to_string();
            (s("model"), s("backend"), s("measure"))
        })
        .collect();
    let expected: Vec<(String, String, String)> = ["recommend-mf", "speech-cnn"]
        .iter()
        .flat_map(|m| {
            ["train step", "infer 1", "infer batch"]
                .iter()
                .map(move |x| (m.to_string(), "flex".to_string(), x.to_string()))
        })
        .collect();
    assert_eq!(keys, expected);
    for r in &rows {
        assert!(r["profundo_ms"].as_f64().unwrap() > 0.0, "{r}");
        assert!(r["pytorch_ms"].is_null() && r["ratio"].is_null(), "{r}");
        assert!(r["ratio_lo"].is_null() && r["ratio_hi"].is_null() && r["verdict"].is_null());
        assert!(r["profundo_peak_mib"].as_f64().unwrap() > 0.0, "{r}");
        // FLOP rates for the CNN only; the factorisation rows are memory-bound.
        let cnn = r["model"] == "speech-cnn";
        assert_eq!(r["profundo_gflops"].is_number(), cnn, "{r}");
    }
    assert_eq!(rows[4]["batch"], 1);
    assert_eq!(rows[5]["batch"], 64);
}

#[test]
fn bench_models_without_pytorch_says_so_and_unknown_models_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = ok(
        dir.path(),
        &[
            "bench",
            "models",
            "--models",
            "recommend-mf",
            "--python",
            "/nonexistent/python",
            "--rounds",
            "3",
            "--seconds",
            "0",
        ],
    );
    assert!(
        out.stdout.contains("profundo's numbers only"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains("| recommend-mf | flex | train step | 512 |"),
        "{}",
        out.stdout
    );
    fails_with(
        dir.path(),
        &["bench", "models", "--models", "bert"],
        &["unknown model `bert`"],
    );
}

#[test]
fn bench_models_on_cuda_needs_the_tch_backend_and_a_valid_device_name() {
    let dir = tempfile::tempdir().unwrap();
    fails_with(
        dir.path(),
        &["bench", "models", "--device", "gpu"],
        &["`gpu`", "`cpu`, `cuda` or `cuda:N`"],
    );
    fails_with(
        dir.path(),
        &["bench", "models", "--device", "cuda", "--backends", "flex"],
        &["flex backend runs on the CPU only", "--backends tch"],
    );
    #[cfg(not(feature = "tch"))]
    fails_with(
        dir.path(),
        &["bench", "models", "--device", "cuda:0", "--no-pytorch"],
        &["`--device cuda:0` needs the tch backend", "--features tch"],
    );
}

/// A stand-in for Python with PyTorch that speaks the worker protocol and answers every
/// call with `ms` milliseconds (or, with `die`, exits right after `ready`).
fn fake_python(dir: &std::path::Path, ms: &str, die: bool) -> std::path::PathBuf {
    let script = format!(
        r#"#!/bin/sh
case "$2" in *"print(torch.__version__)"*) echo "0.0-fake"; exit 0;; esac
echo '{{"reply":"ready","measures":[{{"measure":"train step","batch":512}},{{"measure":"infer 1","batch":1}},{{"measure":"infer batch","batch":512}}]}}'
{die}
while read -r line; do
  case "$line" in *quit*) break;; esac
  n=$(echo "$line" | sed 's/.*"calls":\([0-9]*\).*/\1/')
  times=$(yes {ms} | head -n "$n" | paste -sd, -)
  echo "{{\"reply\":\"times\",\"ms\":[$times]}}"
done
echo '{{"reply":"done","peak_mib":1.5,"pinned":null}}'
"#,
        die = if die { "exit 3" } else { "" }
    );
    let path = dir.join(if die { "dying-python" } else { "fake-python" });
    std::fs::write(&path, script).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    path
}

#[cfg(unix)]
#[test]
fn bench_models_alternates_rounds_and_reports_ratio_intervals_and_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    // `bench models --models recommend-mf --python PYTHON --rounds N --seconds 0 [extra]`.
    let args = |python: &std::path::Path, rounds: &str, extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = ["bench", "models", "--models", "recommend-mf", "--python"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        v.push(python.to_str().unwrap().to_string());
        v.extend(
            ["--rounds", rounds, "--seconds", "0"]
                .iter()
                .map(|s| s.to_string()),
        );
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    fn strs(v: &[String]) -> Vec<&str> {
        v.iter().map(String::as_str).collect()
    }
    // Every PyTorch call "takes" 50 ms: the factorisation is far faster on any machine.
    let python = fake_python(dir.path(), "50.0", false);
    let out = ok(dir.path(), &strs(&args(&python, "5", &["--json"])));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(rows.len(), 3);
    for r in &rows {
        let f = |k: &str| r[k].as_f64().unwrap_or_else(|| panic!("{k} in {r}"));
        assert_eq!(f("pytorch_ms"), 50.0, "{r}");
        assert!(
            f("ratio_lo") <= f("ratio") && f("ratio") <= f("ratio_hi"),
            "{r}"
        );
        assert!(f("ratio_hi") < 1.0, "{r}");
        assert_eq!(r["verdict"], "ahead", "{r}");
        assert_eq!(r["rounds"], 5);
        // One call per burst at --seconds 0: five rounds, five calls a side.
        assert_eq!(
            (r["profundo_calls"].clone(), r["pytorch_calls"].clone()),
            (5.into(), 5.into())
        );
        assert_eq!(f("pytorch_peak_mib"), 1.5);
    }
    let table = ok(dir.path(), &strs(&args(&python, "3", &[])));
    assert!(
        table.stdout.contains("3 alternating rounds"),
        "{}",
        table.stdout
    );
    assert!(table.stdout.contains("| ahead |"), "{}", table.stdout);

    let dying = fake_python(dir.path(), "1.0", true);
    fails_with(
        dir.path(),
        &strs(&args(&dying, "2", &[])),
        &["PyTorch recommend-mf worker stopped answering"],
    );
    fails_with(
        dir.path(),
        &["bench", "models", "--rounds", "0", "--no-pytorch"],
        &["--rounds must be at least 1"],
    );
}
