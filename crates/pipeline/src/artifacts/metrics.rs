//! `metrics`: evaluation results, a Markdown report section and plot files.

use std::any::Any;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::fsutil::{read_json, write_json_atomic};
use profundo_core::manifest::{Domain, Threshold};
use serde::{Deserialize, Serialize};

use crate::StageError;
use crate::registry::{Artifact, Publication};

/// Evaluation output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsArtifact {
    /// Metrics as JSON, merged into the run's `metrics.json` under the stage name. A
    /// pass-through edge: each evaluation stage writes its own layout, which this generic
    /// artifact and the run directory carry without reading.
    pub metrics: serde_json::Value,
    /// What `export.model` records as the manifest's `metrics`: the evaluating domain's
    /// typed summary (its `ModelSection::Metrics`), serialised. A pass-through edge too:
    /// the domain's manifest reader checks it.
    pub summary: Option<serde_json::Value>,
    /// The domain whose models the summary fits (`None`: any, e.g. a generic classifier
    /// evaluation); `export.model` refuses a model of another domain.
    pub domain: Option<Domain>,
    /// Decision thresholds the evaluation re-chose, by fold (e.g. on people unseen in
    /// training); `export.model` sets the exported fold's in the manifest.
    pub thresholds: BTreeMap<String, Threshold>,
    /// Markdown for `report.md`.
    pub report: String,
    /// Plot files (names inside `root`).
    pub plots: Vec<String>,
    /// Where plot files are.
    #[serde(skip)]
    pub root: PathBuf,
}

const FILE: &str = "metrics.json";

impl MetricsArtifact {
    /// Artifact type name.
    pub const TYPE: &'static str = "metrics";

    /// A domain's typed evaluation summary as this artifact's `summary`.
    pub fn summary_of<T: Serialize>(summary: &T) -> Result<serde_json::Value, StageError> {
        serde_json::to_value(summary).map_err(|e| StageError::Other(e.to_string()))
    }

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let mut m: MetricsArtifact = read_json(&dir.join(FILE))?;
        m.root = dir.to_path_buf();
        Ok(Arc::new(m))
    }
}

impl Artifact for MetricsArtifact {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        for p in &self.plots {
            let src = self.root.join(p);
            std::fs::copy(&src, dir.join(p)).map_err(|e| super::io_err(&src, e))?;
        }
        Ok(write_json_atomic(&dir.join(FILE), self)?)
    }
    fn summary(&self) -> String {
        let s = self.metrics.to_string();
        if s.len() > 160 {
            format!("{}...", &s[..s.floor_char_boundary(160)])
        } else {
            s
        }
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn publish(
        &self,
        stage: &str,
        cache_dir: &Path,
        run: &mut Publication,
    ) -> Result<(), StageError> {
        let plots = run.run_dir.join("plots");
        std::fs::create_dir_all(&plots).map_err(|e| super::io_err(&plots, e))?;
        for p in &self.plots {
            let src = cache_dir.join(p);
            std::fs::copy(&src, plots.join(format!("{stage}-{p}")))
                .map_err(|e| super::io_err(&src, e))?;
        }
        run.metrics.insert(stage.to_string(), self.metrics.clone());
        run.report
            .push((format!("Evaluation (`{stage}`)"), self.report.clone()));
        Ok(())
    }
}
