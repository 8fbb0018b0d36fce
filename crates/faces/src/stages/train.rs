//! `faces.train_embedding`: trains the embedding network with a margin loss on each fold's
//! training people, embeds every image, and picks the verification threshold on held-out
//! images of the training people.

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use profundo_core::backend;
use profundo_core::manifest::{MANIFEST_FILE, Manifest, WEIGHTS_FILE, save_weights};
use profundo_core::train::{Checkpointer, Examples, TrainConfig, train_classifier};
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::{FeatureSet, Split};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::sanitize;
use serde::{Deserialize, Serialize};

use super::embeddings::{FaceEmbeddings, FoldEmbeddings, Similarity};
use super::{FoldParts, threshold_on_validation};
use crate::augment::FaceAugment;
use crate::model::{EmbeddingNet, EmbeddingNetConfig, MarginLoss, MarginModel, embed_all};

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
            };
            device.seed(seed);
            let t0 = Instant::now();
            let net = p.model.init(fs.shape, &device);
            let model =
                MarginModel::new(net, p.model.embedding_dim, people.len(), &p.loss, &device);
            let tag = sanitize(&fold.name);
            let ck = Checkpointer::new(&ctx.work_dir.join("checkpoints").join(&tag));
            let out = train_classifier(
                model,
                data,
                &train,
                &valid,
                &p.training,
                &p.augment,
                seed,
                &device,
                Some(&ck),
                &format!("{}:{}", ctx.stage, fold.name),
            )?;
            if let Some(e) = out.resumed_from {
                ctx.log(&format!("fold {}: resumed after epoch {e}", fold.name));
            }
            let net = out.model.valid().net;
            let images: Vec<&[f32]> = (0..fs.items.items.len()).map(|i| fs.item(i)).collect();
            let vectors = embed_all(&net, &images, fs.shape, &plain);
            let dim = p.model.embedding_dim;
            let items = super::fold_items(fs, &train, &valid, &test);
            let (threshold, rule) =
                threshold_on_validation(&items, &vectors, dim, Similarity::Cosine);
            ctx.log(&format!(
                "fold {}: best epoch {}, threshold {threshold:.4} ({rule})",
                fold.name, out.best_epoch
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
                    "best_epoch": out.best_epoch,
                    "stop": out.stop,
                    "seed": seed,
                    "backend": ctx.backend.to_string(),
                }),
                metrics: serde_json::json!({}),
                dataset_fingerprint: fs.fingerprint.clone(),
                decision: serde_json::json!({
                    "similarity": "cosine",
                    "threshold": threshold,
                    "rule": rule,
                }),
            };
            save_embedding_net(&dir, &net, &manifest)?;
            profundo_core::plots::training_curves(
                &dir.join("training.png"),
                &format!("{} — fold {}", ctx.stage, fold.name),
                &out.history,
            )?;
            folds.push(FoldEmbeddings {
                fold: fold.name.clone(),
                dim,
                items,
                vectors,
                threshold,
                threshold_rule: rule,
                model_dir: Some(rel),
                history: out.history,
                best_epoch: out.best_epoch,
                stop: Some(out.stop),
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

/// Writes the network's weights and the manifest (last) into `dir`.
pub fn save_embedding_net(
    dir: &std::path::Path,
    net: &EmbeddingNet,
    manifest: &Manifest,
) -> Result<(), StageError> {
    std::fs::create_dir_all(dir).map_err(|e| profundo_core::CoreError::io(dir, e))?;
    save_weights(&dir.join(WEIGHTS_FILE), net)?;
    profundo_core::fsutil::write_json_atomic(&dir.join(MANIFEST_FILE), manifest)?;
    Ok(())
}
