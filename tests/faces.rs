//! The face domain end to end: a tiny pipeline on generated images (no data needed) with the
//! apps and their bad-input contract, and the ORL pipelines with their accuracy floors.

use std::path::{Path, PathBuf};

use crate::util::*;

/// Writes `people` folders of `per_person` generated 28x24 grey PNGs: each person is a
/// distinct blob pattern, each image a shifted, noisier copy.
pub(crate) fn synthetic_faces(dir: &Path, people: usize, per_person: usize) -> PathBuf {
    let root = dir.join("faces");
    for p in 0..people {
        let folder = root.join(format!("person{p}"));
        std::fs::create_dir_all(&folder).unwrap();
        for i in 0..per_person {
            let img = image::GrayImage::from_fn(24, 28, |x, y| {
                let (cx, cy) = (6.0 + 4.0 * (p % 3) as f32, 7.0 + 5.0 * (p / 3) as f32);
                let (dx, dy) = (
                    x as f32 - cx - (i % 2) as f32,
                    y as f32 - cy - (i % 3) as f32,
                );
                let blob = (-(dx * dx + dy * dy) / 20.0).exp();
                let noise = ((x * 31 + y * 17 + (i as u32) * 7 + p as u32) % 13) as f32 / 13.0;
                image::Luma([(200.0 * blob + 30.0 * noise) as u8])
            });
            img.save(folder.join(format!("{}.png", i + 1))).unwrap();
        }
    }
    root
}

pub(crate) fn tiny_faces_pipeline(root: &Path) -> String {
    format!(
        r#"[pipeline]
name = "tiny-faces"
seed = 3

[stages.faces]
kind = "faces.load_images"
path = "{root}"
height = 28
width = 24

[stages.split]
kind = "split.by_pattern"
inputs = ["faces"]
test = "/[56]$"
name = "closed"

[stages.train]
kind = "faces.train_embedding"
inputs = ["faces", "split"]
valid_fraction = 0.2
# Two networks, so the apps below run an ensemble's embedding.
members = 2

[stages.train.model]
channels = [8, 16]
embedding_dim = 16

[stages.train.training]
epochs = 6
batch_size = 8
lr = 0.01

[stages.eigenfaces]
kind = "faces.eigenfaces"
inputs = ["faces", "split"]
components = 8

[stages.evaluate]
kind = "faces.evaluate"
inputs = {{ embeddings = "train", baseline = "eigenfaces" }}

[stages.export]
kind = "export.model"
inputs = ["train", "evaluate"]
"#,
        root = root.display()
    )
}

#[test]
fn a_face_pipeline_on_generated_images_feeds_the_enroll_identify_verify_apps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = synthetic_faces(dir, 4, 6);
    let pipeline = write(dir, "faces.toml", &tiny_faces_pipeline(&root));
    let out = ok(dir, &["run", pipeline.to_str().unwrap()]);
    let run = run_dir(&out, dir);
    let m = metrics(&run);
    let model_m = &m["evaluate"]["model"]["mean"];
    let base_m = &m["evaluate"]["baseline"]["mean"];
    for key in ["closed_set_accuracy", "auc", "eer", "tar_at_far_1e-2"] {
        let v = model_m[key].as_f64().unwrap_or(-1.0);
        assert!((0.0..=1.0).contains(&v), "{key} = {v}");
        assert!(base_m[key].is_number(), "baseline {key} missing");
    }
    assert_eq!(model_m["test_images"], 8.0);
    assert!(run.join("plots/evaluate-roc.png").is_file());
    assert!(run.join("plots/train-closed-training.png").is_file());
    let report = std::fs::read_to_string(run.join("report.md")).unwrap();
    assert!(
        report.contains("Embeddings (`train`") && report.contains("eigenfaces (k=8)"),
        "{report}"
    );
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["version"], 2);
    assert_eq!(manifest["domain"], "faces");
    assert_eq!(manifest["model"]["preprocess"]["height"], 28);
    assert!(manifest["threshold"]["value"].is_number());
    assert_eq!(manifest["model"]["members"], 2);
    assert!(run.join("model/model.safetensors").is_file());
    assert!(run.join("model/member-1.safetensors").is_file());
    assert!(manifest["metrics"]["eer"].is_number());
    assert!(manifest["metrics"]["closed_set_accuracy"].is_number());

    let model = run.to_str().unwrap();
    let img = |p: usize, i: usize| root.join(format!("person{p}/{i}.png"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let gallery = dir.join("gallery.json");
    let g = s(&gallery);
    // `profundo faces identify --model M --gallery G IMAGE`.
    let identify = |gallery: &str, image: &Path| -> Vec<String> {
        [
            "faces",
            "identify",
            "--no-detect",
            "--model",
            model,
            "--gallery",
            gallery,
            &s(image),
        ]
        .map(String::from)
        .to_vec()
    };

    // Identify with a gallery that does not exist yet, then with an empty one.
    fails_with(
        dir,
        &strs(&identify(&g, &img(0, 5))),
        &["gallery.json", "cannot read gallery"],
    );
    for p in 0..3 {
        let name = format!("p{p}");
        let imgs: Vec<String> = (1..=4).map(|i| s(&img(p, i))).collect();
        let mut args = vec![
            "faces",
            "enroll",
            "--no-detect",
            "--model",
            model,
            "--gallery",
            &g,
            "--name",
            &name,
        ];
        args.extend(imgs.iter().map(String::as_str));
        let o = ok(dir, &args);
        assert!(o.stdout.contains("enrolled 4 image(s)"), "{}", o.stdout);
    }
    // Enrolling a name twice adds the images to that person.
    let o = ok(
        dir,
        &[
            "faces",
            "enroll",
            "--no-detect",
            "--model",
            model,
            "--gallery",
            &g,
            "--name",
            "p0",
            &s(&img(0, 1)),
        ],
    );
    assert!(o.stdout.contains("(5 in all)"), "{}", o.stdout);
    let o = ok(dir, &["faces", "gallery", "--gallery", &g, "--json"]);
    let listed: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(listed["people"].as_array().unwrap().len(), 3);

    let o = ok(
        dir,
        &[
            "faces",
            "identify",
            "--no-detect",
            "--model",
            model,
            "--gallery",
            &g,
            "--json",
            &s(&img(1, 5)),
            &s(&img(3, 5)),
        ],
    );
    let lines: Vec<serde_json::Value> = o
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for l in &lines {
        assert!(
            l["name"].is_string() && l["score"].is_number() && l["path"].is_string(),
            "{l}"
        );
    }

    // Verify: the same file twice is the same person with score 1.
    let o = ok(
        dir,
        &[
            "faces",
            "verify",
            "--no-detect",
            "--model",
            model,
            "--json",
            &s(&img(2, 1)),
            &s(&img(2, 1)),
        ],
    );
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert_eq!(v["same"], true);
    assert!((v["score"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{v}");
    assert!(v["threshold"].is_number());

    // Bad input: a non-image file, a truncated image, a 1x1 image.
    let text = write(dir, "note.png", "not an image at all");
    fails_with(
        dir,
        &[
            "faces",
            "verify",
            "--no-detect",
            "--model",
            model,
            &s(&text),
            &s(&img(0, 1)),
        ],
        &["note.png", "not an image file"],
    );
    let bytes = std::fs::read(img(0, 1)).unwrap();
    let cut = dir.join("cut.png");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    fails_with(
        dir,
        &strs(&identify(&g, &cut)),
        &["cut.png", "cannot decode"],
    );
    let dot = dir.join("dot.png");
    image::GrayImage::new(1, 1).save(&dot).unwrap();
    fails_with(
        dir,
        &[
            "faces",
            "enroll",
            "--no-detect",
            "--model",
            model,
            "--gallery",
            &g,
            "--name",
            "x",
            &s(&dot),
        ],
        &["dot.png", "1x1"],
    );
    let empty = write(dir, "empty.pgm", "");
    fails_with(
        dir,
        &[
            "faces",
            "verify",
            "--no-detect",
            "--model",
            model,
            &s(&empty),
            &s(&img(0, 1)),
        ],
        &["empty.pgm", "not an image file"],
    );

    // A gallery from another model and a corrupt gallery are refused.
    let mut foreign: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&gallery).unwrap()).unwrap();
    foreign["model_id"] = "0123456789abcdef".into();
    let foreign_path = write(dir, "foreign.json", &foreign.to_string());
    fails_with(
        dir,
        &strs(&identify(&s(&foreign_path), &img(0, 5))),
        &["foreign.json", "made with model 0123456789abcdef"],
    );
    let corrupt = write(dir, "corrupt.json", "{\"format\": 1, \"people\": [");
    fails_with(
        dir,
        &["faces", "gallery", "--gallery", &s(&corrupt)],
        &["corrupt.json", "corrupt gallery"],
    );

    // Remove everyone: identify then refuses the empty gallery.
    for p in ["p0", "p1", "p2"] {
        ok(dir, &["faces", "gallery", "--gallery", &g, "--remove", p]);
    }
    fails_with(
        dir,
        &["faces", "gallery", "--gallery", &g, "--remove", "p0"],
        &["`p0` is not enrolled"],
    );
    fails_with(dir, &strs(&identify(&g, &img(0, 5))), &["gallery is empty"]);

    // An ensemble model missing one member's weights names the file.
    let model_dir = run.join("model");
    let member = model_dir.join("member-1.safetensors");
    std::fs::remove_file(&member).unwrap();
    let verify_fails = |model: &Path, needles: &[&str]| {
        fails_with(
            dir,
            &[
                "faces",
                "verify",
                "--no-detect",
                "--model",
                model.to_str().unwrap(),
                &s(&img(0, 1)),
                &s(&img(0, 2)),
            ],
            needles,
        )
    };
    verify_fails(&model_dir, &["member-1.safetensors"]);
    // A manifest whose member count is not a count is refused.
    let manifest_path = model_dir.join("manifest.json");
    let mut bad: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&manifest_path).unwrap()).unwrap();
    bad["model"]["members"] = 0.into();
    std::fs::write(&manifest_path, bad.to_string()).unwrap();
    verify_fails(&model_dir, &["manifest.json", "`model.members` is 0"]);
    // So is one with a field of the wrong type, named with its path.
    bad["model"]["members"] = "two".into();
    std::fs::write(&manifest_path, bad.to_string()).unwrap();
    verify_fails(&model_dir, &["manifest.json", "field `model.members`"]);

    // A speech model is not a face model.
    let bad_model = dir.join("not-a-model");
    std::fs::create_dir_all(&bad_model).unwrap();
    verify_fails(&bad_model, &["not a model directory"]);
}

/// Open set on generated people, three group folds, the threshold calibrated on the other
/// folds' test people: every fold is judged at the mean of the *other* folds' thresholds at
/// FAR 5%, and the exported model carries its fold's calibrated threshold. The network has
/// the flattened head the open-set pipeline ships with, which the apps rebuild.
#[test]
fn an_open_set_threshold_from_the_other_folds_reaches_the_exported_model() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = synthetic_faces(dir, 6, 4);
    let pipeline = tiny_faces_pipeline(&root)
        .replace(
            "kind = \"split.by_pattern\"\ninputs = [\"faces\"]\ntest = \"/[56]$\"\nname = \"closed\"",
            "kind = \"split.by_group\"\ninputs = [\"faces\"]\ngroup_folds = 3",
        )
        .replace("members = 2", "members = 1\ncenter = true\nwhiten = 0.1")
        // The shipped open-set head: the apps must rebuild it from the manifest.
        .replace("embedding_dim = 16", "embedding_dim = 16\nhead = \"flatten\"")
        .replace(
            "inputs = { embeddings = \"train\", baseline = \"eigenfaces\" }",
            "inputs = { embeddings = \"train\" }\nthreshold = \"other_folds\"\ntarget_far = 0.05",
        )
        .replace(
            "inputs = [\"train\", \"evaluate\"]",
            "inputs = [\"train\", \"evaluate\"]\nfold = \"groups-2\"",
        );
    assert!(
        pipeline.contains("other_folds")
            && pipeline.contains("by_group")
            && pipeline.contains("flatten")
    );
    // Whitening needs centred embeddings.
    let uncentred = write(
        dir,
        "uncentred.toml",
        &pipeline.replace("center = true", "center = false"),
    );
    fails_with(
        dir,
        &["validate", uncentred.to_str().unwrap()],
        &["whiten", "needs `center = true`"],
    );
    let pipeline = write(dir, "open.toml", &pipeline);
    let out = ok(dir, &["run", pipeline.to_str().unwrap()]);
    let run = run_dir(&out, dir);
    let m = metrics(&run);
    let folds = m["evaluate"]["model"]["folds"].as_object().unwrap();
    assert_eq!(folds.len(), 3);
    let judged = |f: &str| folds[f]["threshold"].as_f64().unwrap();
    for (name, fold) in folds {
        let rule = fold["threshold_rule"].as_str().unwrap();
        assert!(
            rule.contains("at FAR 5% of the other 2 folds"),
            "{name}: {rule}"
        );
        assert!(fold["open_set"]["rejection_rate_not_enrolled"].is_number());
    }
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["model"]["training"]["fold"], "groups-2");
    assert_eq!(manifest["model"]["network"]["head"], "flatten");
    assert_eq!(
        manifest["threshold"]["value"].as_f64(),
        Some(judged("groups-2")),
        "the app decides at the calibrated threshold"
    );
    assert!(
        manifest["threshold"]["rule"]
            .as_str()
            .unwrap()
            .contains("at FAR 5% of the other 2 folds")
    );
    assert!(manifest["metrics"]["open_set_rejection"].is_number());

    // Centring and whitening: the exported model carries its fold's mean training
    // embedding and whitening matrix, and the apps apply both (the same file twice still
    // scores 1).
    let center = manifest["model"]["center"].as_array().unwrap();
    let dim = manifest["model"]["network"]["embedding_dim"]
        .as_u64()
        .unwrap();
    assert_eq!(center.len() as u64, dim);
    let whiten = &manifest["model"]["whiten"];
    assert_eq!(whiten["block"].as_u64(), Some(dim));
    assert_eq!(
        whiten["matrices"][0].as_array().unwrap().len() as u64,
        dim * dim
    );
    let model_dir = run.join("model");
    let model = model_dir.to_str().unwrap();
    let image = root.join("person1/2.png");
    let image = image.to_str().unwrap();
    let o = ok(
        dir,
        &[
            "faces",
            "verify",
            "--no-detect",
            "--model",
            model,
            "--json",
            image,
            image,
        ],
    );
    let v: serde_json::Value = serde_json::from_str(o.stdout.trim()).unwrap();
    assert!((v["score"].as_f64().unwrap() - 1.0).abs() < 1e-4, "{v}");
    assert_eq!(v["threshold"].as_f64(), Some(judged("groups-2")));
    // A manifest whose whitening or mean does not fit the embedding is named, not used.
    let cases = [
        (
            "whiten",
            serde_json::json!({"shrink": 0.1, "block": 2, "matrices": [[1.0, 0.0]]}),
            "is not a whitening of",
        ),
        ("center", serde_json::json!([0.5]), "is not a list of"),
    ];
    for (field, value, problem) in cases {
        let mut broken = manifest.clone();
        broken["model"][field] = value;
        std::fs::write(
            model_dir.join("manifest.json"),
            serde_json::to_string(&broken).unwrap(),
        )
        .unwrap();
        fails_with(
            dir,
            &[
                "faces",
                "verify",
                "--no-detect",
                "--model",
                model,
                image,
                image,
            ],
            &[&format!("model.{field}"), problem],
        );
    }
}

#[test]
fn a_person_folder_without_images_is_named_in_the_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let root = synthetic_faces(dir, 2, 3);
    std::fs::create_dir_all(root.join("nobody")).unwrap();
    std::fs::write(root.join("nobody/readme.txt"), "no faces here").unwrap();
    let pipeline = write(dir, "faces.toml", &tiny_faces_pipeline(&root));
    fails_with(
        dir,
        &["run", pipeline.to_str().unwrap()],
        &["nobody", "person folder has no images"],
    );
}

/// Runs a shipped face pipeline, returning the run directory; `None` (test skipped) when
/// the ORL faces are not in the data folder (`profundo data fetch orl`).
fn run_faces(pipeline: &str, extra: &[&str], runs: &Path) -> Option<PathBuf> {
    dataset("orl")?;
    Some(run_shipped_in(pipeline, extra, runs))
}

/// Measured with seed 42 on the development machine (README "Results"): closed-set
/// identification 0.9875 with profundo's own convolution kernel on flex (0.981 before it),
/// eigenfaces 0.900. Floors leave room for
/// floating-point differences between machines.
const ORL_CLOSED_SET_FLOOR: f64 = 0.96;

#[test]
fn needs_data_orl_closed_set_identification_reaches_its_floor_and_beats_eigenfaces() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(run) = run_faces("pipelines/faces-orl.toml", &[], tmp.path()) else {
        return;
    };
    let m = metrics(&run);
    let model = m["evaluate"]["model"]["mean"]["closed_set_accuracy"]
        .as_f64()
        .unwrap();
    let base = m["evaluate"]["baseline"]["mean"]["closed_set_accuracy"]
        .as_f64()
        .unwrap();
    eprintln!("ORL closed set: network {model:.4}, eigenfaces {base:.4}");
    assert!(
        model >= ORL_CLOSED_SET_FLOOR,
        "closed-set accuracy {model} fell below {ORL_CLOSED_SET_FLOOR}"
    );
    assert!(
        model >= base + 0.05,
        "the network ({model}) must clearly beat eigenfaces ({base})"
    );
    assert_eq!(m["evaluate"]["model"]["mean"]["test_images"], 160.0);
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Measured with seed 42 on the development machine, fold `groups-1`, one network
/// (`train.members=1`: the shipped three-member ensemble would triple this test's time; the
/// tiny pipeline above runs a two-member ensemble through the apps), embeddings centred,
/// the flattened head, the loss's scale 8 and the whitening (shrinkage 0.1) as the pipeline
/// ships: EER 0.058, identification of newly enrolled people 1.0; eigenfaces EER 0.175.
/// Before the whitening: 0.076 (0.075 before the kept epoch got batch-norm statistics of
/// its own). At scale 16 before it: EER 0.067 (the scale's gain is in the mean over folds
/// and seeds, not on this fold); with the averaging head before that: EER 0.078, and 0.081
/// after profundo's own kernels changed the rounding. The issue's target (EER <= 5% over
/// all folds, three networks) is measured by the pipeline itself (README); these bounds
/// guard one fold of one network, with room for floating-point differences between
/// machines (rounding alone has moved one fold's EER by up to 4 points).
const OPEN_SET_EER_CEILING: f64 = 0.10;
const OPEN_SET_IDENTIFICATION_FLOOR: f64 = 0.875;

#[test]
fn needs_data_orl_open_set_verification_and_enrollment_of_unseen_people() {
    let tmp = tempfile::tempdir().unwrap();
    let Some(run) = run_faces(
        "pipelines/faces-open-set.toml",
        &[
            "--set",
            "train.folds=[\"groups-1\"]",
            "--set",
            "train.members=1",
            // One fold has no other folds to calibrate its threshold on.
            "--set",
            "evaluate.threshold=validation",
        ],
        tmp.path(),
    ) else {
        return;
    };
    let m = metrics(&run);
    let model = &m["evaluate"]["model"]["mean"];
    let base = &m["evaluate"]["baseline"]["mean"];
    let eer = model["eer"].as_f64().unwrap();
    let base_eer = base["eer"].as_f64().unwrap();
    let id = model["open_set"]["identification_accuracy"]
        .as_f64()
        .unwrap();
    eprintln!(
        "ORL open set (groups-1): EER {eer:.4} (eigenfaces {base_eer:.4}), identification {id:.4}"
    );
    assert_eq!(model["test_people"], 8.0, "8 unseen people per fold");
    assert!(
        eer <= OPEN_SET_EER_CEILING,
        "EER {eer} above {OPEN_SET_EER_CEILING}"
    );
    assert!(
        eer < base_eer,
        "the network ({eer}) must beat eigenfaces ({base_eer}) on EER"
    );
    assert!(
        id >= OPEN_SET_IDENTIFICATION_FLOOR,
        "identification {id} below {OPEN_SET_IDENTIFICATION_FLOOR}"
    );
    assert!(run.join("plots/evaluate-roc.png").is_file());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("model/manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest["model"]["training"]["fold"], "groups-1");
    assert_eq!(
        manifest["model"]["people"].as_array().unwrap().len(),
        24,
        "trained on 24 people only"
    );

    let photos = crate::faces_detect::whole_photos_of_unseen_people(&run, tmp.path());
    eprintln!("ORL whole photos of unseen people (groups-1): {photos:?}");
    assert_eq!(photos.one_face, 1.0, "{photos:?}");
    assert_eq!(photos.group.0, photos.group.1, "{photos:?}");
    assert!(photos.detect >= WHOLE_PHOTO_FLOOR, "{photos:?}");
    assert!(photos.detect > photos.whole, "{photos:?}");
    // No lighting is left behind: at least 3 of 4 right under each.
    for (right, of) in photos.by_lighting {
        assert!(of > 0 && 4 * right >= 3 * of, "{photos:?}");
    }
    // Cast shadows are the hard case (docs/faces.md): 0.425 measured with the shipped
    // `standardize`, 0.85 with `tan_triggs`.
    assert!(photos.shadow >= CAST_SHADOW_FLOOR, "{photos:?}");
}

/// Rank-1 identification of the 40 cast-shadow photos with the shipped preprocessing;
/// measured 0.425 (seed 42, one network; 2 of the 40 without a detected face). The floor
/// catches a collapse, not a change of a few photos.
const CAST_SHADOW_FLOOR: f64 = 0.3;

/// Rank-1 identification of the lit whole photos of unseen people through detection and
/// alignment (`whole_photos_of_unseen_people`). Measured on the development machine, seed
/// 42, one network: 0.925, 0.975 and 0.95 in three runs while training was not yet
/// bit-reproducible, 0.975 on every run since; against 0.25-0.30 for the same photos used
/// whole (`--no-detect`); docs/faces.md. The floor leaves two errors of 40 below the lowest run.
const WHOLE_PHOTO_FLOOR: f64 = 0.875;
