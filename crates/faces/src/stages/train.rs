//! `faces.train_embedding`: trains the embedding network with a margin loss on each fold's
//! training people, embeds every image, and picks the verification threshold on held-out
//! images of the training people.

use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use profundo_core::backend;
use profundo_core::manifest::Threshold;
use profundo_core::train::{Examples, TrainConfig};
use profundo_pipeline::ParamError;
use profundo_pipeline::StageError;
use profundo_pipeline::artifacts::{FeatureSet, Split};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::{FoldTraining, check_valid_fraction, member_tag, sanitize};
use serde::{Deserialize, Serialize};

use super::embeddings::{EmbeddedItem, FaceEmbeddings, FoldEmbeddings, Role, Similarity};
use super::{FoldParts, threshold_on_validation};
use crate::augment::FaceAugment;
use crate::model::{EmbeddingNetConfig, MarginLoss, MarginModel, embed_ensemble};
use crate::model_dir::{FaceManifest, FaceModelSection, FaceTraining, save_embedding_nets};
use crate::score_norm::{center_embedding, mean_embedding};
use crate::whiten::Whitening;

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
    /// Centre the embeddings: subtract the mean embedding of the fold's training images
    /// and re-normalise. Fitted here and saved with the model, so evaluation and the apps
    /// see the same embeddings; the validation threshold is chosen on the centred ones.
    pub center: bool,
    /// With `center`: also whiten the centred embeddings (PCA whitening fitted on the
    /// fold's training images, each ensemble member on its own; [`crate::whiten`]) with
    /// this shrinkage, e.g. 0.1. Saved with the model too.
    pub whiten: Option<f64>,
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
            center: false,
            whiten: None,
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

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.model
            .check()
            .map_err(|e| ParamError::rule("model", e.to_string()))?;
        p.loss
            .check()
            .map_err(|e| ParamError::rule("loss", e.to_string()))?;
        p.training
            .check()
            .map_err(|e| ParamError::core("training", e))?;
        check_valid_fraction(p.valid_fraction)?;
        if !(1..=10).contains(&p.members) {
            return Err(ParamError::new("members", p.members, "must be 1 to 10"));
        }
        if let Some(w) = p.whiten {
            if !p.center {
                return Err(ParamError::rule("whiten", "needs `center = true`"));
            }
            if !(w >= 0.0 && w.is_finite()) {
                return Err(ParamError::new("whiten", w, "must be 0 or more"));
            }
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
            let mut vectors = embed_ensemble(&nets, &images, fs.shape, &plain);
            let dim = p.model.embedding_dim * p.members;
            let items = super::fold_items(fs, &train, &valid, &test);
            let (center, whiten) = match p.center {
                true => center_and_whiten(&items, &mut vectors, dim, p.members, p.whiten),
                false => (None, None),
            };
            let (threshold, mut rule) =
                threshold_on_validation(&items, &vectors, dim, Similarity::Cosine);
            match (&center, &whiten) {
                (Some(_), Some(_)) => rule.push_str(" (centred, whitened embeddings)"),
                (Some(_), None) => rule.push_str(" (centred embeddings)"),
                _ => {}
            }
            let best_epochs: Vec<usize> = outcomes.iter().map(|o| o.1).collect();
            let (history, best_epoch, stop) = outcomes.swap_remove(0);
            ctx.log(&format!(
                "fold {}: best epoch {best_epochs:?}, threshold {threshold:.4} ({rule})",
                fold.name
            ));
            let rel = format!("fold-{tag}");
            let dir = root.join(&rel);
            let section = FaceModelSection {
                network: p.model.clone(),
                members: p.members,
                input_shape: fs.shape,
                preprocess: super::preprocess_of(fs)?,
                similarity: Similarity::Cosine,
                center,
                whiten,
                people: people.clone(),
                training: FaceTraining {
                    config: p.training.clone(),
                    loss: p.loss.clone(),
                    augment: p.augment.clone(),
                    fold: fold.name.clone(),
                    train_items: train.len(),
                    valid_items: valid.len(),
                    best_epochs: best_epochs.clone(),
                    stop,
                    seed,
                    backend: ctx.backend.to_string(),
                },
            };
            let mut manifest = FaceManifest::new(&p.task, &fs.fingerprint, section);
            manifest.threshold = Some(Threshold {
                value: threshold,
                rule: rule.clone(),
            });
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

/// Fits the centring (and, with `whiten`, the whitening over `members` blocks) on the
/// training images' embeddings and applies it to every embedding in `vectors`. Nothing is
/// fitted without training images.
fn center_and_whiten(
    items: &[EmbeddedItem],
    vectors: &mut [f32],
    dim: usize,
    members: usize,
    whiten: Option<f64>,
) -> (Option<Vec<f32>>, Option<Whitening>) {
    let train: Vec<usize> = (0..items.len())
        .filter(|&i| items[i].role == Role::Train)
        .collect();
    let Some(mean) = mean_embedding(train.iter().map(|&i| &vectors[i * dim..(i + 1) * dim]), dim)
    else {
        return (None, None);
    };
    for v in vectors.chunks_mut(dim.max(1)) {
        center_embedding(v, &mean);
    }
    let whitening = whiten.and_then(|shrink| {
        let rows: Vec<&[f32]> = train
            .iter()
            .map(|&i| &vectors[i * dim..(i + 1) * dim])
            .collect();
        Whitening::fit(&rows, dim, members, shrink)
    });
    if let Some(w) = &whitening {
        vectors.chunks_mut(dim.max(1)).for_each(|v| w.apply(v));
    }
    (Some(mean), whitening)
}
