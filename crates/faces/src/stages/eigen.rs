//! `faces.eigenfaces`: the PCA + nearest-neighbour baseline, producing the same
//! `face_embeddings` artifact as the network so `faces.evaluate` compares them side by side.

use std::sync::Arc;
use std::time::Instant;

use profundo_pipeline::ParamError;
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::{FeatureSet, Split};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::check_valid_fraction;
use serde::{Deserialize, Serialize};

use super::embeddings::{FaceEmbeddings, FoldEmbeddings, Similarity};
use super::{FoldParts, threshold_on_validation};
use crate::eigenfaces::Eigenfaces;

/// Parameters of `faces.eigenfaces`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct EigenfacesParams {
    /// Number of principal components kept.
    pub components: usize,
    /// Fraction of training images held out to choose the threshold (use the network's
    /// value so both hold out the same images).
    pub valid_fraction: f64,
}

impl Default for EigenfacesParams {
    fn default() -> Self {
        Self {
            components: 40,
            valid_fraction: 0.2,
        }
    }
}

/// The eigenfaces baseline.
pub struct EigenfacesStage;

impl TypedStage for EigenfacesStage {
    type Params = EigenfacesParams;
    const KIND: &'static str = "faces.eigenfaces";
    const DOC: &'static str =
        "Eigenfaces baseline: PCA on each fold's training images, Euclidean distance";
    const INPUTS: &'static [Slot] = super::IMAGES_AND_SPLIT;
    const OUTPUT: &'static str = FaceEmbeddings::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        if p.components == 0 {
            return Err(ParamError::rule("components", "must be at least 1"));
        }
        check_valid_fraction(p.valid_fraction)?;
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let fs: &FeatureSet = input(inputs, 0)?;
        let split: &Split = input(inputs, 1)?;
        let mut folds = Vec::new();
        for fold in &split.folds {
            let t0 = Instant::now();
            let parts = FoldParts::new(fs, fold, ctx.seed, p.valid_fraction);
            let images: Vec<&[f32]> = parts.train.iter().map(|&i| fs.item(i)).collect();
            let pca = Eigenfaces::fit(&images, p.components)?;
            let dim = pca.components.len();
            let vectors: Vec<f32> = (0..fs.items.items.len())
                .flat_map(|i| pca.project(fs.item(i)))
                .collect();
            let items = parts.items(fs);
            let (threshold, rule) =
                threshold_on_validation(&items, &vectors, dim, Similarity::Euclidean);
            ctx.log(&format!(
                "fold {}: {dim} components from {} images, threshold {threshold:.3}",
                fold.name,
                parts.train.len()
            ));
            folds.push(FoldEmbeddings {
                fold: fold.name.clone(),
                dim,
                items,
                vectors,
                threshold,
                threshold_rule: rule,
                model_dir: None,
                history: Vec::new(),
                best_epoch: 0,
                stop: None,
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
        Ok(Arc::new(FaceEmbeddings {
            method: format!("eigenfaces (k={})", p.components),
            similarity: Similarity::Euclidean,
            protocol: split.protocol.clone(),
            folds,
            root: ctx.work_dir.clone(),
        }))
    }
}
