//! The perception domain end to end: a tiny pipeline on generated sign images (no data
//! needed) with the app and its bad-input contract, and GTSRB at CI size with its floors.

use std::path::{Path, PathBuf};

use crate::util::*;

/// Writes `train/<class>/` and `test/<class>/` folders of generated 24x24 sign-like PNGs:
/// four classes (a red disc, a blue disc, a yellow diamond, a red square), each image
/// shifted and noisier than the last.
pub(crate) fn synthetic_signs(dir: &Path, train: usize, test: usize) -> PathBuf {
    let root = dir.join("signs");
    for (set, n) in [("train", train), ("test", test)] {
        for class in 0..4u32 {
            let folder = root.join(set).join(format!("{class:02}"));
            std::fs::create_dir_all(&folder).unwrap();
            for i in 0..n as u32 {
                let salt = i * 7 + if set == "test" { 101 } else { 0 };
                let (cx, cy) = (
                    11.5 + (salt % 3) as f32 - 1.0,
                    11.5 + (salt % 5) as f32 / 2.0 - 1.0,
                );
                let img = image::RgbImage::from_fn(24, 24, |x, y| {
                    let (dx, dy) = (x as f32 - cx, y as f32 - cy);
                    let inside = match class {
                        0 | 1 => dx * dx + dy * dy < 64.0,
                        2 => dx.abs() + dy.abs() < 9.0,
                        _ => dx.abs() < 7.0 && dy.abs() < 7.0,
                    };
                    let noise = ((x * 31 + y * 17 + salt * 13) % 29) as u8;
                    let c = match (inside, class) {
                        (false, _) => [90, 110, 90],
                        (true, 1) => [30, 60, 200],
                        (true, 2) => [230, 200, 30],
                        (true, _) => [210, 30, 30],
                    };
                    image::Rgb(c.map(|v: u8| v.saturating_add(noise)))
                });
                img.save(folder.join(format!("{i:05}_00000.png"))).unwrap();
            }
        }
    }
    root
}

pub(crate) fn tiny_signs_pipeline(root: &Path) -> String {
    format!(
        r#"[pipeline]
name = "tiny-signs"
seed = 5

[stages.signs]
kind = "perception.load_signs"
path = "{root}"
size = 16

[stages.split]
kind = "split.by_pattern"
inputs = ["signs"]
test = "^test/"
name = "test"

[stages.train]
kind = "perception.train"
inputs = ["signs", "split"]
valid_fraction = 0.2

[stages.train.model]
channels = [8, 16]

[stages.train.training]
epochs = 8
batch_size = 8
lr = 0.01

[stages.train.augment]
corruption = 0.3

[stages.eval]
kind = "eval.classification"
inputs = ["train"]

[stages.corruptions]
kind = "perception.corruptions"
inputs = ["train", "signs"]
severities = [1, 3]
examples = 3

[stages.export]
kind = "export.model"
inputs = ["train", "eval"]
"#,
        root = root.display()
    )
}

/// A sign model trained for two epochs on a few generated signs (for tests that need any
/// model, not a good one); returns its run directory.
pub(crate) fn tiny_sign_model(dir: &Path) -> PathBuf {
    let root = synthetic_signs(dir, 6, 1);
    let text = tiny_signs_pipeline(&root)
        .replace("epochs = 8", "epochs = 2")
        .replace("severities = [1, 3]", "severities = [1]");
    let pipeline = write(dir, "tiny.toml", &text);
    let out = ok(
        dir,
        &["run", pipeline.to_str().unwrap(), "--runs-dir", "runs"],
    );
    run_dir(&out, dir)
}

#[test]
fn a_tiny_sign_pipeline_trains_measures_corruption_and_the_app_classifies_and_explains() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = synthetic_signs(dir, 12, 4);
    let pipeline = write(dir, "tiny.toml", &tiny_signs_pipeline(&root));
    let out = ok(
        dir,
        &["run", pipeline.to_str().unwrap(), "--runs-dir", "runs"],
    );
    let run = run_dir(&out, dir);
    let m = metrics(&run);
    let acc = m["eval"]["accuracy"].as_f64().unwrap();
    assert!(acc >= 0.75, "four easy shapes: accuracy {acc}");
    let c = &m["corruptions"];
    assert_eq!(c["items"], 16);
    assert_eq!(
        c["clean_accuracy"].as_f64().unwrap(),
        acc,
        "same model, same images"
    );
    let scores = c["scores"].as_array().unwrap();
    assert_eq!(scores.len(), 7 * 2, "7 corruptions x severities 1 and 3");
    for s in scores {
        let a = s["accuracy"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&a), "{s}");
    }
    let mca = c["mean_corruption_accuracy"].as_f64().unwrap();
    let mean: f64 = scores
        .iter()
        .map(|s| s["accuracy"].as_f64().unwrap())
        .sum::<f64>()
        / 14.0;
    assert!(
        (mca - mean).abs() < 1e-12,
        "mCA {mca} is the mean of the table ({mean})"
    );
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("| snow |") && report.contains("| low_light |"),
        "{report}"
    );
    let grid = image::open(run.join("plots/corruptions-corruptions.png")).unwrap();
    assert!(
        grid.width() > 8 * 48 && grid.height() > 3 * 48,
        "{}x{}",
        grid.width(),
        grid.height()
    );

    // The app: one JSON line per image, GTSRB class ids as integers, the top 3.
    let model = run.to_str().unwrap();
    let img = root.join("test/02/00000_00000.png");
    let heat = dir.join("why.png");
    let out = ok(
        dir,
        &[
            "signs",
            "classify",
            "--model",
            model,
            img.to_str().unwrap(),
            "--json",
            "--explain",
            heat.to_str().unwrap(),
        ],
    );
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert_eq!(line["path"], img.to_str().unwrap());
    assert!(line["class"].is_u64(), "{line}");
    assert_eq!(
        line["name"], "speed limit 50",
        "class 02 is named by GTSRB's list: {line}"
    );
    assert_eq!(line["top"].as_array().unwrap().len(), 3);
    let picture = image::open(&heat).unwrap();
    assert_eq!(
        (picture.width(), picture.height()),
        (2 * 16 * 8 + 8, 16 * 8)
    );

    // `bench signs` times the app on that image: three rows, never asserted on speed.
    let out = ok(
        dir,
        &[
            "bench",
            "signs",
            "--model",
            model,
            img.to_str().unwrap(),
            "--iters",
            "5",
            "--json",
        ],
    );
    let rows: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let measures: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["measure"].as_str().unwrap())
        .collect();
    assert_eq!(
        measures,
        [
            "decode + resize",
            "classify 1 sign (decode + model)",
            "classify a batch of 64, per sign"
        ]
    );
    assert!(rows[1]["median_ms"].as_f64().unwrap() > 0.0, "{rows}");

    // A wide photo is cropped to its central square, and says so.
    let wide = dir.join("wide.png");
    let src = image::open(&img).unwrap();
    image::imageops::resize(&src.to_rgb8(), 72, 24, image::imageops::FilterType::Nearest)
        .save(&wide)
        .unwrap();
    let out = ok(
        dir,
        &[
            "signs",
            "classify",
            "--model",
            model,
            wide.to_str().unwrap(),
        ],
    );
    assert!(
        out.stderr.contains("central 24x24 square"),
        "{}",
        out.stderr
    );

    // Bad inputs: named, no panic, the good images still answered.
    let fake = write(dir, "fake.png", "I am not a picture");
    let out = profundo(
        dir,
        &[
            "signs",
            "classify",
            "--model",
            model,
            fake.to_str().unwrap(),
            img.to_str().unwrap(),
        ],
    );
    assert!(!out.ok);
    assert!(
        out.stderr.contains("fake.png") && out.stderr.contains("not an image"),
        "{}",
        out.stderr
    );
    assert!(
        out.stdout.contains("00000_00000.png"),
        "the good image is still answered"
    );
    fails_with(
        dir,
        &[
            "signs",
            "classify",
            "--model",
            "nowhere",
            img.to_str().unwrap(),
        ],
        &["nowhere"],
    );
}

#[test]
fn bad_sign_datasets_and_parameters_are_refused_before_training() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let pipeline = write(dir, "p.toml", &tiny_signs_pipeline(&empty));
    fails_with(
        dir,
        &["run", pipeline.to_str().unwrap(), "--runs-dir", "runs"],
        &["no sign images found"],
    );
    let root = synthetic_signs(dir, 2, 1);
    let bad = tiny_signs_pipeline(&root).replace("corruption = 0.3", "corruption = 3.0");
    let pipeline = write(dir, "bad.toml", &bad);
    fails_with(
        dir,
        &["validate", pipeline.to_str().unwrap()],
        &["augment.corruption", "probability"],
    );
    let bad = tiny_signs_pipeline(&root).replace("severities = [1, 3]", "severities = [4]");
    let pipeline = write(dir, "bad2.toml", &bad);
    fails_with(
        dir,
        &["validate", pipeline.to_str().unwrap()],
        &["severities"],
    );
}

/// GTSRB at CI size: 4 frames of each training track, every 5th test image, 5 epochs.
/// The floors sit below what seed 42 measured (docs/perception.md), never tuned on more.
#[test]
fn needs_data_gtsrb_at_ci_size_keeps_its_floors() {
    let Some(_) = dataset("gtsrb") else { return };
    let tmp = tempfile::tempdir().unwrap();
    let run = run_shipped_in(
        "pipelines/perception-gtsrb.toml",
        &[
            "--set",
            "signs.frames_per_track=4",
            "--set",
            "signs.test_every=5",
            "--set",
            "train.training.epochs=5",
            "--set",
            "corruptions.severities=[2]",
        ],
        tmp.path(),
    );
    let m = metrics(&run);
    let clean = m["eval"]["accuracy"].as_f64().unwrap();
    let mca = m["corruptions"]["mean_corruption_accuracy"]
        .as_f64()
        .unwrap();
    eprintln!("GTSRB CI size: clean {clean:.4}, mean corruption accuracy {mca:.4}");
    assert_eq!(m["corruptions"]["items"], 1263);
    assert!(clean >= CI_CLEAN_FLOOR, "clean accuracy {clean}");
    assert!(mca >= CI_CORRUPTED_FLOOR, "mean corruption accuracy {mca}");
}

#[test]
fn signs_over_http_answer_what_the_cli_answers() {
    use crate::serve::{b64, error, get, infer, ok_json, output, post, start_with};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = synthetic_signs(dir, 12, 2);
    let pipeline = write(dir, "tiny.toml", &tiny_signs_pipeline(&root));
    let run = run_dir(
        &ok(
            dir,
            &["run", pipeline.to_str().unwrap(), "--runs-dir", "runs"],
        ),
        dir,
    );
    let model = run.to_str().unwrap();
    let s = start_with(&[format!("signs={model}")], &[]);
    let meta = ok_json(get(&s, "/v2/models/signs"));
    assert_eq!(meta["platform"], "profundo-perception", "{meta}");
    assert_eq!(meta["inputs"][0]["name"], "IMAGE", "{meta}");

    let img = root.join("test/03/00000_00000.png");
    let img_s = img.to_str().unwrap();
    let out = ok(
        dir,
        &["signs", "classify", "--model", model, "--json", img_s],
    );
    let cli: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    let bytes = std::fs::read(&img).unwrap();
    let path = format!("/v1/signs/signs/classify?path={img_s}");
    assert_eq!(ok_json(post(&s, &path, "image/png", &bytes)), cli);

    let other = std::fs::read(root.join("test/01/00000_00000.png")).unwrap();
    let answer = infer(
        &s,
        "signs",
        serde_json::json!({"inputs": [{"name": "IMAGE", "shape": [2], "datatype": "BYTES", "data": [b64(&bytes), b64(&other)]}]}),
    );
    assert_eq!(output(&answer, "CLASS")["shape"], serde_json::json!([2]));
    assert_eq!(output(&answer, "CLASS")["data"][0], cli["class"]);
    assert_eq!(output(&answer, "NAME")["data"][0], cli["name"]);
    let score = output(&answer, "SCORE")["data"][0].as_f64().unwrap();
    assert!((score - cli["score"].as_f64().unwrap()).abs() < 1e-5);

    // A body that is not an image: 400 naming the problem; the server goes on answering.
    let (status, message) = error(post(
        &s,
        "/v1/signs/signs/classify?path=x.png",
        "image/png",
        b"not an image",
    ));
    assert_eq!(status, 400);
    assert!(
        message.contains("x.png") && message.contains("not an image"),
        "{message}"
    );
    assert_eq!(ok_json(post(&s, &path, "image/png", &bytes)), cli);
}

/// Floors under what seed 42 measured at CI size on the development machine (four runs:
/// clean 96.83 / 96.91 / 97.55 / 96.99%, mean corruption accuracy at severity 2 81.29 /
/// 81.07 / 81.09 / 81.35%; training is not bit-reproducible here, docs/perception.md),
/// with room for that spread and another CPU's rounding.
const CI_CLEAN_FLOOR: f64 = 0.95;
const CI_CORRUPTED_FLOOR: f64 = 0.79;
