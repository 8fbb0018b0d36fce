//! Checks `profundo_translate::sacrebleu` against scores produced by the Python
//! `sacrebleu` package (`scripts/sacrebleu_fixtures.py` writes the fixtures).

use std::path::PathBuf;

use profundo_translate::sacrebleu::{
    SACREBLEU_VERSION, bleu_signature, chrf_signature, corpus_bleu, corpus_chrf,
};
use serde_json::Value;

const TOLERANCE: f64 = 0.01;

/// This package's directory, as cargo sets it when it runs the tests. The compile-time value
/// is only the fallback: a build cache shared between checkouts can hold a test binary that
/// was compiled in another, since removed, one.
fn manifest_dir() -> PathBuf {
    std::env::var_os("CARGO_MANIFEST_DIR")
        .map_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")), PathBuf::from)
}

fn fixture_dir() -> PathBuf {
    manifest_dir().join("tests/fixtures/sacrebleu")
}

fn load(name: &str) -> Value {
    let path = fixture_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn strings(case: &Value, key: &str, name: &str) -> Vec<String> {
    case[key]
        .as_array()
        .unwrap_or_else(|| panic!("case {name}: `{key}` is not a list"))
        .iter()
        .map(|v| {
            v.as_str()
                .unwrap_or_else(|| panic!("case {name}: `{key}` holds a non-string"))
                .to_owned()
        })
        .collect()
}

fn float(case: &Value, key: &str, name: &str) -> f64 {
    case[key]
        .as_f64()
        .unwrap_or_else(|| panic!("case {name}: `{key}` is not a number"))
}

fn uint(case: &Value, key: &str, name: &str) -> usize {
    let v = case[key]
        .as_u64()
        .unwrap_or_else(|| panic!("case {name}: `{key}` is not an unsigned integer"));
    usize::try_from(v).unwrap_or_else(|e| panic!("case {name}: `{key}`: {e}"))
}

fn uints4(case: &Value, key: &str, name: &str) -> [usize; 4] {
    let list: Vec<usize> = case[key]
        .as_array()
        .unwrap_or_else(|| panic!("case {name}: `{key}` is not a list"))
        .iter()
        .map(|v| {
            v.as_u64()
                .and_then(|x| usize::try_from(x).ok())
                .unwrap_or_else(|| panic!("case {name}: `{key}` holds a non-integer"))
        })
        .collect();
    list.try_into()
        .unwrap_or_else(|l: Vec<usize>| panic!("case {name}: `{key}` has {} items, not 4", l.len()))
}

#[test]
fn matches_python_sacrebleu_on_every_case() {
    let cases = load("cases.json");
    let cases = cases.as_array().expect("cases.json is a list of cases");
    assert!(!cases.is_empty(), "cases.json holds no cases");

    let mut max_bleu_diff = 0.0_f64;
    let mut max_chrf_diff = 0.0_f64;
    for case in cases {
        let name = case["name"].as_str().expect("every case has a name");
        let hyps = strings(case, "hyps", name);
        let refs = strings(case, "refs", name);

        let bleu = corpus_bleu(&hyps, &refs)
            .unwrap_or_else(|e| panic!("case {name}: corpus_bleu failed: {e}"));
        let chrf = corpus_chrf(&hyps, &refs)
            .unwrap_or_else(|e| panic!("case {name}: corpus_chrf failed: {e}"));

        let expected_bleu = float(case, "bleu", name);
        let expected_chrf = float(case, "chrf", name);
        let bleu_diff = (bleu.score - expected_bleu).abs();
        let chrf_diff = (chrf.score - expected_chrf).abs();
        assert!(
            bleu_diff < TOLERANCE,
            "case {name}: BLEU {} vs sacreBLEU {expected_bleu} ({bleu:?})",
            bleu.score
        );
        assert!(
            chrf_diff < TOLERANCE,
            "case {name}: chrF {} vs sacreBLEU {expected_chrf}",
            chrf.score
        );
        assert_eq!(
            bleu.counts,
            uints4(case, "bleu_counts", name),
            "case {name}: BLEU counts"
        );
        assert_eq!(
            bleu.totals,
            uints4(case, "bleu_totals", name),
            "case {name}: BLEU totals"
        );
        assert_eq!(
            bleu.sys_len,
            uint(case, "sys_len", name),
            "case {name}: sys_len"
        );
        assert_eq!(
            bleu.ref_len,
            uint(case, "ref_len", name),
            "case {name}: ref_len"
        );
        if case.get("bleu_bp").is_some() {
            let bp = float(case, "bleu_bp", name);
            assert!(
                (bleu.bp - bp).abs() < 1e-9,
                "case {name}: BP {} vs {bp}",
                bleu.bp
            );
        }
        if let Some(precisions) = case.get("bleu_precisions").and_then(Value::as_array) {
            for (i, (got, want)) in bleu.precisions.iter().zip(precisions).enumerate() {
                let want = want
                    .as_f64()
                    .unwrap_or_else(|| panic!("case {name}: precision {i} is not a number"));
                assert!(
                    (got - want).abs() < 1e-9,
                    "case {name}: precision {} is {got}, sacreBLEU has {want}",
                    i + 1
                );
            }
        }

        max_bleu_diff = max_bleu_diff.max(bleu_diff);
        max_chrf_diff = max_chrf_diff.max(chrf_diff);
        println!(
            "{name:<40} BLEU {:9.5} (|diff| {bleu_diff:.2e})  chrF {:9.5} (|diff| {chrf_diff:.2e})",
            bleu.score, chrf.score
        );
    }
    println!("max |diff|: BLEU {max_bleu_diff:.3e}, chrF {max_chrf_diff:.3e}");
}

#[test]
fn signatures_match_python_sacrebleu() {
    let sigs = load("signatures.json");
    assert_eq!(
        sigs["version"].as_str(),
        Some(SACREBLEU_VERSION),
        "sacreBLEU version"
    );
    assert_eq!(
        sigs["bleu"].as_str(),
        Some(bleu_signature().as_str()),
        "BLEU signature"
    );
    assert_eq!(
        sigs["chrf"].as_str(),
        Some(chrf_signature().as_str()),
        "chrF signature"
    );
}
