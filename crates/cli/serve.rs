//! `profundo serve` and `profundo bench serve`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Args, ValueEnum};
use profundo_core::backend::BackendKind;
use profundo_core::manifest::{Domain, PassThroughManifest, resolve_model_dir};
use profundo_serve::batcher::BatchConfig;
use profundo_serve::load::{self, Load, LoadReport, Target};
use profundo_serve::{ServeConfig, Server};

/// Access log format of `profundo serve`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// No access log (warnings and errors only).
    Quiet,
    /// One human-readable line per request.
    Text,
    /// One JSON object per request.
    Json,
}

/// The server's settings shared by `serve` and `bench serve`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// A model to serve, `NAME=PATH` (a model directory, run directory or `runs/<pipeline>`);
    /// once per model. Its domain comes from its manifest.
    #[arg(long = "model", value_name = "NAME=RUN_DIR", required = true)]
    pub models: Vec<String>,
    /// The gallery a faces model identifies against, `NAME=FILE`.
    #[arg(long = "gallery", value_name = "NAME=FILE")]
    pub galleries: Vec<String>,
    /// Most requests run together per model.
    #[arg(long, default_value_t = 32)]
    pub max_batch: usize,
    /// Longest wait for more requests once one is queued, in ms.
    #[arg(long, default_value_t = 5)]
    pub max_queue_delay_ms: u64,
    /// Most requests waiting per model; more are refused with 503 and `Retry-After`.
    #[arg(long, default_value_t = 1024)]
    pub max_queue: usize,
    /// Largest request body, in MiB (more: 413).
    #[arg(long, default_value_t = 10.0)]
    pub max_body_mb: f64,
    /// Longest a request may take, in ms (more: 504).
    #[arg(long, default_value_t = 30_000)]
    pub timeout_ms: u64,
    /// Most requests in progress at once; more are refused with 503.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Backend the models run on.
    #[arg(long, default_value = "flex")]
    pub backend: BackendKind,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Address to bind; port 0 picks a free port (printed as `listening on http://...`).
    /// Binds only loopback unless told otherwise.
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// Access log on standard error.
    #[arg(long, value_enum, default_value_t = LogFormat::Quiet)]
    pub log: LogFormat,
}

#[derive(Debug, Args)]
pub struct BenchServeArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// Concurrent connections, one row per value.
    #[arg(long, value_delimiter = ',', default_value = "1,8,64")]
    pub concurrency_levels: Vec<usize>,
    /// Requests per row (at most).
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Seconds per row (at most).
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Print the rows as JSON.
    #[arg(long)]
    pub json: bool,
}

fn pair(arg: &str, value: &str) -> anyhow::Result<(String, PathBuf)> {
    let (name, path) = value
        .split_once('=')
        .with_context(|| format!("{arg} {value}: expected NAME=PATH"))?;
    Ok((name.trim().to_string(), PathBuf::from(path)))
}

fn config(a: &ServerArgs, addr: SocketAddr) -> anyhow::Result<ServeConfig> {
    if !(a.max_body_mb > 0.0 && a.max_body_mb.is_finite()) {
        anyhow::bail!("--max-body-mb must be positive, not {}", a.max_body_mb);
    }
    if a.max_batch == 0 || a.max_queue == 0 || a.concurrency == 0 || a.timeout_ms == 0 {
        anyhow::bail!(
            "--max-batch, --max-queue, --concurrency and --timeout-ms must be at least 1"
        );
    }
    Ok(ServeConfig {
        models: a
            .models
            .iter()
            .map(|m| pair("--model", m))
            .collect::<anyhow::Result<_>>()?,
        galleries: a
            .galleries
            .iter()
            .map(|g| pair("--gallery", g))
            .collect::<anyhow::Result<_>>()?,
        addr,
        batch: BatchConfig {
            max_batch: a.max_batch,
            max_delay: Duration::from_millis(a.max_queue_delay_ms),
            max_queue: a.max_queue,
        },
        max_body_bytes: (a.max_body_mb * 1024.0 * 1024.0) as usize,
        timeout: Duration::from_millis(a.timeout_ms),
        concurrency: a.concurrency,
        backend: a.backend,
    })
}

pub fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let config = config(&a.server, a.addr)?;
    Ok(profundo_serve::serve(config)?)
}

/// One model's load: its requests.
fn target(name: &str, path: &Path, gallery: bool) -> anyhow::Result<(String, Target)> {
    let dir = resolve_model_dir(path)?;
    let domain = PassThroughManifest::load_any(&dir)?.domain;
    let repo = Path::new(".");
    Ok(match domain {
        Domain::Speech => {
            let bodies = shipped_files(&repo.join("datasets/fsdd/recordings"), "wav", 50)?;
            (
                format!("speech: POST /v1/speech/{name}/recognize (FSDD clips)"),
                Target {
                    method: load::Method::POST,
                    paths: vec![format!("/v1/speech/{name}/recognize")],
                    bodies,
                    content_type: "audio/wav",
                },
            )
        }
        Domain::Faces => {
            let route = if gallery { "identify" } else { "embed" };
            let bodies = shipped_files(&repo.join("datasets/face-photos"), "png", 10)?;
            (
                format!("faces: POST /v1/faces/{name}/{route} (shipped photos)"),
                Target {
                    method: load::Method::POST,
                    paths: vec![format!("/v1/faces/{name}/{route}")],
                    bodies,
                    content_type: "image/png",
                },
            )
        }
        Domain::Translate => {
            let manifest = profundo_translate::translator::TranslatorManifest::load(&dir)?;
            let dir0 = manifest
                .model
                .directions
                .first()
                .context("the translation model has no direction")?;
            let lines = crate::translate::shipped_sentences(&dir0.from, 200)?;
            let bodies = lines
                .iter()
                .map(|l| {
                    serde_json::to_vec(&serde_json::json!({"text": l, "from": dir0.from, "to": dir0.to, "beam": 1}))
                        .map(Into::into)
                })
                .collect::<Result<_, _>>()?;
            (
                format!("translate {dir0}: POST /v1/translate/{name} (one sentence, greedy)"),
                Target {
                    method: load::Method::POST,
                    paths: vec![format!("/v1/translate/{name}")],
                    bodies,
                    content_type: "application/json",
                },
            )
        }
        Domain::Recommend => {
            let rec = profundo_recommend::app::Recommender::load(&dir)?;
            let users: Vec<&String> = rec
                .model
                .users
                .raw
                .iter()
                .enumerate()
                .filter(|(u, _)| !rec.model.seen[*u].is_empty())
                .map(|(_, raw)| raw)
                .take(500)
                .collect();
            anyhow::ensure!(
                !users.is_empty(),
                "the recommender has no user with history"
            );
            (
                format!("recommend: GET /v1/recommend/{name}?user=..&k=10 (users with history)"),
                Target {
                    method: load::Method::GET,
                    paths: users
                        .iter()
                        .map(|u| format!("/v1/recommend/{name}?user={u}&k=10"))
                        .collect(),
                    bodies: Vec::new(),
                    content_type: "text/plain",
                },
            )
        }
        Domain::Perception => anyhow::bail!(
            "{}: `bench serve` has no request set for perception models yet (GTSRB is not \
             shipped); measure them with any HTTP client on POST /v1/signs/{name}/classify",
            dir.display()
        ),
    })
}

/// Up to `n` shipped files with extension `ext` under `dir`, sorted, as request bodies.
fn shipped_files(dir: &Path, ext: &str, n: usize) -> anyhow::Result<Vec<load::Bytes>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| {
            format!(
                "{}: run `bench serve` from the repository root",
                dir.display()
            )
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    paths.sort();
    paths.truncate(n);
    paths
        .iter()
        .map(|p| {
            std::fs::read(p)
                .map(Into::into)
                .with_context(|| format!("cannot read {}", p.display()))
        })
        .collect()
}

pub fn bench(a: BenchServeArgs) -> anyhow::Result<()> {
    let config = config(&a.server, SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let gallery_names: Vec<&str> = config.galleries.iter().map(|(n, _)| n.as_str()).collect();
    let targets = config
        .models
        .iter()
        .map(|(name, path)| target(name, path, gallery_names.contains(&name.as_str())))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let max_time = Duration::from_secs_f64(a.seconds.max(0.1));
    let rows: Vec<(String, LoadReport)> = profundo_serve::runtime()?.block_on(async {
        let server = Server::bind(&config).await?;
        let addr = server.local_addr();
        server.wait_ready().await?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(server.run_until(async {
            let _ = stopped.await;
        }));
        let mut rows = Vec::new();
        for (what, t) in &targets {
            // Warm-up: the first requests pay for lazily built kernels and buffers.
            let warm = Load {
                concurrency: 4,
                requests: 64,
                max_time,
            };
            load::run(addr, t, warm).await;
            for &c in &a.concurrency_levels {
                let l = Load {
                    concurrency: c,
                    requests: a.requests,
                    max_time,
                };
                rows.push((what.clone(), load::run(addr, t, l).await));
            }
        }
        let _ = stop.send(());
        running.await??;
        anyhow::Ok(rows)
    })?;
    print_rows(&a, &config, &rows)
}

fn print_rows(
    a: &BenchServeArgs,
    config: &ServeConfig,
    rows: &[(String, LoadReport)],
) -> anyhow::Result<()> {
    if a.json {
        let v: Vec<_> = rows
            .iter()
            .map(|(what, r)| serde_json::json!({"target": what, "report": r}))
            .collect();
        println!("{}", serde_json::to_string_pretty(&v)?);
        return Ok(());
    }
    println!(
        "profundo serve on loopback: max batch {}, queue delay {} ms, backend {}, {} threads; \
         client and server share this machine ({} cores)\n",
        config.batch.max_batch,
        config.batch.max_delay.as_millis(),
        config.backend,
        crate::bench::rayon_threads(),
        std::thread::available_parallelism().map_or(1, usize::from)
    );
    println!("| target | concurrency | requests | errors | req/s | p50 ms | p99 ms |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    for (what, r) in rows {
        println!(
            "| {what} | {} | {} | {} | {:.0} | {:.2} | {:.2} |",
            r.concurrency, r.ok, r.errors, r.per_second, r.p50_ms, r.p99_ms
        );
    }
    for (what, r) in rows {
        if let Some(e) = &r.first_error {
            eprintln!("warning: {what}, concurrency {}: {e}", r.concurrency);
        }
    }
    Ok(())
}
