//! `profundo bench recommend` and `profundo bench ingest`.

use std::time::Instant;

use anyhow::Context;
use profundo_core::backend::BackendKind;
use profundo_recommend::app::Recommender;
use profundo_recommend::factors::{FactorModel, top_k_by_vector};
use rand::{RngExt, SeedableRng};

use crate::args::{BenchIngestArgs, BenchRecommendArgs};
use crate::bench::{peak_rss_mib, print_table, rayon_threads, timed};

pub fn recommend(a: BenchRecommendArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let rec = Recommender::load(&a.model)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let m = &rec.model;
    let user = match &a.user {
        Some(u) => u.clone(),
        None => (0..m.users.len())
            .find(|&u| !m.seen[u].is_empty())
            .map(|u| m.users.raw[u].clone())
            .context("the model has no user with a history")?,
    };
    let iters = a.iters.max(1);
    let model_top = timed(iters, || {
        std::hint::black_box(rec.recommend(&user, 10).ok());
    });
    // A synthetic catalogue: random item vectors and biases, one random query.
    let mut rng = rand::rngs::StdRng::seed_from_u64(7);
    let big = FactorModel {
        item_bias: (0..a.items).map(|_| rng.random_range(-0.1..0.1)).collect(),
        dim: a.dim,
        item_factors: (0..a.items * a.dim)
            .map(|_| rng.random_range(-1.0..1.0))
            .collect(),
        ..Default::default()
    };
    let query: Vec<f32> = (0..a.dim).map(|_| rng.random_range(-1.0..1.0)).collect();
    let exclude: Vec<u32> = (0..50).map(|k| k * 997).collect();
    let big_top = timed(iters.min(50), || {
        std::hint::black_box(top_k_by_vector(&big, &query, 10, &exclude));
    });
    let header = format!(
        "model load {load_ms:.1} ms ({} users, {} items, {} factors); synthetic catalogue {} items x {} dims ({:.0} MiB); {} threads; peak memory {:.0} MiB",
        m.users.len(),
        m.items.len(),
        m.model.dim,
        a.items,
        a.dim,
        (a.items * (a.dim + 1) * 4) as f64 / (1024.0 * 1024.0),
        rayon_threads(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    let model_name = format!("top-10 for user {user} ({} items)", m.items.len());
    let big_name = format!("top-10 over {} items x {} dims", a.items, a.dim);
    print_table(
        &header,
        &[(&model_name, &model_top), (&big_name, &big_top)],
        iters,
        BackendKind::Flex,
        a.json,
    )
}

pub fn ingest(a: BenchIngestArgs) -> anyhow::Result<()> {
    if a.generate_only {
        if let Some(dir) = a.file.parent() {
            std::fs::create_dir_all(dir)?;
        }
        profundo_recommend::table::write_synthetic_parquet(&a.file, a.rows, 1_000_000, 100_000, 1)?;
        return Ok(());
    }
    if !a.file.exists() {
        // Generate in a child process so that this one's peak memory is the ingest's alone.
        eprintln!("generating {} rows into {} ...", a.rows, a.file.display());
        let t = Instant::now();
        let status = std::process::Command::new(std::env::current_exe()?)
            .args(["bench", "ingest", "--generate-only", "--rows"])
            .arg(a.rows.to_string())
            .arg("--file")
            .arg(&a.file)
            .status()?;
        anyhow::ensure!(status.success(), "generating {} failed", a.file.display());
        eprintln!("generated in {:.1} s", t.elapsed().as_secs_f64());
    }
    let size = std::fs::metadata(&a.file)?.len();
    let before = peak_rss_mib().unwrap_or(f64::NAN);
    let t = Instant::now();
    let spec = profundo_recommend::table::TableSpec {
        format: profundo_recommend::table::Format::Parquet,
        ..Default::default()
    };
    let (data, _) = profundo_recommend::dataset::load(&a.file, &spec)?;
    let seconds = t.elapsed().as_secs_f64();
    let peak = peak_rss_mib().unwrap_or(f64::NAN);
    println!(
        "| file | rows | users | items | duplicates dropped | seconds | rows/s | peak memory MiB (before) |\n|---|---|---|---|---|---|---|---|\n| {} ({:.0} MiB) | {} | {} | {} | {} | {seconds:.1} | {:.0} | {peak:.0} ({before:.0}) |",
        a.file.display(),
        size as f64 / (1024.0 * 1024.0),
        data.len() + data.duplicates_dropped,
        data.users.len(),
        data.items.len(),
        data.duplicates_dropped,
        (data.len() + data.duplicates_dropped) as f64 / seconds
    );
    Ok(())
}
