//! `face_embeddings`: every item's embedding for each fold of a split, which items were
//! trained on, and the verification threshold chosen on validation items.

use std::any::Any;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::fsutil::copy_dir;
use profundo_core::train::{EpochRecord, StopReason};
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::publish_training_plot;
use profundo_pipeline::registry::{Artifact, Publication};
use serde::{Deserialize, Serialize};

/// How two embeddings are compared; higher scores mean more alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Similarity {
    /// Dot product of unit vectors.
    Cosine,
    /// Negative Euclidean distance.
    Euclidean,
}

impl Similarity {
    /// The score of two embeddings.
    pub fn score(self, a: &[f32], b: &[f32]) -> f64 {
        match self {
            Similarity::Cosine => a.iter().zip(b).map(|(x, y)| (x * y) as f64).sum(),
            Similarity::Euclidean => -a
                .iter()
                .zip(b)
                .map(|(x, y)| ((x - y) * (x - y)) as f64)
                .sum::<f64>()
                .sqrt(),
        }
    }
}

/// What an item was used for in a fold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Fitted on.
    Train,
    /// Held out from training people, to pick the epoch and the threshold.
    Valid,
    /// The fold's test item.
    Test,
}

/// One embedded item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbeddedItem {
    /// Item name (`person/image`).
    pub name: String,
    /// The person.
    pub person: String,
    /// Its role in the fold.
    pub role: Role,
}

/// One fold's embeddings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldEmbeddings {
    /// Fold name.
    pub fold: String,
    /// Embedding size.
    pub dim: usize,
    /// Items, in the order of `vectors`.
    pub items: Vec<EmbeddedItem>,
    /// `items.len() * dim` values.
    pub vectors: Vec<f32>,
    /// "Same person" threshold chosen on the validation items.
    pub threshold: f64,
    /// How the threshold was chosen.
    pub threshold_rule: String,
    /// Trained model directory, relative to the artifact directory (none for baselines).
    pub model_dir: Option<String>,
    /// Training history (empty for baselines).
    pub history: Vec<EpochRecord>,
    /// Epoch whose weights were kept (0 for baselines).
    pub best_epoch: usize,
    /// Why training ended (none for baselines).
    pub stop: Option<StopReason>,
    /// Seconds spent fitting.
    pub seconds: f64,
}

impl FoldEmbeddings {
    /// Embedding of item `i`.
    pub fn vector(&self, i: usize) -> &[f32] {
        &self.vectors[i * self.dim..(i + 1) * self.dim]
    }

    /// Indices of the items with `role`.
    pub fn with_role(&self, role: Role) -> Vec<usize> {
        (0..self.items.len())
            .filter(|&i| self.items[i].role == role)
            .collect()
    }
}

/// Output of `faces.train_embedding` and `faces.eigenfaces`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaceEmbeddings {
    /// Human name of the method, e.g. `cosface network` or `eigenfaces (k=50)`.
    pub method: String,
    /// How embeddings are compared.
    pub similarity: Similarity,
    /// The split protocol.
    pub protocol: String,
    /// One entry per fold.
    pub folds: Vec<FoldEmbeddings>,
    /// The artifact directory (not serialised).
    #[serde(skip)]
    pub root: PathBuf,
}

const FILE: &str = "embeddings.postcard";

impl FaceEmbeddings {
    /// Artifact type name.
    pub const TYPE: &'static str = "face_embeddings";

    /// Loads from a cache directory.
    pub fn load(dir: &Path) -> Result<Arc<dyn Artifact>, StageError> {
        let path = dir.join(FILE);
        let bytes = std::fs::read(&path).map_err(|e| StageError::io(&path, e))?;
        let mut e: FaceEmbeddings = postcard::from_bytes(&bytes)
            .map_err(|e| StageError::data(&path, format!("corrupt cached embeddings: {e}")))?;
        e.root = dir.to_path_buf();
        Ok(Arc::new(e))
    }
}

impl Artifact for FaceEmbeddings {
    fn type_name(&self) -> &'static str {
        Self::TYPE
    }
    fn save(&self, dir: &Path) -> Result<(), StageError> {
        for f in &self.folds {
            if let Some(m) = &f.model_dir {
                copy_dir(&self.root.join(m), &dir.join(m))?;
            }
        }
        let bytes = postcard::to_allocvec(self).map_err(|e| StageError::Other(e.to_string()))?;
        let path = dir.join(FILE);
        profundo_core::fsutil::write_atomic(&path, &bytes)?;
        Ok(())
    }
    fn summary(&self) -> String {
        let folds: Vec<String> = self
            .folds
            .iter()
            .map(|f| {
                format!(
                    "{} ({} items, threshold {:.3})",
                    f.fold,
                    f.items.len(),
                    f.threshold
                )
            })
            .collect();
        format!("{}: {}", self.method, folds.join(", "))
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
    fn exportable_models(&self) -> Vec<(String, PathBuf)> {
        self.folds
            .iter()
            .filter_map(|f| {
                f.model_dir
                    .as_ref()
                    .map(|m| (f.fold.clone(), self.root.join(m)))
            })
            .collect()
    }
    fn publish(
        &self,
        stage: &str,
        cache_dir: &Path,
        run: &mut Publication,
    ) -> Result<(), StageError> {
        let mut md = String::from(
            "| fold | best epoch | epochs run | stopped | threshold | seconds |\n|---|---|---|---|---|---|\n",
        );
        for f in &self.folds {
            if let Some(m) = &f.model_dir {
                publish_training_plot(run, stage, &f.fold, &cache_dir.join(m))?;
            }
            md.push_str(&format!(
                "| {} | {} | {} | {} | {:.4} | {:.1} |\n",
                f.fold,
                f.best_epoch,
                f.history.len(),
                f.stop.map_or("-".into(), |s| format!("{s:?}")),
                f.threshold,
                f.seconds
            ));
        }
        run.report
            .push((format!("Embeddings (`{stage}`: {})", self.method), md));
        Ok(())
    }
}
