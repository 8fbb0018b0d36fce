//! `faces.train_embedding`: trains the embedding network with a margin loss on each fold's
//! training people, embeds every image, and picks the verification threshold on held-out
//! images of the training people.

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use profundo_core::backend;
use profundo_core::manifest::{MANIFEST_FILE, Manifest, save_weights};
use profundo_core::train::{Examples, TrainConfig};
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::{FeatureSet, Split};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::{FoldTraining, member_tag, sanitize};
use serde::{Deserialize, Serialize};

use super::embeddings::{FaceEmbeddings, FoldEmbeddings, Similarity};
use super::{FoldParts, threshold_on_validation};
use crate::augment::FaceAugment;
use crate::model::{
    EmbeddingNet, EmbeddingNetConfig, MarginLoss, MarginModel, embed_ensemble, member_weights_file,
};

/// The model kind written to manifests.
pub const MODEL_KIND: &str = "face_embedder";

/// Parameters of `faces.train_embedding`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainEmbeddingParams {
    /// The embedding network.
    pub model: EmbeddingNetConfig,
    /// The margin loss.
    pub loss: MarginLoss,
    /// Optimisation settings.
    pub training: TrainConfig,
    /// On-the-fly image augmentation.
    pub augment: FaceAugment,
    /// Fraction of the training images held out to pick the best epoch and the threshold.
    pub valid_fraction: f64,
    /// Train only these folds (default: all).
    pub folds: Vec<String>,
    /// Task name written to the model manifest.
    pub task: String,
    /// Networks trained per fold, each from its own seed. A face's embedding is the
    /// members' embeddings side by side (still unit length), so a similarity score is the
    /// mean of the members' cosines. Training takes `members` times as long.
    pub members: usize,
}

impl Default for TrainEmbeddingParams {
    fn default() -> Self {
        Self {
            model: EmbeddingNetConfig::default(),
            loss: MarginLoss::default(),
            training: TrainConfig::default(),
            augment: FaceAugment::default(),
            valid_fraction: 0.2,
            folds: Vec::new(),
            task: "faces.embed".into(),
            members: 1,
        }
    }
}

/// Trains a face embedding network per fold.
pub struct TrainEmbedding;

impl TypedStage for TrainEmbedding {
    type Params = TrainEmbeddingParams;
    const KIND: &'static str = "faces.train_embedding";
    const DOC: &'static str = "Train a face embedding network (CosFace/ArcFace) on each fold; threshold chosen on validation images";
    const INPUTS: &'static [Slot] = super::IMAGES_AND_SPLIT;
    const OUTPUT: &'static str = FaceEmbeddings::TYPE;

    fn check(p: &Self::Params) -> Result<(), (String, String)> {
        p.model
            .check()
            .map_err(|e| ("model".to_string(), e.to_string()))?;
        p.loss
            .check()
            .map_err(|e| ("loss".to_string(), e.to_string()))?;
        p.training
            .check()
            .map_err(|e| ("training".to_string(), e.to_string()))?;
        super::check_valid_fraction(p.valid_fraction)?;
        if !(1..=10).contains(&p.members) {
            return Err((
                "members".into(),
                format!("must be 1 to 10, got {}", p.members),
            ));
        }
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let fs: &FeatureSet = input(inputs, 0)?;
        let split: &Split = input(inputs, 1)?;
        let device = backend::train_device(ctx.backend, &ctx.device)?;
        let plain = device.clone().inner();
        let root = ctx.work_dir.join("models");
        let mut folds = Vec::new();
        for fold in &split.folds {
            if !p.folds.is_empty() && !p.folds.contains(&fold.name) {
                continue;
            }
            let FoldParts {
                seed,
                train_all,
                train,
                valid,
                test,
            } = FoldParts::new(fs, fold, ctx.seed, p.valid_fraction);
            // Classes are the training people only.
            let mut people: Vec<String> = train_all
                .iter()
                .map(|&i| fs.items.items[i].label.clone())
                .collect();
            people.sort();
            people.dedup();
            let labels: Vec<usize> = fs
                .items
                .items
                .iter()
                .map(|it| people.binary_search(&it.label).unwrap_or(0))
                .collect();
            ctx.log(&format!(
                "fold {}: {} people, {} train / {} valid / {} test images",
                fold.name,
                people.len(),
                train.len(),
                valid.len(),
                test.len()
            ));
            let data = Examples {
                x: &fs.data,
                shape: fs.shape,
                labels: &labels,
                groups: None,
            };
            let t0 = Instant::now();
            let tag = sanitize(&fold.name);
            let fold_training = FoldTraining {
                data,
                train: &train,
                valid: &valid,
                config: &p.training,
                augment: &p.augment,
                device: &device,
            };
            let mut nets = Vec::with_capacity(p.members);
            let mut outcomes = Vec::with_capacity(p.members);
            for k in 0..p.members {
                // Member 0 keeps the fold's seed and checkpoint folder, as before ensembles.
                let member_seed = seed.wrapping_add(7919 * k as u64);
                let out = fold_training.member(ctx, &member_tag(&tag, k), member_seed, |d| {
                    let net = p.model.init(fs.shape, d);
                    MarginModel::new(net, p.model.embedding_dim, people.len(), &p.loss, d)
                })?;
                nets.push(out.model.valid().net);
                outcomes.push((out.history, out.best_epoch, out.stop));
            }
            let images: Vec<&[f32]> = (0..fs.items.items.len()).map(|i| fs.item(i)).collect();
            let vectors = embed_ensemble(&nets, &images, fs.shape, &plain);
            let dim = p.model.embedding_dim * p.members;
            let items = super::fold_items(fs, &train, &valid, &test);
            let (threshold, rule) =
                threshold_on_validation(&items, &vectors, dim, Similarity::Cosine);
            let best_epochs: Vec<usize> = outcomes.iter().map(|o| o.1).collect();
            let (history, best_epoch, stop) = outcomes.swap_remove(0);
            ctx.log(&format!(
                "fold {}: best epoch {best_epochs:?}, threshold {threshold:.4} ({rule})",
                fold.name
            ));
            let rel = format!("fold-{tag}");
            let dir = root.join(&rel);
            let manifest = Manifest {
                format: 1,
                kind: MODEL_KIND.into(),
                task: p.task.clone(),
                profundo_version: profundo_core::VERSION.into(),
                created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                model: serde_json::to_value(&p.model).unwrap_or_default(),
                input_shape: fs.shape,
                labels: people.clone(),
                features: serde_json::from_str(&fs.extractor).unwrap_or_default(),
                training: serde_json::json!({
                    "config": p.training,
                    "loss": p.loss,
                    "augment": p.augment,
                    "fold": fold.name,
                    "train_items": train.len(),
                    "valid_items": valid.len(),
                    "best_epoch": best_epoch,
                    "best_epochs": best_epochs,
                    "stop": stop,
                    "seed": seed,
                    "backend": ctx.backend.to_string(),
                }),
                metrics: serde_json::json!({}),
                dataset_fingerprint: fs.fingerprint.clone(),
                decision: serde_json::json!({
                    "similarity": "cosine",
                    "threshold": threshold,
                    "rule": rule,
                    "members": p.members,
                }),
            };
            save_embedding_nets(&dir, &nets, &manifest)?;
            profundo_core::plots::training_curves(
                &dir.join("training.png"),
                &format!("{} — fold {}", ctx.stage, fold.name),
                &history,
            )?;
            folds.push(FoldEmbeddings {
                fold: fold.name.clone(),
                dim,
                items,
                vectors,
                threshold,
                threshold_rule: rule,
                model_dir: Some(rel),
                history,
                best_epoch,
                stop: Some(stop),
                seconds: t0.elapsed().as_secs_f64(),
            });
        }
        if folds.is_empty() {
            return Err(StageError::Other("no fold selected".into()));
        }
        Ok(Arc::new(FaceEmbeddings {
            method: format!("{:?} network", p.loss.kind).to_lowercase(),
            similarity: Similarity::Cosine,
            protocol: split.protocol.clone(),
            folds,
            root,
        }))
    }
}

/// Writes each member network's weights and the manifest (last) into `dir`.
pub fn save_embedding_nets(
    dir: &std::path::Path,
    nets: &[EmbeddingNet],
    manifest: &Manifest,
) -> Result<(), StageError> {
    std::fs::create_dir_all(dir).map_err(|e| profundo_core::CoreError::io(dir, e))?;
    for (k, net) in nets.iter().enumerate() {
        save_weights(&dir.join(member_weights_file(k)), net)?;
    }
    profundo_core::fsutil::write_json_atomic(&dir.join(MANIFEST_FILE), manifest)?;
    Ok(())
}
