//! `classifier`: the models `speech.train` produced (one per fold, plus an optional
//! final model trained on all data) and each fold's held-out predictions.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::fsutil::{copy_dir, read_json, write_json_atomic};
use profundo_core::train::{EpochRecord, StopReason};
use serde::{Deserialize, Serialize};

use crate::StageError;
use crate::registry::Artifact;

/// One held-out prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    /// Item name.
    pub name: String,
    /// Item group (e.g. speaker).
    pub group: String,
    /// True class index.
    pub truth: usize,
    /// Class probabilities.
    pub probs: Vec<f32>,
}

/// A model trained on one fold (or on everything, for the final model).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldModel {
    /// Fold name (`final` for the model trained on all data).
    pub fold: String,
    /// Model directory, relative to the artifact directory.
    pub model_dir: String,
    /// Metrics per epoch.
    pub history: Vec<EpochRecord>,
    /// Epoch whose weights were kept.
    pub best_epoch: usize,
    /// Why training ended.
    pub stop: StopReason,
    /// Training seconds.
    pub seconds: f64,
    /// Held-out predictions (empty for the final model).
    pub predictions: Vec<Prediction>,
}

/// Output of `speech.train`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainedClassifier {
    /// Class names.
    pub labels: Vec<String>,
    /// The split protocol evaluated.
    pub protocol: String,
    /// Per-fold models (and `final` last, when trained).
    pub models: Vec<FoldModel>,
    /// Where the model directories are (not serialised: the artifact directory).
    #[serde(skip)]
    pub root: PathBuf,
}

const FILE: &str = "classifier.json";

impl TrainedClassifier {
    /// Artifact type name.
    pub const TYPE: &'static str = "classifier";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let mut c: TrainedClassifier = read_json(&dir.join(FILE))?;
        c.root = dir.to_path_buf();
        Ok(Arc::new(c))
    }

    /// The models evaluated on held-out data (all but `final`).
    pub fn fold_models(&self) -> impl Iterator<Item = &FoldModel> {
        self.models.iter().filter(|m| m.fold != "final")
    }

    /// Absolute directory of a model.
    pub fn model_path(&self, m: &FoldModel) -> PathBuf {
        self.root.join(&m.model_dir)
    }
}

impl Artifact for TrainedClassifier {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        for m in &self.models {
            copy_dir(&self.root.join(&m.model_dir), &dir.join(&m.model_dir))?;
        }
        Ok(write_json_atomic(&dir.join(FILE), self)?)
    }
    fn summary(&self) -> String {
        let folds: Vec<String> = self
            .models
            .iter()
            .map(|m| format!("{} (best epoch {})", m.fold, m.best_epoch))
            .collect();
        format!("{} model(s): {}", self.models.len(), folds.join(", "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn exportable_models(&self) -> Vec<(String, PathBuf)> {
        self.models
            .iter()
            .map(|m| (m.fold.clone(), self.model_path(m)))
            .collect()
    }
    fn publish(
        &self,
        stage: &str,
        cache_dir: &Path,
        run: &mut crate::registry::Publication,
    ) -> Result<(), StageError> {
        // Training curves of every model.
        for m in &self.models {
            super::publish_training_plot(run, stage, &m.fold, &cache_dir.join(&m.model_dir))?;
        }
        let mut md = String::from(
            "| model | best epoch | epochs run | stopped | seconds |\n|---|---|---|---|---|\n",
        );
        for m in &self.models {
            md.push_str(&format!(
                "| {} | {} | {} | {:?} | {:.1} |\n",
                m.fold,
                m.best_epoch,
                m.history.len(),
                m.stop,
                m.seconds
            ));
        }
        run.report.push((format!("Training (`{stage}`)"), md));
        Ok(())
    }
}
