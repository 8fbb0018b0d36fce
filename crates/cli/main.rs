//! `profundo`: run declarative deep-learning pipelines and use the models they train.

mod args;
mod bench;
mod bench_models;
mod bench_recommend;
mod bench_stats;
mod bench_workloads;
mod data;
mod faces;
mod inspect;
#[cfg(test)]
mod readme_check;
mod recommend;
mod run;
mod serve;
mod signs;
mod speech;
mod translate;

use std::process::ExitCode;

use clap::Parser;

/// Keeps freed blocks of up to 256 MiB in the process for the next allocation. Tensors come
/// and go with every operation; by default glibc serves blocks over its (adaptive) mmap
/// threshold with fresh mappings and returns them on free, so every new tensor page-faults
/// on first touch. With this, the speech CNN's training step on flex took 6.8-8.3 ms
/// against 10.1-12.4 ms (README, speed against PyTorch). The cost: the process keeps its
/// peak heap until it exits.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn keep_freed_memory() {
    // SAFETY: mallopt only sets allocator parameters; it is called first thing in main,
    // before any other thread exists, and a rejected value (return 0) leaves the default.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 256 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 1 << 30);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn keep_freed_memory() {}

fn main() -> ExitCode {
    keep_freed_memory();
    let cli = args::Cli::parse();
    let access_log = match &cli.command {
        args::Command::Serve(a) => Some(a.log),
        _ => None,
    };
    init_logging(cli.quiet, access_log);
    match dispatch(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_message(&e));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes joined by `: `, leaving out a cause whose text the message
/// already holds (the library errors spell out their source in their own message).
fn error_message(e: &anyhow::Error) -> String {
    let mut message = e.to_string();
    for cause in e.chain().skip(1) {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
    }
    message
}

fn dispatch(cli: args::Cli) -> anyhow::Result<()> {
    match cli.command {
        args::Command::Run(a) => run::run(a),
        args::Command::Validate(a) => run::validate(a),
        args::Command::List(a) => inspect::list(a),
        args::Command::Show(a) => inspect::show(a),
        args::Command::Compare(a) => inspect::compare(a),
        args::Command::Speech(a) => speech::speech(a),
        args::Command::Signs(a) => signs::signs(a),
        args::Command::Faces(a) => faces::faces(a),
        args::Command::Recommend(a) => recommend::recommend(a),
        args::Command::Translate(a) => translate::translate(a),
        args::Command::Bench(a) => bench::bench(a),
        args::Command::Serve(a) => serve::serve(a),
        args::Command::Data(a) => data::data(a),
    }
}

/// The registry of every stage kind this binary knows: generic ones plus each domain's.
pub fn registry() -> profundo_pipeline::Registry {
    let mut reg = profundo_pipeline::Registry::new();
    profundo_pipeline::stages::register(&mut reg);
    profundo_speech::register(&mut reg);
    profundo_faces::register(&mut reg);
    profundo_recommend::register(&mut reg);
    profundo_translate::register(&mut reg);
    profundo_perception::register(&mut reg);
    reg
}

/// Logs on standard error at info level (warn with `--quiet`), or as `PROFUNDO_LOG` says.
/// `profundo serve`'s access log (tower-http's trace events) is off unless `--log text` or
/// `--log json` asks for it.
fn init_logging(quiet: bool, access_log: Option<serve::LogFormat>) {
    use tracing_subscriber::EnvFilter;
    let level = if quiet { "warn" } else { "info" };
    let access = match access_log {
        Some(serve::LogFormat::Text | serve::LogFormat::Json) => "info",
        _ => "off",
    };
    let default = format!("{level},tower_http={access}");
    let filter =
        EnvFilter::try_from_env("PROFUNDO_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if access_log == Some(serve::LogFormat::Json) {
        builder.json().try_init()
    } else {
        builder.with_target(false).without_time().try_init()
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn error_messages_name_each_cause_once() {
        let device = profundo_core::CoreError::BadDevice {
            device: "cuda:0".into(),
            hint: "LibTorch sees 0 CUDA device(s)".into(),
        };
        let stage: anyhow::Error = profundo_pipeline::PipelineError::Stage {
            stage: "train".into(),
            kind: "speech.train".into(),
            source: device.into(),
        }
        .into();
        let message = error_message(&stage);
        assert_eq!(message.matches("LibTorch sees 0").count(), 1, "{message}");
        assert!(message.starts_with("stage `train`"), "{message}");

        // A context added at this edge still shows the cause under it.
        let io = std::fs::read("/nonexistent/profundo").context("reading the model");
        let message = error_message(&io.unwrap_err());
        assert!(message.starts_with("reading the model: "), "{message}");
        assert!(message.len() > "reading the model: ".len(), "{message}");
    }
}
