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
        "--iters",
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
            "--iters",
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
