//! `profundo bench`: speed measurements printed as a table (never asserted in tests).

use std::time::Instant;

use profundo_speech::app::Recognizer;
use profundo_speech::wav::read_wav;

use crate::args::{BenchArgs, BenchCommand, BenchRecognizeArgs};

pub fn bench(a: BenchArgs) -> anyhow::Result<()> {
    match a.command {
        BenchCommand::Recognize(r) => recognize(r),
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn recognize(a: BenchRecognizeArgs) -> anyhow::Result<()> {
    let t0 = Instant::now();
    let rec = Recognizer::load(&a.model.model, a.model.backend)?;
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let audio = read_wav(&a.file)?;
    let samples = rec.prepare(&audio)?;
    let iters = a.iters.max(1);
    for _ in 0..10 {
        rec.recognize_samples("", &samples);
    }
    let (mut feat, mut total) = (Vec::with_capacity(iters), Vec::with_capacity(iters));
    for _ in 0..iters {
        let t = Instant::now();
        std::hint::black_box(rec.featurizer().compute(&samples));
        feat.push(t.elapsed().as_secs_f64() * 1e3);
        let t = Instant::now();
        std::hint::black_box(rec.recognize_samples("", &samples));
        total.push(t.elapsed().as_secs_f64() * 1e3);
    }
    feat.sort_by(f64::total_cmp);
    total.sort_by(f64::total_cmp);
    let rows = [
        ("features", &feat),
        ("recognize (features + model)", &total),
    ];
    if a.json {
        let v: Vec<_> = rows.iter().map(|(name, xs)| serde_json::json!({
            "measure": name, "median_ms": percentile(xs, 0.5), "p95_ms": percentile(xs, 0.95), "iters": iters,
            "backend": a.model.backend.to_string(), "threads": rayon_threads(),
        })).collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "model load: {load_ms:.1} ms; clip {} ({:.2} s); backend {}; {iters} iterations; {} threads",
        a.file.display(),
        audio.seconds(),
        a.model.backend,
        rayon_threads()
    );
    println!("| measure | median ms | p95 ms |\n|---|---|---|");
    for (name, xs) in rows {
        println!(
            "| {name} | {:.3} | {:.3} |",
            percentile(xs, 0.5),
            percentile(xs, 0.95)
        );
    }
    Ok(())
}

fn rayon_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}
