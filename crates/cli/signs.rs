//! `profundo signs classify`.

use std::path::{Path, PathBuf};

use profundo_perception::app::{SignAnswer, SignClassifier, save_png};
use profundo_perception::picture;

use crate::args::{ClassifyArgs, SignsArgs, SignsCommand};

pub fn signs(a: SignsArgs) -> anyhow::Result<()> {
    match a.command {
        SignsCommand::Classify(c) => classify(c),
    }
}

fn print(r: &SignAnswer, json: bool) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string(r)?);
        return Ok(());
    }
    let top: Vec<String> = r
        .top
        .iter()
        .map(|t| format!("{} {:.3}", t.name, t.score))
        .collect();
    let class = r.class.map_or(r.label.clone(), |c| c.to_string());
    println!(
        "{}\t{class}\t{}\t{:.3}\t(top: {})",
        r.path,
        r.name,
        r.score,
        top.join(", ")
    );
    Ok(())
}

/// Where the heat map of `file` goes: `out` itself for one image, else `out` with the
/// image's name appended to its stem.
fn explain_path(out: &Path, file: &Path, several: bool) -> PathBuf {
    if !several {
        return out.to_path_buf();
    }
    let stem = out
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("explain");
    let name = file.file_stem().and_then(|s| s.to_str()).unwrap_or("image");
    out.with_file_name(format!("{stem}-{name}.png"))
}

fn classify(a: ClassifyArgs) -> anyhow::Result<()> {
    if a.top == 0 {
        anyhow::bail!("--top must be at least 1");
    }
    let clf = SignClassifier::load(&a.model.model, a.model.backend, &a.model.device)?;
    let mut failed = 0;
    for f in &a.files {
        let answer = picture::read(f).map(|img| {
            let (x, note) = clf.prepare(&img);
            let probs = clf.probabilities(&x).pop().unwrap_or_default();
            (x, clf.answer(&f.display().to_string(), &probs, a.top, note))
        });
        match answer {
            Ok((x, r)) => {
                if let Some(note) = &r.cropped {
                    eprintln!("note: {}: {note}", f.display());
                }
                print(&r, a.json)?;
                if let Some(out) = &a.explain {
                    let path = explain_path(out, f, a.files.len() > 1);
                    let k = clf
                        .manifest
                        .model
                        .labels
                        .iter()
                        .position(|l| *l == r.label)
                        .unwrap_or(0);
                    save_png(&path, &clf.explain(&x, k, 8))?;
                    eprintln!("explained {} in {}", f.display(), path.display());
                }
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        anyhow::bail!(
            "{failed} of {} images could not be classified",
            a.files.len()
        );
    }
    Ok(())
}
