//! Executes a validated pipeline: cache keys, lazy evaluation in dependency order,
//! `--force` / `--from` / `--until`, resume, and publication into the run directory.
//!
//! A stage's cache key is the blake3 hash of the profundo version, its kind, its
//! parameters, the pipeline seed/backend/device, its inputs' keys and the content of the
//! files it reads. Outputs live in `runs/<pipeline>/cache/<stage>-<key>/`, written through
//! a temporary directory and renamed, so a killed run never leaves a half-written output.
//! Work in progress (training checkpoints) lives in `<stage>-<key>.work/` and survives an
//! interruption, which is what `--resume` continues from.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use profundo_core::fsutil::{write_atomic, write_dir_atomic, write_json_atomic};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result, StageError};
use crate::registry::{Artifact, Publication, Registry, StageContext};
use crate::run_dir::{RunStatus, StageStatus, new_run_dir, set_latest};
use crate::spec::Pipeline;

mod locks;
use locks::*;

mod keys;
pub use keys::hash_path;
use keys::*;

/// How to run a pipeline.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Where runs go (`runs/` by default).
    pub runs_dir: PathBuf,
    /// Recompute every stage.
    pub force: bool,
    /// Recompute this stage and everything after it.
    pub from: Option<String>,
    /// Run only this stage and what it needs.
    pub until: Option<String>,
    /// Continue this unfinished run directory.
    pub resume: Option<PathBuf>,
    /// Fail at once when another run of the same pipeline holds its lock, instead of
    /// waiting for it.
    pub no_wait: bool,
}

/// What a run did.
#[derive(Debug, Clone)]
pub struct RunSummary {
    /// The run directory.
    pub run_dir: PathBuf,
    /// Per-stage outcomes, in execution order.
    pub stages: Vec<StageStatus>,
    /// The run's metrics (as in `metrics.json`): a pass-through edge, each evaluation
    /// stage's own layout under its name.
    pub metrics: serde_json::Value,
}

impl RunSummary {
    /// Number of stages that actually ran.
    pub fn ran(&self) -> usize {
        self.stages.iter().filter(|s| s.outcome == "ran").count()
    }
}

#[derive(Serialize, Deserialize)]
struct ArtifactInfo {
    r#type: String,
    stage: String,
    kind: String,
    key: String,
    summary: String,
}

const INFO_FILE: &str = "artifact.json";

struct Exec<'a> {
    pipeline: &'a Pipeline,
    registry: &'a Registry,
    keys: HashMap<String, String>,
    cache_root: PathBuf,
    run_dir: PathBuf,
    forced: BTreeSet<String>,
    loaded: HashMap<String, Arc<dyn Artifact>>,
    status: HashMap<String, StageStatus>,
}

/// Runs `pipeline`; see [`RunOptions`].
pub fn run(pipeline: &Pipeline, registry: &Registry, opts: &RunOptions) -> Result<RunSummary> {
    let name = &pipeline.meta.name;
    for s in [&opts.from, &opts.until].into_iter().flatten() {
        if pipeline.stage(s).is_none() {
            let names: Vec<&str> = pipeline.stages.iter().map(|s| s.name.as_str()).collect();
            return Err(PipelineError::Usage(format!(
                "no stage `{s}` in {} (stages: {})",
                pipeline.file.display(),
                names.join(", ")
            )));
        }
    }
    // One run of a pipeline at a time per runs directory: the cache, the run ids and the
    // `latest` link are shared, so a second run queues here (or fails with --no-wait).
    let pipeline_root = match &opts.resume {
        Some(dir) => dir
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| opts.runs_dir.join(name)),
        None => opts.runs_dir.join(name),
    };
    let _lock = lock_pipeline(&pipeline_root, !opts.no_wait)?;
    let (run_dir, run_id, started) = match &opts.resume {
        Some(dir) => {
            let st = RunStatus::load(dir)?;
            if st.state == "finished" {
                return Err(PipelineError::Usage(format!(
                    "{}: this run finished at {}; there is nothing to resume (start a new run \
                     with `profundo run`)",
                    dir.display(),
                    st.ended.as_deref().unwrap_or("?")
                )));
            }
            (dir.clone(), st.run_id, st.started)
        }
        None => {
            let (dir, id) = new_run_dir(&opts.runs_dir, name)?;
            (dir, id, now())
        }
    };
    let cache_root = run_dir
        .parent()
        .map(|p| p.join("cache"))
        .unwrap_or_else(|| opts.runs_dir.join(name).join("cache"));
    std::fs::create_dir_all(run_dir.join("logs"))
        .map_err(|e| profundo_core::CoreError::io(&run_dir, e))?;
    write_atomic(
        &run_dir.join("pipeline.toml"),
        pipeline.resolved_toml().as_bytes(),
    )?;
    let mut status = RunStatus {
        state: "running".into(),
        pipeline: name.clone(),
        run_id: run_id.clone(),
        started,
        ended: None,
        stages: Vec::new(),
        error: None,
    };
    status.save(&run_dir)?;

    let keys = compute_keys(pipeline);
    let selected = select(pipeline, opts.until.as_deref());
    let forced = if opts.force {
        pipeline.stages.iter().map(|s| s.name.clone()).collect()
    } else if let Some(from) = &opts.from {
        descendants(pipeline, from)
    } else {
        BTreeSet::new()
    };
    let mut ex = Exec {
        pipeline,
        registry,
        keys,
        cache_root,
        run_dir: run_dir.clone(),
        forced,
        loaded: HashMap::new(),
        status: HashMap::new(),
    };
    let result = (|| -> Result<Publication> {
        for st in &pipeline.stages {
            if selected.contains(&st.name)
                && !ex.is_cached(&st.name)
                && ex.wanted(&st.name, &selected)
            {
                ex.get(&st.name)?;
            }
        }
        ex.publish(&selected)
    })();
    let order: Vec<StageStatus> = pipeline
        .stages
        .iter()
        .map(|s| {
            ex.status
                .get(&s.name)
                .cloned()
                .unwrap_or_else(|| StageStatus {
                    name: s.name.clone(),
                    kind: s.kind.clone(),
                    key: ex.keys[&s.name].clone(),
                    outcome: if !selected.contains(&s.name) {
                        "skipped".into()
                    } else if ex.is_cached(&s.name) {
                        "cached".into()
                    } else {
                        // An uncached artifact (e.g. `audio`) whose consumers were all cached.
                        "not needed".into()
                    },
                    seconds: 0.0,
                })
        })
        .collect();
    status.stages = order.clone();
    status.ended = Some(now());
    match result {
        Ok(publication) => {
            let metrics = serde_json::to_value(&publication.metrics).unwrap_or_default();
            write_json_atomic(&run_dir.join("metrics.json"), &metrics)?;
            write_atomic(
                &run_dir.join("report.md"),
                report(pipeline, &status, &publication).as_bytes(),
            )?;
            status.state = "finished".into();
            status.save(&run_dir)?;
            set_latest(&run_dir, &run_id)?;
            Ok(RunSummary {
                run_dir,
                stages: order,
                metrics,
            })
        }
        Err(e) => {
            status.state = "failed".into();
            status.error = Some(e.to_string());
            status.save(&run_dir)?;
            Err(e)
        }
    }
}

fn now() -> String {
    chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

impl Exec<'_> {
    fn cache_dir(&self, stage: &str) -> PathBuf {
        self.cache_root
            .join(format!("{stage}-{}", &self.keys[stage][..16]))
    }

    fn output_type(&self, stage: &str) -> &'static str {
        self.pipeline
            .stage(stage)
            .and_then(|s| self.registry.kind(&s.kind))
            .map(|k| k.output())
            .unwrap_or("")
    }

    fn is_cached(&self, stage: &str) -> bool {
        !self.forced.contains(stage)
            && self.registry.loader(self.output_type(stage)).is_some()
            && self.cache_dir(stage).join(INFO_FILE).is_file()
    }

    /// Whether `stage` must run for its own sake: a cacheable output, or an uncached one
    /// (e.g. `audio`) that no selected stage consumes. Uncached outputs that feed other
    /// stages are computed only when a consumer actually runs.
    fn wanted(&self, stage: &str, selected: &BTreeSet<String>) -> bool {
        if self.registry.loader(self.output_type(stage)).is_some() {
            return true;
        }
        !self
            .pipeline
            .stages
            .iter()
            .any(|s| selected.contains(&s.name) && s.inputs.iter().flatten().any(|i| i == stage))
    }

    /// The artifact of `stage`: already in memory, loaded from the cache, or computed.
    fn get(&mut self, stage: &str) -> Result<Arc<dyn Artifact>> {
        if let Some(a) = self.loaded.get(stage) {
            return Ok(a.clone());
        }
        let spec = self
            .pipeline
            .stage(stage)
            .ok_or_else(|| PipelineError::Usage(format!("no stage `{stage}`")))?;
        let fail = |source: StageError| PipelineError::Stage {
            stage: spec.name.clone(),
            kind: spec.kind.clone(),
            source,
        };
        let dir = self.cache_dir(stage);
        if self.is_cached(stage) {
            let loader = self
                .registry
                .loader(self.output_type(stage))
                .ok_or_else(|| {
                    PipelineError::Usage(format!(
                        "artifact type `{}` has no loader",
                        self.output_type(stage)
                    ))
                })?;
            let a = loader(&dir).map_err(fail)?;
            self.status
                .entry(stage.to_string())
                .or_insert_with(|| StageStatus {
                    name: spec.name.clone(),
                    kind: spec.kind.clone(),
                    key: self.keys[stage].clone(),
                    outcome: "cached".into(),
                    seconds: 0.0,
                });
            self.loaded.insert(stage.to_string(), a.clone());
            return Ok(a);
        }
        let mut inputs = Vec::with_capacity(spec.inputs.len());
        for input in &spec.inputs {
            inputs.push(match input {
                Some(p) => Some(self.get(p)?),
                None => None,
            });
        }
        // One process computes a stage at a time: a second run of the same pipeline waits
        // here, then finds the artifact in the cache instead of racing on its directories.
        let _lock = lock_stage(&dir, stage).map_err(fail)?;
        if self.is_cached(stage) {
            return self.get(stage);
        }
        let work_dir = dir.with_extension("work");
        std::fs::create_dir_all(&work_dir)
            .map_err(|e| profundo_core::CoreError::io(&work_dir, e))?;
        let pipeline_dir = self
            .pipeline
            .file
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let mut ctx = StageContext::new(
            stage,
            self.pipeline.meta.seed,
            self.pipeline.meta.backend,
            &self.pipeline.meta.device,
            work_dir.clone(),
            pipeline_dir,
            Some(&self.run_dir.join("logs").join(format!("{stage}.log"))),
        );
        ctx.log(&format!(
            "running {} (key {})",
            spec.kind,
            &self.keys[stage][..16]
        ));
        let t0 = Instant::now();
        let artifact = spec.prepared.run(&mut ctx, &inputs).map_err(fail)?;
        let seconds = t0.elapsed().as_secs_f64();
        ctx.log(&format!("done in {seconds:.1}s: {}", artifact.summary()));
        if self.registry.loader(artifact.type_name()).is_some() {
            let info = ArtifactInfo {
                r#type: artifact.type_name().to_string(),
                stage: stage.to_string(),
                kind: spec.kind.clone(),
                key: self.keys[stage].clone(),
                summary: artifact.summary(),
            };
            write_dir_atomic(&dir, |tmp| -> Result<(), StageError> {
                artifact.save(tmp)?;
                write_json_atomic(&tmp.join(INFO_FILE), &info)?;
                Ok(())
            })
            .map_err(fail)?;
            let _ = std::fs::remove_dir_all(&work_dir);
            // Re-load so that artifacts pointing at work files now point at the cache.
            let loader = self
                .registry
                .loader(artifact.type_name())
                .ok_or_else(|| PipelineError::Usage("loader vanished".into()))?;
            let reloaded = loader(&dir).map_err(fail)?;
            self.loaded.insert(stage.to_string(), reloaded.clone());
        } else {
            let _ = std::fs::remove_dir_all(&work_dir);
            self.loaded.insert(stage.to_string(), artifact.clone());
        }
        self.status.insert(
            stage.to_string(),
            StageStatus {
                name: spec.name.clone(),
                kind: spec.kind.clone(),
                key: self.keys[stage].clone(),
                outcome: "ran".into(),
                seconds,
            },
        );
        Ok(self.loaded[stage].clone())
    }

    fn publish(&mut self, selected: &BTreeSet<String>) -> Result<Publication> {
        let mut publication = Publication {
            run_dir: self.run_dir.clone(),
            ..Default::default()
        };
        for spec in &self.pipeline.stages {
            if !selected.contains(&spec.name)
                || !self.registry.publishes(self.output_type(&spec.name))
            {
                continue;
            }
            let a = self.get(&spec.name)?;
            let dir = self.cache_dir(&spec.name);
            a.publish(&spec.name, &dir, &mut publication)
                .map_err(|source| PipelineError::Stage {
                    stage: spec.name.clone(),
                    kind: spec.kind.clone(),
                    source,
                })?;
        }
        Ok(publication)
    }
}

fn select(p: &Pipeline, until: Option<&str>) -> BTreeSet<String> {
    let Some(target) = until else {
        return p.stages.iter().map(|s| s.name.clone()).collect();
    };
    let mut out = BTreeSet::new();
    let mut todo = vec![target.to_string()];
    while let Some(s) = todo.pop() {
        if out.insert(s.clone())
            && let Some(spec) = p.stage(&s)
        {
            todo.extend(spec.inputs.iter().flatten().cloned());
        }
    }
    out
}

fn descendants(p: &Pipeline, from: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::from([from.to_string()]);
    for st in &p.stages {
        if st.inputs.iter().flatten().any(|i| out.contains(i)) {
            out.insert(st.name.clone());
        }
    }
    out
}

fn report(p: &Pipeline, status: &RunStatus, publication: &Publication) -> String {
    let mut s = format!(
        "# {} — run {}\n\n{}\n\n- started: {}\n- ended: {}\n- seed: {}, backend: {}, device: {}\n- profundo {}\n\n## Stages\n\n| stage | kind | outcome | seconds |\n|---|---|---|---|\n",
        p.meta.name,
        status.run_id,
        p.meta.description,
        status.started,
        status.ended.as_deref().unwrap_or("-"),
        p.meta.seed,
        p.meta.backend,
        p.meta.device,
        profundo_core::VERSION,
    );
    for st in &status.stages {
        s.push_str(&format!(
            "| {} | {} | {} | {:.1} |\n",
            st.name, st.kind, st.outcome, st.seconds
        ));
    }
    for (title, body) in &publication.report {
        s.push_str(&format!("\n## {title}\n\n{body}\n"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_process_waits_for_the_stage_lock() {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("cache").join("train-abc");
        let held = lock_stage(&dir, "train").expect("first lock");
        let (tx, rx) = std::sync::mpsc::channel();
        let d = dir.clone();
        let waiter = std::thread::spawn(move || {
            let lock = lock_stage(&d, "train");
            tx.send(()).ok();
            lock.map(|_| ())
        });
        assert!(
            rx.recv_timeout(std::time::Duration::from_millis(300))
                .is_err(),
            "the second lock must wait while the first is held"
        );
        drop(held);
        assert!(rx.recv_timeout(std::time::Duration::from_secs(10)).is_ok());
        assert!(waiter.join().expect("thread").is_ok());
    }
}
