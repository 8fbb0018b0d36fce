//! A saved recommender: the factor model with everything an app needs to answer requests
//! (id maps, titles, what each user rated in training, the popularity list for cold starts),
//! written as one file beside the model manifest.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::dataset::{IdMap, Interactions};
use crate::error::{RecommendError, Result};
use crate::factors::{FactorModel, top_k};
use crate::train::{ModelKind, items_by_user, popularity};

/// The file name of a saved recommender inside a model directory.
pub const MODEL_FILE: &str = "recommender.postcard";

/// Everything needed to serve recommendations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServingModel {
    /// The model kind.
    pub kind: ModelKind,
    /// The fitted model.
    pub model: FactorModel,
    /// User ids.
    pub users: IdMap,
    /// Item ids.
    pub items: IdMap,
    /// Item titles (empty when unknown).
    pub titles: Vec<String>,
    /// Item genres.
    pub genres: Vec<String>,
    /// Items each user interacted with in training (sorted): never recommended to them.
    pub seen: Vec<Vec<u32>>,
    /// Training interactions of each item (popularity, the cold-start answer).
    pub item_counts: Vec<f32>,
    /// The rating scale.
    pub scale: (f32, f32),
}

impl ServingModel {
    /// Packs a model fitted on `train` rows of `d`.
    pub fn new(kind: ModelKind, model: FactorModel, d: &Interactions, train: &[u32]) -> Self {
        Self {
            kind,
            model,
            users: d.users.clone(),
            items: d.items.clone(),
            titles: d.titles.clone(),
            genres: d.genres.clone(),
            seen: items_by_user(d, train),
            item_counts: popularity(d, train).item_bias,
            scale: d.scale,
        }
    }

    /// The `k` items with the most training interactions, with their counts (ties: the
    /// lower index first).
    pub fn popular(&self, k: usize) -> Vec<(u32, f32)> {
        top_k(&self.item_counts, k, &[])
    }

    /// Writes the model file into `dir` (atomically).
    pub fn save(&self, dir: &Path) -> Result<()> {
        let bytes = postcard::to_allocvec(self)
            .map_err(|e| RecommendError::Config(format!("cannot encode the model: {e}")))?;
        profundo_core::fsutil::write_atomic(&dir.join(MODEL_FILE), &bytes)?;
        Ok(())
    }

    /// Reads the model file of `dir`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MODEL_FILE);
        let bytes = std::fs::read(&path).map_err(|e| RecommendError::Model {
            path: path.clone(),
            message: format!("cannot read the recommender: {e}"),
        })?;
        let mut m: ServingModel =
            postcard::from_bytes(&bytes).map_err(|e| RecommendError::Model {
                path: path.clone(),
                message: format!("corrupt recommender file: {e}"),
            })?;
        m.users.reindex();
        m.items.reindex();
        let n = m.items.len();
        if m.model.n_items() != n || m.seen.len() != m.users.len() || m.item_counts.len() != n {
            return Err(RecommendError::Model {
                path,
                message: "inconsistent recommender file (sizes disagree)".into(),
            });
        }
        Ok(m)
    }
}
