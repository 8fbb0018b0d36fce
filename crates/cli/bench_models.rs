//! `profundo bench models`: every domain model's training step, one-item latency and batch
//! throughput on each backend, next to the same model in PyTorch (`bench_models.py`, run in
//! the same invocation with the same thread count), as a Markdown table or JSON rows.
//!
//! Each model runs in its own child process (this binary with `--worker`, or the Python
//! script), so the peak memory reported for a model is that model's alone.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use profundo_core::backend::{self, BackendKind};
use serde::{Deserialize, Serialize};

use crate::args::BenchModelsArgs;
use crate::bench::{peak_rss_mib, percentile, rayon_threads};
use crate::bench_workloads::{self as workloads, Measure, Sampling, Workload};

/// The PyTorch twins of the workloads, fed to Python on standard input.
const PYTORCH_SCRIPT: &str = include_str!("bench_models.py");

/// One model's timings from one process (a worker or the PyTorch script).
#[derive(Debug, Serialize, Deserialize)]
struct Timings {
    /// Peak resident memory of the process, MiB.
    peak_mib: Option<f64>,
    /// Peak GPU memory reserved by PyTorch's allocator, MiB (PyTorch on CUDA only; tch
    /// does not expose LibTorch's allocator statistics).
    #[serde(default)]
    gpu_peak_mib: Option<f64>,
    /// The accelerator's name as PyTorch reports it (CUDA only).
    #[serde(default)]
    device_name: Option<String>,
    rows: Vec<Timing>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Timing {
    measure: String,
    batch: usize,
    median_ms: f64,
    p95_ms: f64,
    iters: usize,
}

/// A row of the table and of `--json`.
#[derive(Debug, Serialize)]
struct Row {
    model: String,
    backend: String,
    measure: String,
    batch: usize,
    profundo_ms: f64,
    profundo_p95_ms: f64,
    pytorch_ms: Option<f64>,
    /// profundo_ms / pytorch_ms.
    ratio: Option<f64>,
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
    let sampling = Sampling {
        min_iters: 3,
        max_iters: a.iters.max(3),
        budget_s: a.seconds,
    };
    if let Some(name) = &a.worker {
        return worker(name, &a, &sampling);
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
    // GFLOP/s against a peak only means something for the CPU the rows ran on.
    let cpu = (!on_cuda).then(|| CpuPeak::read(threads)).flatten();
    let mut accelerator = None;

    let mut rows = Vec::new();
    for &w in &selected {
        let theirs = match (&python, &torch) {
            (Some(py), Ok(_)) => Some(pytorch_timings(py, w, threads, &a)?),
            _ => None,
        };
        if let Some(name) = theirs.as_ref().and_then(|t| t.device_name.clone()) {
            accelerator = Some(name);
        }
        for &b in &backends {
            let ours = worker_timings(w, b, &a)?;
            for t in &ours.rows {
                let measure = Measure::ALL
                    .into_iter()
                    .find(|m| m.name() == t.measure)
                    .context("worker printed an unknown measure")?;
                let flops = w.flops(measure);
                let gflops = |ms: f64| flops.map(|f| f / ms / 1e6);
                let py = theirs
                    .as_ref()
                    .and_then(|p| p.rows.iter().find(|r| r.measure == t.measure));
                rows.push(Row {
                    model: w.name().into(),
                    backend: b.to_string(),
                    measure: t.measure.clone(),
                    batch: t.batch,
                    profundo_ms: t.median_ms,
                    profundo_p95_ms: t.p95_ms,
                    pytorch_ms: py.map(|p| p.median_ms),
                    ratio: py.map(|p| t.median_ms / p.median_ms),
                    profundo_gflops: gflops(t.median_ms),
                    pytorch_gflops: py.and_then(|p| gflops(p.median_ms)),
                    peak_gflops: flops.and(cpu.as_ref().map(|c| c.gflops)),
                    profundo_peak_mib: ours.peak_mib,
                    pytorch_peak_mib: theirs.as_ref().and_then(|p| p.peak_mib),
                    pytorch_gpu_peak_mib: theirs.as_ref().and_then(|p| p.gpu_peak_mib),
                });
            }
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
    print_table(&rows, threads, &device, &torch, cpu.as_ref());
    Ok(())
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

/// Runs in the child process: times one workload on one backend and prints its timings.
fn worker(name: &str, a: &BenchModelsArgs, s: &Sampling) -> anyhow::Result<()> {
    let w = Workload::parse(name).with_context(|| format!("unknown model `{name}`"))?;
    let kind = a.backends.first().copied().unwrap_or_default();
    // The same thread count as flex's rayon pool and the PyTorch script.
    backend::set_libtorch_threads(rayon_threads());
    let device = backend::device(kind, &a.device)?;
    let rows = workloads::run(w, &device, s)
        .into_iter()
        .map(|(m, xs)| Timing {
            measure: m.name().into(),
            batch: w.items(m),
            median_ms: percentile(&xs, 0.5),
            p95_ms: percentile(&xs, 0.95),
            iters: xs.len(),
        })
        .collect();
    let out = Timings {
        peak_mib: peak_rss_mib(),
        gpu_peak_mib: None,
        device_name: None,
        rows,
    };
    println!("{}", serde_json::to_string(&out)?);
    Ok(())
}

/// The options a worker and the PyTorch script share with this process.
fn sampling_args(a: &BenchModelsArgs) -> [String; 6] {
    [
        "--iters".into(),
        a.iters.to_string(),
        "--seconds".into(),
        a.seconds.to_string(),
        "--device".into(),
        a.device.clone(),
    ]
}

fn worker_timings(w: Workload, b: BackendKind, a: &BenchModelsArgs) -> anyhow::Result<Timings> {
    let exe = std::env::current_exe().context("cannot find this program to start a worker")?;
    let out = Command::new(exe)
        .args(["bench", "models", "--worker", w.name(), "--backends"])
        .arg(b.to_string())
        .args(sampling_args(a))
        .stderr(Stdio::inherit())
        .output()
        .context("starting a benchmark worker")?;
    if !out.status.success() {
        bail!("the {} worker on {b} failed ({})", w.name(), out.status);
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the {} worker's timings", w.name()))
}

/// `--python`, else `$PROFUNDO_PYTHON`, else the virtual environment that
/// `scripts/setup-torch.sh` creates, else `python3`.
fn python_path(a: &BenchModelsArgs) -> PathBuf {
    if let Some(p) = &a.python {
        return p.clone();
    }
    if let Some(p) = std::env::var_os("PROFUNDO_PYTHON") {
        return p.into();
    }
    if let Some(home) = std::env::var_os("HOME") {
        let venv = PathBuf::from(home).join(".cache/profundo/torch-venv/bin/python");
        if venv.exists() {
            return venv;
        }
    }
    "python3".into()
}

/// PyTorch's version, or why it cannot be used.
fn torch_version(python: &Path) -> Result<String, String> {
    let out = Command::new(python)
        .args(["-c", "import torch; print(torch.__version__)"])
        .output()
        .map_err(|e| format!("{} cannot be started: {e}", python.display()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    } else {
        let err = String::from_utf8_lossy(&out.stderr);
        let last = err.lines().last().unwrap_or("").trim();
        Err(format!(
            "not available from {} ({last}); scripts/setup-torch.sh installs it",
            python.display()
        ))
    }
}

fn pytorch_timings(
    python: &Path,
    w: Workload,
    threads: usize,
    a: &BenchModelsArgs,
) -> anyhow::Result<Timings> {
    let mut child = Command::new(python)
        .args(["-", "--model", w.name(), "--threads"])
        .arg(threads.to_string())
        .args(sampling_args(a))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    child
        .stdin
        .take()
        .context("no standard input for the PyTorch script")?
        .write_all(PYTORCH_SCRIPT.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("the PyTorch script failed on {} ({})", w.name(), out.status);
    }
    serde_json::from_slice(&out.stdout)
        .with_context(|| format!("reading the PyTorch timings of {}", w.name()))
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

fn print_table(
    rows: &[Row],
    threads: usize,
    device: &str,
    torch: &Result<String, String>,
    cpu: Option<&CpuPeak>,
) {
    match torch {
        Ok(v) => println!(
            "device {device}; {threads} threads; PyTorch {v} with torch.set_num_threads({threads})"
        ),
        Err(why) => {
            println!("device {device}; {threads} threads; PyTorch {why}: profundo's numbers only")
        }
    }
    if let Some(c) = cpu {
        println!(
            "{}: estimated peak {:.0} GFLOP/s ({} cores x {:.2} GHz x {} FLOP/cycle)",
            c.model, c.gflops, c.cores, c.ghz, c.flops_per_cycle
        );
    }
    println!(
        "\n| model | backend | measure | batch | profundo ms | PyTorch ms | ratio | GFLOP/s profundo / PyTorch | % of peak | peak MiB profundo / PyTorch |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
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
        println!(
            "| {} | {} | {} | {} | {:.2} | {} | {} | {} / {} | {} | {} / {} |",
            r.model,
            r.backend,
            r.measure,
            r.batch,
            r.profundo_ms,
            opt(r.pytorch_ms, 2),
            r.ratio.map_or("-".to_string(), |x| format!("{x:.2}x")),
            opt(r.profundo_gflops, 1),
            opt(r.pytorch_gflops, 1),
            pct,
            opt(r.profundo_peak_mib, 0),
            theirs,
        );
    }
    println!(
        "\nms: median call time, each call waited on until the device has finished it. FLOPs \
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
