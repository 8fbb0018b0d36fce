//! `recommend.train`: fits one model kind on each fold's training interactions and saves a
//! servable model directory per fold. A fold whose model directory is complete is not
//! fitted again when an interrupted run is resumed.

use std::path::Path;
use std::sync::Arc;

use profundo_core::backend;
use profundo_core::manifest::MANIFEST_FILE;
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage};
use profundo_pipeline::stages::{fold_seed, sanitize};
use profundo_pipeline::{ParamError, StageError};
use serde::{Deserialize, Serialize};

use super::artifacts::{FoldRecommender, Recommenders};
use super::{RATINGS_AND_SPLIT, ratings_and_split};
use crate::dataset::Interactions;
use crate::model_dir::{RatingData, RecommenderManifest, RecommenderSection, RecommenderTraining};
use crate::serving::ServingModel;
use crate::train::{FitConfig, Fitted, ModelKind, fit};

/// Parameters of `recommend.train`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    /// `global_mean`, `biases`, `popularity`, `mf` or `bpr`.
    pub model: ModelKind,
    /// Hyper-parameters (each model uses the ones that apply to it).
    pub training: FitConfig,
    /// Train only these folds (default: all).
    pub folds: Vec<String>,
    /// Task name written to the model manifest.
    pub task: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            model: ModelKind::default(),
            training: FitConfig::default(),
            folds: Vec::new(),
            task: "recommend.items".into(),
        }
    }
}

/// Fits a recommender per fold.
pub struct TrainRecommender;

const FIT_FILE: &str = "fit.postcard";

impl TypedStage for TrainRecommender {
    type Params = TrainParams;
    const KIND: &'static str = "recommend.train";
    const DOC: &'static str = "Fit a recommender per fold: global_mean, biases, popularity, mf (biased matrix factorisation) or bpr";
    const INPUTS: &'static [Slot] = RATINGS_AND_SPLIT;
    const OUTPUT: &'static str = Recommenders::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.training.check(p.model).map_err(|e| e.within("training"))
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let (ratings, split) = ratings_and_split(inputs)?;
        let d = &ratings.data;
        if p.model == ModelKind::Mf && !d.explicit {
            ctx.warn("matrix factorisation on implicit data (every rating is 1): use `bpr`");
        }
        let device = backend::train_device(ctx.backend, &ctx.device)?;
        let root = ctx.work_dir.join("models");
        let method = if p.model.is_neural() {
            format!("{} ({} factors)", p.model.name(), p.training.factors)
        } else {
            p.model.name().to_string()
        };
        let mut folds = Vec::new();
        for fold in &split.folds {
            if !p.folds.is_empty() && !p.folds.contains(&fold.name) {
                continue;
            }
            let rel = format!("fold-{}", sanitize(&fold.name));
            let dir = root.join(&rel);
            let fitted = match finished_fit(&dir) {
                Some(f) => {
                    ctx.log(&format!("fold {}: already fitted (resumed run)", fold.name));
                    f
                }
                None => {
                    let seed = fold_seed(ctx.seed, &fold.name);
                    let label = format!("{}:{}", ctx.stage, fold.name);
                    let f = fit(d, &fold.train, p.model, &p.training, seed, &device, &label)?;
                    save_model(&dir, p, &method, d, &fold.train, &f, &fold.name, seed, ctx)?;
                    f
                }
            };
            ctx.log(&format!(
                "fold {}: {} on {} interactions{} in {:.1}s",
                fold.name,
                method,
                fitted.fit_rows,
                if fitted.best_epoch > 0 {
                    format!(
                        ", best epoch {} of {} ({})",
                        fitted.best_epoch,
                        fitted.history.len(),
                        fitted.stop
                    )
                } else {
                    String::new()
                },
                fitted.seconds
            ));
            folds.push(FoldRecommender {
                fold: fold.name.clone(),
                fitted,
                model_dir: rel,
            });
        }
        if folds.is_empty() {
            return Err(StageError::Other(format!(
                "no fold selected (the split has: {})",
                split
                    .folds
                    .iter()
                    .map(|f| f.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        Ok(Arc::new(Recommenders {
            kind: p.model,
            method,
            protocol: split.protocol.clone(),
            folds,
            root,
        }))
    }
}

/// The fit saved in a complete model directory (its manifest is written last).
fn finished_fit(dir: &Path) -> Option<Fitted> {
    if !dir.join(MANIFEST_FILE).is_file() {
        return None;
    }
    let bytes = std::fs::read(dir.join(FIT_FILE)).ok()?;
    postcard::from_bytes(&bytes).ok()
}

/// A short fingerprint of the interactions a model was trained on.
fn fingerprint(d: &Interactions, rows: &[u32]) -> String {
    let mut h = blake3::Hasher::new();
    for &r in rows {
        let r = r as usize;
        h.update(d.users.raw[d.user[r] as usize].as_bytes());
        h.update(b"\0");
        h.update(d.items.raw[d.item[r] as usize].as_bytes());
        h.update(&d.rating[r].to_le_bytes());
    }
    h.finalize().to_hex()[..16].to_string()
}

#[allow(clippy::too_many_arguments)]
fn save_model(
    dir: &Path,
    p: &TrainParams,
    method: &str,
    d: &Interactions,
    train: &[u32],
    f: &Fitted,
    fold: &str,
    seed: u64,
    ctx: &StageContext,
) -> Result<(), StageError> {
    std::fs::create_dir_all(dir).map_err(|e| StageError::io(dir, e))?;
    ServingModel::new(p.model, f.model.clone(), d, train).save(dir)?;
    let bytes = postcard::to_allocvec(f).map_err(|e| StageError::Other(e.to_string()))?;
    profundo_core::fsutil::write_atomic(&dir.join(FIT_FILE), &bytes)?;
    let section = RecommenderSection {
        kind: p.model,
        method: method.to_string(),
        factors: f.model.dim,
        predicts_ratings: f.model.predicts_ratings,
        data: RatingData {
            source: d.source.clone(),
            users: d.users.len(),
            items: d.items.len(),
            explicit: d.explicit,
            scale: [d.scale.0, d.scale.1],
        },
        training: RecommenderTraining {
            config: p.training.clone(),
            fold: fold.to_string(),
            fit_interactions: f.fit_rows,
            valid_interactions: f.valid_rows,
            best_epoch: f.best_epoch,
            epochs_run: f.history.len(),
            stop: f.stop.clone(),
            seed,
            backend: ctx.backend.to_string(),
            seconds: f.seconds,
        },
    };
    RecommenderManifest::new(&p.task, &fingerprint(d, train), section).save(dir)?;
    Ok(())
}
