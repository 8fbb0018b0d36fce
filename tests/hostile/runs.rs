//! Model directories and galleries that were truncated, hand-edited, mixed up or broken:
//! each app names the file and the problem instead of loading garbage.

use std::path::Path;

use super::{Case, Fixture};

/// Copies the directory `from` to `to`.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_file() {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A copy of the model directory `model` named `name`, with `edit` applied to it.
fn broken_model(f: &Fixture, model: &str, name: &str, edit: impl Fn(&Path)) -> String {
    let to = f.dir.join("runs").join(name);
    copy_dir(&Path::new(model).join("model"), &to);
    edit(&to);
    to.to_str().unwrap().to_string()
}

fn rewrite(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.contains(from), "{} lacks {from}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).unwrap();
}

fn cut(path: &Path) {
    let b = std::fs::read(path).unwrap();
    std::fs::write(path, &b[..b.len() / 2]).unwrap();
}

pub fn cases(f: &Fixture) -> Vec<Case> {
    let clip = crate::util::repo().join("datasets/fsdd/recordings/3_theo_0.wav");
    let clip = clip.to_str().unwrap().to_string();
    let recognize =
        |model: &str| ["speech", "recognize", "--model", model, &clip].map(String::from);
    let mut cases = Vec::new();
    type Edit = fn(&Path);
    let speech: [(&str, Edit, &[&str]); 8] = [
        (
            "manifest-truncated",
            |d| cut(&d.join("manifest.json")),
            &["manifest.json"],
        ),
        (
            "manifest-wrong-type",
            |d| {
                rewrite(
                    &d.join("manifest.json"),
                    "\"kernel\": 3",
                    "\"kernel\": \"three\"",
                )
            },
            &["manifest.json", "kernel"],
        ),
        (
            "manifest-future-version",
            |d| {
                rewrite(
                    &d.join("manifest.json"),
                    "\"version\": 2",
                    "\"version\": 99",
                )
            },
            &["manifest.json", "99"],
        ),
        (
            "manifest-other-domain",
            |d| {
                rewrite(
                    &d.join("manifest.json"),
                    "\"domain\": \"speech\"",
                    "\"domain\": \"weather\"",
                )
            },
            &["manifest.json", "weather"],
        ),
        (
            "weights-missing",
            |d| std::fs::remove_file(d.join("model.safetensors")).unwrap(),
            &["model.safetensors"],
        ),
        (
            "weights-truncated",
            |d| cut(&d.join("model.safetensors")),
            &["model.safetensors"],
        ),
        (
            "weights-garbage",
            |d| std::fs::write(d.join("model.safetensors"), vec![0x5A; 7000]).unwrap(),
            &["model.safetensors"],
        ),
        (
            "manifest-missing",
            |d| std::fs::remove_file(d.join("manifest.json")).unwrap(),
            &["manifest.json"],
        ),
    ];
    for (name, edit, needles) in speech {
        let model = broken_model(f, &f.speech, &format!("speech-{name}"), edit);
        cases.push(Case::refused(
            &format!("runs/speech-{name}"),
            &recognize(&model),
            needles,
        ));
    }
    // Another domain's model, and a file where a model directory belongs.
    cases.push(Case::refused(
        "runs/speech-given-translation",
        &recognize(&f.translate),
        &["translate"],
    ));
    cases.push(Case::refused(
        "runs/model-is-a-file",
        &recognize(&clip),
        &["3_theo_0.wav"],
    ));

    let tokenizer = broken_model(f, &f.translate, "translate-tokenizer", |d| {
        cut(&d.join("tokenizer.json"))
    });
    cases.push(Case::refused(
        "runs/translate-tokenizer-truncated",
        &[
            "translate",
            "--model",
            &tokenizer,
            "--from",
            "es",
            "--to",
            "en",
            "hola",
        ],
        &["tokenizer.json"],
    ));
    let speech_weights = Path::new(&f.speech).join("model/model.safetensors");
    let swapped = broken_model(f, &f.translate, "translate-swapped-weights", |d| {
        std::fs::copy(&speech_weights, d.join("model.safetensors")).unwrap();
    });
    cases.push(Case::refused(
        "runs/translate-other-weights",
        &[
            "translate",
            "--model",
            &swapped,
            "--from",
            "es",
            "--to",
            "en",
            "hola",
        ],
        &["model.safetensors"],
    ));
    let recs = broken_model(f, &f.recommend, "recommend-truncated", |d| {
        cut(&d.join("recommender.postcard"))
    });
    cases.push(Case::refused(
        "runs/recommend-truncated",
        &["recommend", "--model", &recs, "--user", "1"],
        &["recommender.postcard"],
    ));
    // A user the model has never seen gets the most popular items, and is told so.
    cases.push(Case::works(
        "runs/recommend-unknown-user",
        &[
            "recommend",
            "--model",
            &f.recommend,
            "--user",
            "no-such-user",
        ],
        &["no-such-user", "cold start"],
    ));
    cases.push(Case::refused(
        "runs/recommend-top-0",
        &[
            "recommend",
            "--model",
            &f.recommend,
            "--user",
            "1",
            "--top",
            "0",
        ],
        &["-k"],
    ));

    // Galleries: corrupt, empty, another model's, embeddings of the wrong size.
    let photo = crate::util::repo().join("datasets/face-photos/grace_hopper.png");
    let photo = photo.to_str().unwrap().to_string();
    let gallery = std::fs::read_to_string(&f.gallery).unwrap();
    let galleries: [(&str, String, &[&str]); 5] = [
        (
            "gallery-corrupt.json",
            gallery[..gallery.len() / 2].to_string(),
            &[],
        ),
        ("gallery-empty.json", String::new(), &["empty"]),
        (
            "gallery-other-model.json",
            gallery.replacen("\"model_id\": \"", "\"model_id\": \"0000", 1),
            &["model"],
        ),
        (
            "gallery-future-format.json",
            gallery.replacen("\"format\": 1", "\"format\": 99", 1),
            &["99"],
        ),
        (
            "gallery-short-embedding.json",
            gallery.replacen("\"embedding\": [", "\"embedding\": [0.5, ", 1),
            &["embedding"],
        ),
    ];
    for (name, text, needles) in galleries {
        let path = f.dir.join("runs").join(name);
        std::fs::write(&path, text).unwrap();
        let path = path.to_str().unwrap().to_string();
        let mut n = vec![name];
        n.extend_from_slice(needles);
        cases.push(Case::refused(
            &format!("runs/{name}"),
            &[
                "faces",
                "identify",
                "--model",
                &f.faces,
                "--gallery",
                &path,
                &photo,
            ],
            &n,
        ));
    }
    cases
}
