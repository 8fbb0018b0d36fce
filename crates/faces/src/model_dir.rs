//! The face model directory: the member networks' weights and a manifest whose `model`
//! section ([`FaceModelSection`]) holds the network, the preprocessing, the fitted
//! post-processing (centring, whitening) and how it was trained; [`FaceSummary`] is what an
//! evaluation records in it.

use std::path::Path;

use profundo_core::manifest::{Domain, ModelManifest, ModelSection, save_weights};
use profundo_core::train::{StopReason, TrainConfig};
use serde::{Deserialize, Serialize};

use crate::augment::FaceAugment;
use crate::model::{EmbeddingNet, EmbeddingNetConfig, MarginLoss, member_weights_file};
use crate::preprocess::Preprocess;
use crate::stages::embeddings::Similarity;
use crate::whiten::Whitening;
use crate::{FacesError, Result};

/// The face section of a model manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceModelSection {
    /// The embedding network (every member has this configuration).
    pub network: EmbeddingNetConfig,
    /// Networks whose embeddings are joined side by side (`model.safetensors`,
    /// `member-1.safetensors`, ...).
    pub members: usize,
    /// Shape of one input, `[1, height, width]`.
    pub input_shape: [usize; 3],
    /// How an image becomes an input.
    pub preprocess: Preprocess,
    /// How two embeddings are compared.
    pub similarity: Similarity,
    /// The mean training embedding subtracted from every embedding (then re-normalised),
    /// fitted in training (`center = true`).
    pub center: Option<Vec<f32>>,
    /// The whitening applied after centring, fitted on the training images (`whiten`).
    pub whiten: Option<Whitening>,
    /// The people trained on (the margin loss's classes), in class order.
    pub people: Vec<String>,
    /// How the model was trained.
    pub training: FaceTraining,
}

/// How a face model was trained.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceTraining {
    /// Optimisation settings.
    pub config: TrainConfig,
    /// The margin loss.
    pub loss: MarginLoss,
    /// Image augmentation.
    pub augment: FaceAugment,
    /// The fold.
    pub fold: String,
    /// Images fitted on.
    pub train_items: usize,
    /// Images that picked the best epoch and the threshold.
    pub valid_items: usize,
    /// The kept epoch of each member.
    pub best_epochs: Vec<usize>,
    /// Why the first member's training ended.
    pub stop: StopReason,
    /// The fold's seed.
    pub seed: u64,
    /// Backend it was trained on.
    pub backend: String,
}

/// The headline of a face evaluation (means over folds of the model's test people), as a
/// model manifest records it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaceSummary {
    /// The split protocol evaluated.
    pub protocol: String,
    /// The method (e.g. `cosface network`).
    pub method: String,
    /// Folds averaged.
    pub folds: usize,
    /// Verification: area under the ROC curve.
    pub auc: f64,
    /// Verification: equal error rate.
    pub eer: f64,
    /// True accept rate at a 1% false accept rate.
    pub tar_at_far_1e2: f64,
    /// False accept rate at each fold's decision threshold.
    pub far_at_threshold: f64,
    /// False reject rate at each fold's decision threshold.
    pub frr_at_threshold: f64,
    /// Closed set: nearest training image is the right person (ORL protocol).
    pub closed_set_accuracy: Option<f64>,
    /// Open set: a query's best-matching enrolled person is right.
    pub open_set_identification: Option<f64>,
    /// Open set: right and above the threshold.
    pub open_set_detection_identification: Option<f64>,
    /// Open set: a non-enrolled person is rejected.
    pub open_set_rejection: Option<f64>,
}

impl ModelSection for FaceModelSection {
    const DOMAIN: Domain = Domain::Faces;
    type Metrics = FaceSummary;
}

/// A face model's manifest.
pub type FaceManifest = ModelManifest<FaceModelSection>;

impl FaceModelSection {
    /// Embedding size: the members' embeddings side by side.
    pub fn dim(&self) -> usize {
        self.network.embedding_dim * self.members
    }

    /// Checks what training fitted against the embedding size.
    pub fn check(&self) -> std::result::Result<(), String> {
        let dim = self.dim();
        if self.members == 0 {
            return Err("`model.members` is 0".into());
        }
        if self.center.as_ref().is_some_and(|c| c.len() != dim) {
            return Err(format!("`model.center` is not a list of {dim} numbers"));
        }
        if let Some(w) = &self.whiten {
            if !w.fits(dim) {
                return Err(format!("`model.whiten` is not a whitening of {dim} values"));
            }
            if self.center.is_none() {
                return Err("`model.whiten` without `model.center`".into());
            }
        }
        Ok(())
    }
}

/// Writes each member network's weights and the manifest (last) into `dir`.
pub fn save_embedding_nets(
    dir: &Path,
    nets: &[EmbeddingNet],
    manifest: &FaceManifest,
) -> Result<()> {
    if nets.len() != manifest.model.members {
        return Err(FacesError::Config(format!(
            "{} networks for a manifest of {} members",
            nets.len(),
            manifest.model.members
        )));
    }
    std::fs::create_dir_all(dir).map_err(|e| profundo_core::CoreError::io(dir, e))?;
    for (k, net) in nets.iter().enumerate() {
        save_weights(&dir.join(member_weights_file(k)), net)?;
    }
    Ok(manifest.save(dir)?)
}
