//! `profundo bench models`: every domain model's training step, one-item latency and batch
//! throughput on each backend, next to the same model in PyTorch (`bench_models.py`), as a
//! Markdown table or JSON rows.
//!
//! The method is built to survive a noisy, shared machine ([`crate::bench_stats`]): each
//! side is a persistent worker process (this binary with `--worker`, or the Python script)
//! that builds its model once and then answers timing requests over a pipe. For each model
//! and measure the sides are timed in alternating short bursts, A B then B A, round after
//! round, so drifts in machine speed hit both alike; each round gives one ratio
//! (profundo's burst median / PyTorch's). The rounds run in several sessions of freshly
//! started workers, because two processes of the same program can differ by more than
//! their rounds do; a row reports the median of all ratios with a 95% two-stage bootstrap
//! interval over sessions and rounds, "ahead" or "behind" only when it excludes 1.
//! Both sides use the same thread count, pinned to the same CPUs where the OS allows; a
//! worker per model keeps the peak memory reported for a model that model's alone.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use anyhow::{Context, bail};
use profundo_core::backend::{self, BackendKind};
use serde::{Deserialize, Serialize};

use crate::args::BenchModelsArgs;
use crate::bench::{peak_rss_mib, percentile, rayon_threads};
use crate::bench_stats::{Verdict, clustered_median_interval, median};
use crate::bench_workloads::{self as workloads, Measure, Workload};

mod workers;
use workers::*;

/// The PyTorch twins of the workloads (run with `python -c`).
const PYTORCH_SCRIPT: &str = include_str!("../bench_models.py");

/// Most calls in one burst (a burst of a fast measure is cut here even if it is shorter
/// than the burst time).
const MAX_BURST_CALLS: usize = 500;

/// A measure a worker offers and its items per call.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct MeasureInfo {
    measure: String,
    batch: usize,
}

/// A row of the table and of `--json`.
#[derive(Debug, Serialize)]
struct Row {
    model: String,
    backend: String,
    measure: String,
    batch: usize,
    /// Median of every timed call, ms.
    profundo_ms: f64,
    profundo_p95_ms: f64,
    pytorch_ms: Option<f64>,
    /// Median of the per-round ratios profundo / PyTorch.
    ratio: Option<f64>,
    /// 95% bootstrap interval of that median.
    ratio_lo: Option<f64>,
    ratio_hi: Option<f64>,
    /// `ahead`, `behind` or `tie` (the interval contains 1).
    verdict: Option<Verdict>,
    /// Alternating rounds, the sessions of fresh workers they ran in, and the timed calls
    /// of each side over all of them.
    rounds: usize,
    sessions: usize,
    profundo_calls: usize,
    pytorch_calls: Option<usize>,
    profundo_gflops: Option<f64>,
    pytorch_gflops: Option<f64>,
    /// The machine's estimated peak for the threads used.
    peak_gflops: Option<f64>,
    profundo_peak_mib: Option<f64>,
    pytorch_peak_mib: Option<f64>,
    /// PyTorch's peak GPU memory (CUDA runs only).
    pytorch_gpu_peak_mib: Option<f64>,
}

pub fn models(a: BenchModelsArgs) -> anyhow::Result<()> {
    if let Some(name) = &a.worker {
        return worker(name, &a);
    }
    if a.rounds == 0 {
        bail!("--rounds must be at least 1");
    }
    if a.sessions == 0 {
        bail!("--sessions must be at least 1");
    }
    if !(a.seconds >= 0.0 && a.seconds.is_finite()) {
        bail!(
            "--seconds must be a number of seconds >= 0, got {}",
            a.seconds
        );
    }
    let selected = selected_models(&a.models)?;
    let on_cuda = backend::cuda_index(&a.device)?.is_some();
    let backends = backends(&a, on_cuda)?;
    let threads = rayon_threads();
    let python = (!a.no_pytorch).then(|| python_path(&a));
    let torch = match &python {
        Some(py) => torch_version(py),
        None => Err("skipped (--no-pytorch)".to_string()),
    };
    let python = python.filter(|_| torch.is_ok());
    // GFLOP/s against a peak only means something for the CPU the rows ran on.
    let cpu = (!on_cuda).then(|| CpuPeak::read(threads)).flatten();
    let mut accelerator = None;
    let mut pinned = None;

    let mut rows = Vec::new();
    for &w in &selected {
        let compared = compare(w, &backends, python.as_deref(), threads, &a)?;
        accelerator = accelerator.or(compared.accelerator);
        pinned = pinned.or(compared.pinned);
        for mut r in compared.rows {
            let flops = Measure::ALL
                .into_iter()
                .find(|m| m.name() == r.measure)
                .and_then(|m| w.flops(m));
            let mflop = flops.map(|f| f / 1e6);
            r.profundo_gflops = mflop.map(|f| f / r.profundo_ms);
            r.pytorch_gflops = mflop.zip(r.pytorch_ms).map(|(f, ms)| f / ms);
            r.peak_gflops = flops.and(cpu.as_ref().map(|c| c.gflops));
            rows.push(r);
        }
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let device = match accelerator {
        Some(name) => format!("{} ({name})", a.device),
        None => a.device.clone(),
    };
    let setup = Setup {
        threads,
        device: &device,
        torch: &torch,
        cpu: cpu.as_ref(),
        pinned: pinned.as_deref(),
        rounds: a.rounds,
        sessions: a.sessions,
        seconds: a.seconds,
    };
    print_table(&rows, &setup);
    Ok(())
}

/// Timings of one side of one measure: every call, and each round's burst median, grouped
/// by session.
#[derive(Debug, Default, Clone)]
struct SideTimes {
    calls: Vec<f64>,
    sessions: Vec<Vec<f64>>,
}

/// One model compared on every side.
struct Compared {
    rows: Vec<Row>,
    accelerator: Option<String>,
    pinned: Option<Vec<usize>>,
}

/// Starts one worker per side: each profundo backend, then PyTorch (with `python`).
fn start_sides(
    w: Workload,
    backends: &[BackendKind],
    python: Option<&Path>,
    threads: usize,
    a: &BenchModelsArgs,
) -> anyhow::Result<Vec<WorkerProc>> {
    let mut sides = Vec::new();
    for &b in backends {
        sides.push(WorkerProc::profundo(w, b, threads, a)?);
    }
    if let Some(py) = python {
        sides.push(WorkerProc::pytorch(py, w, threads, a)?);
    }
    Ok(sides)
}

/// Times every measure of `w` on each profundo backend and (with `python`) in PyTorch: in
/// `--sessions` sessions of freshly started workers, each running its share of the
/// `--rounds` alternating rounds per measure.
fn compare(
    w: Workload,
    backends: &[BackendKind],
    python: Option<&Path>,
    threads: usize,
    a: &BenchModelsArgs,
) -> anyhow::Result<Compared> {
    let n_sides = backends.len() + usize::from(python.is_some());
    let torch = python.map(|_| backends.len());
    let sessions = a.sessions.clamp(1, a.rounds);
    let burst_ms = 1e3 * a.seconds / a.rounds as f64;
    let mut times = vec![vec![SideTimes::default(); n_sides]; Measure::ALL.len()];
    let mut batch = vec![0; Measure::ALL.len()];
    let mut peaks: Vec<(Option<f64>, Option<f64>)> = vec![(None, None); n_sides];
    let mut accelerator = None;
    let mut pinned = None;
    let mut round = 0;
    for session in 0..sessions {
        // Rounds split as evenly as they go: 24 over 4 sessions, 6 each.
        let rounds = (session + 1) * a.rounds / sessions - session * a.rounds / sessions;
        let mut sides = start_sides(w, backends, python, threads, a)?;
        for (mi, m) in Measure::ALL.into_iter().enumerate() {
            let name = m.name();
            batch[mi] = sides[0].batch(name);
            // Two untimed warm-up calls; the second sizes the side's bursts.
            let mut burst = Vec::with_capacity(n_sides);
            for s in &mut sides {
                let warm = s.time(name, 2)?;
                let each = warm.last().copied().unwrap_or(1.0).max(1e-6);
                burst.push(((burst_ms / each).floor() as usize).clamp(1, MAX_BURST_CALLS));
            }
            for t in &mut times[mi] {
                t.sessions.push(Vec::with_capacity(rounds));
            }
            for r in 0..rounds {
                // A B ... then ... B A: each side runs first as often as last.
                let order: Vec<usize> = if (round + r) % 2 == 0 {
                    (0..n_sides).collect()
                } else {
                    (0..n_sides).rev().collect()
                };
                for i in order {
                    let ms = sides[i].time(name, burst[i])?;
                    let t = &mut times[mi][i];
                    if let Some(bursts) = t.sessions.last_mut() {
                        bursts.push(median(&ms));
                    }
                    t.calls.extend(ms);
                }
            }
        }
        round += rounds;
        for (i, s) in sides.into_iter().enumerate() {
            if let Reply::Done {
                peak_mib,
                gpu_peak_mib,
                device_name,
                pinned: p,
            } = s.finish()?
            {
                let max = |a: Option<f64>, b: Option<f64>| match (a, b) {
                    (Some(x), Some(y)) => Some(x.max(y)),
                    (x, y) => x.or(y),
                };
                peaks[i] = (max(peaks[i].0, peak_mib), max(peaks[i].1, gpu_peak_mib));
                accelerator = accelerator.or(device_name);
                pinned = pinned.or(p);
            }
        }
    }
    let mut rows = Vec::new();
    for (mi, m) in Measure::ALL.into_iter().enumerate() {
        for (i, b) in backends.iter().enumerate() {
            let ours = &times[mi][i];
            let theirs = torch.map(|t| &times[mi][t]);
            // One group of per-round ratios per session.
            let groups: Option<Vec<Vec<f64>>> = theirs.map(|t| {
                ours.sessions
                    .iter()
                    .zip(&t.sessions)
                    .map(|(o, p)| o.iter().zip(p).map(|(o, p)| o / p).collect())
                    .collect()
            });
            let interval = groups.as_deref().map(clustered_median_interval);
            let mut sorted = ours.calls.clone();
            sorted.sort_by(f64::total_cmp);
            rows.push(Row {
                model: w.name().into(),
                backend: b.to_string(),
                measure: m.name().into(),
                batch: batch[mi],
                profundo_ms: median(&ours.calls),
                profundo_p95_ms: percentile(&sorted, 0.95),
                pytorch_ms: theirs.map(|t| median(&t.calls)),
                ratio: groups.as_ref().map(|g| median(&g.concat())),
                ratio_lo: interval.map(|(lo, _)| lo),
                ratio_hi: interval.map(|(_, hi)| hi),
                verdict: interval.map(|(lo, hi)| Verdict::of(lo, hi)),
                rounds: round,
                sessions,
                profundo_calls: ours.calls.len(),
                pytorch_calls: theirs.map(|t| t.calls.len()),
                profundo_gflops: None,
                pytorch_gflops: None,
                peak_gflops: None,
                profundo_peak_mib: peaks[i].0,
                pytorch_peak_mib: torch.and_then(|t| peaks[t].0),
                pytorch_gpu_peak_mib: torch.and_then(|t| peaks[t].1),
            });
        }
    }
    Ok(Compared {
        rows,
        accelerator,
        pinned,
    })
}

/// The backends to time: `--backends`, else every compiled backend but the deprecated
/// ndarray on the CPU, and tch alone on CUDA (the only backend that runs there).
fn backends(a: &BenchModelsArgs, on_cuda: bool) -> anyhow::Result<Vec<BackendKind>> {
    if !a.backends.is_empty() {
        if let Some(b) = a
            .backends
            .iter()
            .find(|b| on_cuda && **b != BackendKind::Tch)
        {
            bail!(
                "the {b} backend runs on the CPU only; `--device {}` needs `--backends tch`",
                a.device
            );
        }
        return Ok(a.backends.clone());
    }
    let mut all = backend::available();
    all.retain(|b| *b != BackendKind::Ndarray && (!on_cuda || *b == BackendKind::Tch));
    if all.is_empty() {
        bail!(
            "`--device {}` needs the tch backend: build with `--features tch`",
            a.device
        );
    }
    Ok(all)
}

fn selected_models(names: &[String]) -> anyhow::Result<Vec<Workload>> {
    if names.is_empty() {
        return Ok(workloads::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            Workload::parse(n).with_context(|| {
                let known: Vec<_> = workloads::ALL.iter().map(|w| w.name()).collect();
                format!("unknown model `{n}`; known: {}", known.join(", "))
            })
        })
        .collect()
}

/// The machine's peak single-precision rate for the threads used, estimated from
/// `/proc/cpuinfo`: cores x clock x FLOPs per cycle (two fused multiply-add units of the
/// widest vector width the cores execute at full rate).
#[derive(Debug)]
struct CpuPeak {
    model: String,
    ghz: f64,
    flops_per_cycle: f64,
    cores: usize,
    gflops: f64,
}

impl CpuPeak {
    fn read(cores: usize) -> Option<Self> {
        let info = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let field = |name: &str| {
            info.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        };
        let mhz = info
            .lines()
            .filter(|l| l.starts_with("cpu MHz"))
            .filter_map(|l| l.split_once(':')?.1.trim().parse::<f64>().ok())
            .fold(0.0, f64::max);
        let flags = field("flags").unwrap_or_default();
        let has = |f: &str| flags.split_whitespace().any(|x| x == f);
        let amd = field("vendor_id").is_some_and(|v| v.contains("AMD"));
        // AMD cores up to Zen 4 (family 25) run 512-bit instructions as two 256-bit
        // halves; Zen 5 (family 26) server cores have full-width 512-bit FMA units.
        let family = field("cpu family").and_then(|f| f.parse::<u32>().ok());
        let full_width_512 = !amd || family.is_some_and(|f| f >= 26);
        let flops_per_cycle = if has("avx512f") && full_width_512 {
            64.0
        } else if has("avx2") && has("fma") {
            32.0
        } else if has("avx") {
            16.0
        } else {
            8.0
        };
        (mhz > 0.0).then(|| {
            let ghz = mhz / 1e3;
            Self {
                model: field("model name").unwrap_or_else(|| "unknown CPU".into()),
                ghz,
                flops_per_cycle,
                cores,
                gflops: cores as f64 * ghz * flops_per_cycle,
            }
        })
    }
}

/// What the table's header states about how it was measured.
struct Setup<'a> {
    threads: usize,
    device: &'a str,
    torch: &'a Result<String, String>,
    cpu: Option<&'a CpuPeak>,
    pinned: Option<&'a [usize]>,
    rounds: usize,
    sessions: usize,
    seconds: f64,
}

fn print_table(rows: &[Row], s: &Setup) {
    let pinned = match s.pinned {
        Some(cpus) => format!(
            "pinned to CPUs {}",
            cpus.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(",")
        ),
        None => "not pinned (the OS does not allow it here)".into(),
    };
    match s.torch {
        Ok(v) => println!(
            "device {}; {} threads on each side, {pinned}; PyTorch {v} with \
             torch.set_num_threads({})",
            s.device, s.threads, s.threads
        ),
        Err(why) => println!(
            "device {}; {} threads, {pinned}; PyTorch {why}: profundo's numbers only",
            s.device, s.threads
        ),
    }
    println!(
        "{} alternating rounds per measure (A B, B A, ...) in {} sessions of fresh worker \
         processes, bursts of about {:.0} ms per side",
        s.rounds,
        s.sessions.clamp(1, s.rounds),
        1e3 * s.seconds / s.rounds as f64
    );
    if let Some(c) = s.cpu {
        println!(
            "{}: estimated peak {:.0} GFLOP/s ({} cores x {:.2} GHz x {} FLOP/cycle)",
            c.model, c.gflops, c.cores, c.ghz, c.flops_per_cycle
        );
    }
    println!(
        "\n| model | backend | measure | batch | profundo ms | PyTorch ms | ratio [95% interval] | verdict | GFLOP/s profundo / PyTorch | % of peak | peak MiB profundo / PyTorch |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    let opt =
        |x: Option<f64>, digits: usize| x.map_or("-".to_string(), |v| format!("{v:.digits$}"));
    for r in rows {
        let pct = match (r.profundo_gflops, r.peak_gflops) {
            (Some(g), Some(p)) => format!("{:.0}%", 100.0 * g / p),
            _ => "-".into(),
        };
        let theirs = match (r.pytorch_peak_mib, r.pytorch_gpu_peak_mib) {
            (Some(host), Some(gpu)) => format!("{host:.0} + {gpu:.0} GPU"),
            (host, _) => opt(host, 0),
        };
        let ratio = match (r.ratio, r.ratio_lo, r.ratio_hi) {
            (Some(x), Some(lo), Some(hi)) => format!("{x:.2}x [{lo:.2}, {hi:.2}]"),
            _ => "-".into(),
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {} | {} | {} | {} / {} | {} | {} / {} |",
            r.model,
            r.backend,
            r.measure,
            r.batch,
            r.profundo_ms,
            opt(r.pytorch_ms, 3),
            ratio,
            r.verdict.map_or("-", Verdict::word),
            opt(r.profundo_gflops, 1),
            opt(r.pytorch_gflops, 1),
            pct,
            opt(r.profundo_peak_mib, 0),
            theirs,
        );
    }
    println!(
        "\nms: median of every timed call, each waited on until the device has finished it. \
         ratio: median over the rounds of profundo's burst median / PyTorch's, with its 95% \
         bootstrap interval (sessions, then rounds, resampled); \"ahead\" / \"behind\" only when the interval excludes 1. FLOPs \
         are counted from the layer shapes (a training step as three forward passes); the \
         recommender rows are memory-bound and have none. Peak MiB is host memory; on CUDA \
         PyTorch's allocator peak is added (LibTorch's is not exposed to tch)."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_models_are_named_with_the_known_ones() {
        let err = selected_models(&["bert".into()]).unwrap_err().to_string();
        assert!(
            err.contains("`bert`") && err.contains("speech-cnn"),
            "{err}"
        );
        assert_eq!(selected_models(&[]).unwrap().len(), workloads::ALL.len());
    }

    #[test]
    fn the_pytorch_script_defines_every_model() {
        for w in workloads::ALL {
            assert!(
                PYTORCH_SCRIPT.contains(&format!("\"{}\"", w.name())),
                "bench_models.py has no {}",
                w.name()
            );
        }
    }
}
