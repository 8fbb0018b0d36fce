//! `profundo run` and `profundo validate`.

use std::path::Path;

use anyhow::Context;
use profundo_pipeline::engine::{self, RunOptions};
use profundo_pipeline::spec;

use crate::args::{RunArgs, ValidateArgs};

pub fn run(a: RunArgs) -> anyhow::Result<()> {
    let reg = crate::registry();
    let (pipeline, runs_dir) = match &a.resume {
        Some(dir) => {
            let file = dir.join("pipeline.toml");
            if !file.is_file() {
                anyhow::bail!("{}: not a run directory (no pipeline.toml)", dir.display());
            }
            // runs/<pipeline>/<run-id> -> runs
            let runs_dir = dir
                .parent()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_else(|| a.runs_dir.clone());
            (spec::load(&file, &reg, &[])?, runs_dir)
        }
        None => {
            let file = a
                .pipeline
                .as_deref()
                .context("a pipeline file is required")?;
            (spec::load(file, &reg, &a.set)?, a.runs_dir.clone())
        }
    };
    check_datasets(&pipeline)?;
    let opts = RunOptions {
        runs_dir,
        force: a.force,
        from: a.from,
        until: a.until,
        resume: a.resume,
        no_wait: a.no_wait,
    };
    let summary = engine::run(&pipeline, &reg, &opts)?;
    println!("run: {}", summary.run_dir.display());
    for s in &summary.stages {
        println!(
            "  {:<14} {:<22} {:<8} {:>7.1}s",
            s.name, s.kind, s.outcome, s.seconds
        );
    }
    if summary.ran() == 0 {
        let cached = summary
            .stages
            .iter()
            .filter(|s| s.outcome == "cached")
            .count();
        println!("nothing changed: no stage recomputed ({cached} cached, the others not needed)");
    }
    if let Some(m) = summary.metrics.as_object() {
        for (stage, v) in m {
            if let Some(acc) = v.get("accuracy").and_then(|x| x.as_f64()) {
                let f1 = v
                    .get("macro_f1")
                    .and_then(|x| x.as_f64())
                    .unwrap_or(f64::NAN);
                println!(
                    "{stage}: accuracy {acc:.4}, macro-F1 {f1:.4} ({})",
                    v.get("protocol").and_then(|p| p.as_str()).unwrap_or("")
                );
            }
        }
    }
    println!("report: {}", summary.run_dir.join("report.md").display());
    Ok(())
}

pub fn validate(a: ValidateArgs) -> anyhow::Result<()> {
    let reg = crate::registry();
    let p = spec::load(&a.pipeline, &reg, &a.set)?;
    if let Err(e) = check_datasets(&p) {
        tracing::warn!("{e}");
    }
    println!(
        "{}: valid pipeline `{}` with {} stages: {}",
        a.pipeline.display(),
        p.meta.name,
        p.stages.len(),
        p.stages
            .iter()
            .map(|s| format!("{} ({})", s.name, s.kind))
            .collect::<Vec<_>>()
            .join(" -> ")
    );
    Ok(())
}

/// Fails before anything runs when a stage reads (declares in `reads`, as for its cache
/// key) a catalogued dataset that is not in the data folder, saying how to get it instead
/// of a stage failing later on a missing folder.
fn check_datasets(pipeline: &spec::Pipeline) -> anyhow::Result<()> {
    let catalog = profundo_data::Catalog::builtin()?;
    let pipeline_dir = pipeline.file.parent().unwrap_or(Path::new(""));
    for path in pipeline
        .stages
        .iter()
        .flat_map(|st| st.prepared.reads(pipeline_dir))
    {
        for d in catalog.datasets.iter().filter(|d| !d.shipped) {
            let at = d.location();
            if path.starts_with(&at) && !profundo_data::verify::present_at(d, &at)? {
                anyhow::bail!(
                    "{}: pipeline `{}` reads the dataset `{}` ({}) at {}, which is not there; {}",
                    pipeline.file.display(),
                    pipeline.meta.name,
                    d.name,
                    d.title,
                    at.display(),
                    d.fetch_hint()
                );
            }
        }
    }
    Ok(())
}
