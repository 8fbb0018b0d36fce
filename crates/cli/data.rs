//! `profundo data list | verify | fetch`.

use std::io::IsTerminal;

use profundo_data::location::{data_dir, data_dir_origin};
use profundo_data::verify::verify_at;
use profundo_data::{Catalog, Dataset};
use serde::Serialize;

use crate::args::{DataArgs, DataCommand, DataFetchArgs, DataListArgs, DataVerifyArgs};

pub fn data(a: DataArgs) -> anyhow::Result<()> {
    match a.command {
        DataCommand::List(a) => list(a),
        DataCommand::Verify(a) => verify(a),
        DataCommand::Fetch(a) => fetch(a),
    }
}

/// One row of `profundo data list --json`.
#[derive(Debug, Serialize)]
struct ListRow<'a> {
    name: &'a str,
    title: &'a str,
    domain: &'a str,
    licence: &'a str,
    shipped: bool,
    path: String,
    present: bool,
    /// `None` when absent (nothing to verify).
    verified: Option<bool>,
    /// Files that are missing or differ, when present but not verified.
    problems: usize,
    pipelines: &'a [String],
    source: &'a str,
}

fn row(d: &Dataset) -> anyhow::Result<ListRow<'_>> {
    let path = d.location();
    let report = verify_at(d, &path)?;
    let present = !report.absent();
    Ok(ListRow {
        name: &d.name,
        title: &d.title,
        domain: &d.domain,
        licence: &d.licence,
        shipped: d.shipped,
        path: path.display().to_string(),
        present,
        verified: present.then(|| report.ok()),
        problems: report.missing.len() + report.changed.len(),
        pipelines: &d.pipelines,
        source: &d.source,
    })
}

fn list(a: DataListArgs) -> anyhow::Result<()> {
    let catalog = Catalog::builtin()?;
    let rows = catalog
        .datasets
        .iter()
        .map(row)
        .collect::<anyhow::Result<Vec<_>>>()?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    println!(
        "data folder: {} ({})",
        data_dir().display(),
        data_dir_origin()
    );
    println!(
        "{:<19} {:<10} {:<8} {:<8} {:<9} path",
        "name", "domain", "shipped", "present", "verified"
    );
    for r in &rows {
        let verified = match r.verified {
            None => "-".to_string(),
            Some(true) => "yes".to_string(),
            Some(false) => format!("NO ({})", r.problems),
        };
        println!(
            "{:<19} {:<10} {:<8} {:<8} {:<9} {}",
            r.name,
            r.domain,
            if r.shipped { "yes" } else { "no" },
            if r.present { "yes" } else { "no" },
            verified,
            r.path
        );
    }
    println!();
    for r in &rows {
        println!("{}: {} — licence: {}", r.name, r.title, r.licence);
    }
    let missing: Vec<&str> = rows.iter().filter(|r| !r.present).map(|r| r.name).collect();
    if !missing.is_empty() {
        println!(
            "\nnot present: {} (get one with `profundo data fetch NAME`)",
            missing.join(", ")
        );
    }
    Ok(())
}

fn verify(a: DataVerifyArgs) -> anyhow::Result<()> {
    let catalog = Catalog::builtin()?;
    let chosen: Vec<&Dataset> = match &a.name {
        Some(n) => vec![catalog.get(n)?],
        None => catalog.datasets.iter().collect(),
    };
    let mut reports = Vec::new();
    let mut failed = Vec::new();
    for d in chosen {
        let path = d.location();
        let report = verify_at(d, &path)?;
        if report.absent() && a.name.is_none() {
            if !a.json {
                println!(
                    "{:<19} absent at {} ({})",
                    d.name,
                    path.display(),
                    d.fetch_hint()
                );
            }
            continue;
        }
        if !a.json {
            if report.ok() {
                println!(
                    "{:<19} ok: {} files, {} bytes at {}",
                    d.name,
                    report.files,
                    report.bytes,
                    path.display()
                );
            } else {
                println!("{:<19} FAILED", d.name);
            }
        }
        if let Err(e) = report.clone().into_result() {
            failed.push(e.to_string());
        }
        reports.push(report);
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&reports)?);
    }
    if !failed.is_empty() {
        anyhow::bail!("{}", failed.join("\n"));
    }
    Ok(())
}

fn fetch(a: DataFetchArgs) -> anyhow::Result<()> {
    let catalog = Catalog::builtin()?;
    let d = catalog.get(&a.name)?;
    let opts = profundo_data::fetch::FetchOptions {
        from: a.from.clone(),
        force: a.force,
        progress: std::io::stderr().is_terminal() && !a.json,
    };
    let report = profundo_data::fetch::fetch(d, &opts)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if report.already_present {
        println!(
            "{}: already at {} and verified ({} files); `--force` fetches it again",
            d.name,
            report.path.display(),
            report.files
        );
    } else {
        println!(
            "{}: {} files ({} bytes) from {} verified and placed at {}",
            d.name,
            report.files,
            report.bytes,
            report.source.as_deref().unwrap_or("?"),
            report.path.display()
        );
    }
    Ok(())
}
