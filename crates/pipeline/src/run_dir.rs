//! Run directories: `runs/<pipeline>/<run-id>/` with `status.json`, the `latest` pointer,
//! and the `show` / `compare` views.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use profundo_core::fsutil::{read_json, write_json_atomic};
use serde::{Deserialize, Serialize};

use crate::error::{PipelineError, Result};

/// How a stage fared in a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageStatus {
    /// Stage name.
    pub name: String,
    /// Stage kind.
    pub kind: String,
    /// Cache key.
    pub key: String,
    /// `ran`, `cached`, `not needed` (an uncached input whose consumers were all
    /// cached) or `skipped` (outside `--until`).
    pub outcome: String,
    /// Seconds spent running it (0 when cached).
    pub seconds: f64,
}

/// `status.json` of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    /// `running`, `finished` or `failed`.
    pub state: String,
    /// Pipeline name.
    pub pipeline: String,
    /// Run id.
    pub run_id: String,
    /// Start time (RFC 3339).
    pub started: String,
    /// End time, when ended.
    pub ended: Option<String>,
    /// Per-stage outcomes.
    pub stages: Vec<StageStatus>,
    /// Error message of a failed run.
    pub error: Option<String>,
}

/// File name of the run status.
pub const STATUS_FILE: &str = "status.json";

impl RunStatus {
    /// Reads `RUN/status.json`, with a clear error when `run` is not a run directory.
    pub fn load(run: &Path) -> Result<Self> {
        let p = run.join(STATUS_FILE);
        if !p.is_file() {
            return Err(PipelineError::Usage(format!(
                "{}: not a run directory (no {STATUS_FILE}); runs live in runs/<pipeline>/<run-id>",
                run.display()
            )));
        }
        Ok(read_json(&p)?)
    }

    /// Writes `RUN/status.json` atomically.
    pub fn save(&self, run: &Path) -> Result<()> {
        Ok(write_json_atomic(&run.join(STATUS_FILE), self)?)
    }
}

/// Creates a fresh run directory `runs_dir/<pipeline>/<timestamp>[-N]`.
pub fn new_run_dir(runs_dir: &Path, pipeline: &str) -> Result<(PathBuf, String)> {
    let base = runs_dir.join(pipeline);
    std::fs::create_dir_all(&base).map_err(|e| profundo_core::CoreError::io(&base, e))?;
    let stamp = chrono::Local::now().format("%Y%m%d-%H%M%S").to_string();
    for n in 0..1000 {
        let id = if n == 0 {
            stamp.clone()
        } else {
            format!("{stamp}-{n}")
        };
        let dir = base.join(&id);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok((dir, id)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(profundo_core::CoreError::io(&dir, e).into()),
        }
    }
    Err(PipelineError::Usage(format!(
        "{}: too many runs this second",
        base.display()
    )))
}

/// Points `runs_dir/<pipeline>/latest` at `run_id` (a symlink, replaced atomically).
pub fn set_latest(run_dir: &Path, run_id: &str) -> Result<()> {
    let Some(base) = run_dir.parent() else {
        return Ok(());
    };
    let latest = base.join("latest");
    let tmp = base.join(".latest.tmp");
    let _ = std::fs::remove_file(&tmp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(run_id, &tmp).map_err(|e| profundo_core::CoreError::io(&tmp, e))?;
    #[cfg(not(unix))]
    std::fs::write(&tmp, run_id).map_err(|e| profundo_core::CoreError::io(&tmp, e))?;
    std::fs::rename(&tmp, &latest).map_err(|e| profundo_core::CoreError::io(&latest, e))?;
    Ok(())
}

/// Reads `RUN/metrics.json` (an empty object if the run wrote none).
pub fn load_metrics(run: &Path) -> Result<serde_json::Value> {
    let p = run.join("metrics.json");
    if !p.is_file() {
        return Ok(serde_json::json!({}));
    }
    Ok(read_json(&p)?)
}

/// Flattens nested JSON metrics into `a.b.c -> number` (arrays of objects are skipped).
pub fn flatten_metrics(v: &serde_json::Value) -> BTreeMap<String, f64> {
    fn walk(prefix: &str, v: &serde_json::Value, out: &mut BTreeMap<String, f64>) {
        match v {
            serde_json::Value::Number(n) => {
                if let Some(f) = n.as_f64() {
                    out.insert(prefix.to_string(), f);
                }
            }
            serde_json::Value::Object(m) => {
                for (k, x) in m {
                    let key = if prefix.is_empty() {
                        k.clone()
                    } else {
                        format!("{prefix}.{k}")
                    };
                    walk(&key, x, out);
                }
            }
            _ => {}
        }
    }
    let mut out = BTreeMap::new();
    walk("", v, &mut out);
    out
}

/// One row of a `compare` table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MetricDiff {
    /// Flattened metric path.
    pub metric: String,
    /// Value in the first run.
    pub old: Option<f64>,
    /// Value in the second run.
    pub new: Option<f64>,
    /// `new - old` when both exist.
    pub change: Option<f64>,
}

/// Metrics of two runs side by side (like `dvc metrics diff`).
pub fn compare(a: &Path, b: &Path) -> Result<Vec<MetricDiff>> {
    RunStatus::load(a)?;
    RunStatus::load(b)?;
    let ma = flatten_metrics(&load_metrics(a)?);
    let mb = flatten_metrics(&load_metrics(b)?);
    let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
    keys.sort();
    keys.dedup();
    Ok(keys
        .into_iter()
        .map(|k| {
            let (o, n) = (ma.get(k).copied(), mb.get(k).copied());
            MetricDiff {
                metric: k.clone(),
                old: o,
                new: n,
                change: o.zip(n).map(|(o, n)| n - o),
            }
        })
        .collect())
}

/// Renders [`compare`] rows as a Markdown table.
pub fn compare_markdown(a: &Path, b: &Path, rows: &[MetricDiff]) -> String {
    let f = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into());
    let mut s = format!(
        "| metric | {} | {} | change |\n|---|---|---|---|\n",
        a.display(),
        b.display()
    );
    for r in rows {
        s.push_str(&format!(
            "| {} | {} | {} | {} |\n",
            r.metric,
            f(r.old),
            f(r.new),
            r.change
                .map(|c| format!("{c:+.4}"))
                .unwrap_or_else(|| "-".into())
        ));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flatten_nested_numbers() {
        let v = serde_json::json!({"eval": {"accuracy": 0.5, "folds": {"a": 1}}, "name": "x"});
        let f = flatten_metrics(&v);
        assert_eq!(f.get("eval.accuracy"), Some(&0.5));
        assert_eq!(f.get("eval.folds.a"), Some(&1.0));
        assert_eq!(f.len(), 2);
    }
}
