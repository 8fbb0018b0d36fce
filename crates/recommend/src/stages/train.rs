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

use super::artifacts::{FoldRecommender, Recommenders, load_postcard, save_postcard};
use super::{RATINGS_AND_SPLIT, ratings_and_split};
use crate::dataset::Interactions;
use crate::model_dir::{RatingData, RecommenderManifest, RecommenderSection, RecommenderTraining};
use crate::search::{FoldSearch, SearchConfig, SearchRecord, SearchScope, Setting, search_fold};
use crate::serving::ServingModel;
use crate::train::{FitConfig, Fitted, ModelKind, fit};

/// Parameters of `recommend.train`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    /// `global_mean`, `biases`, `popularity`, `mf`, `svdpp` or `bpr`.
    pub model: ModelKind,
    /// Hyper-parameters (each model uses the ones that apply to it).
    pub training: FitConfig,
    /// A hyper-parameter search over `training` settings, scored on a validation cut of the
    /// training interactions (none: `training` as given).
    pub search: Option<SearchConfig>,
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
            search: None,
            folds: Vec::new(),
            task: "recommend.items".into(),
        }
    }
}

/// Fits a recommender per fold.
pub struct TrainRecommender;

const FIT_FILE: &str = "fit.postcard";
/// A fold's search outcome, written before its model is refit (a resumed run reuses it).
const SEARCH_FILE: &str = "search.postcard";

impl TypedStage for TrainRecommender {
    type Params = TrainParams;
    const KIND: &'static str = "recommend.train";
    const DOC: &'static str = "Fit a recommender per fold: global_mean, biases, popularity, mf (biased matrix factorisation), svdpp (SVD++) or bpr; optionally a hyper-parameter search on validation cuts";
    const INPUTS: &'static [Slot] = RATINGS_AND_SPLIT;
    const OUTPUT: &'static str = Recommenders::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.training
            .check(p.model)
            .map_err(|e| e.within("training"))?;
        if let Some(s) = &p.search {
            s.check(&p.training, p.model)
                .map_err(|e| e.within("search"))?;
        }
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let (ratings, split) = ratings_and_split(inputs)?;
        let d = &ratings.data;
        if p.model.rates() && !d.explicit {
            ctx.warn("matrix factorisation on implicit data (every rating is 1): use `bpr`");
        }
        let device = backend::train_device(ctx.backend, &ctx.device)?;
        let root = ctx.work_dir.join("models");
        let method = match &p.search {
            Some(_) => format!("{} (searched)", p.model.name()),
            None if p.model.is_neural() => {
                format!("{} ({} factors)", p.model.name(), p.training.factors)
            }
            None => p.model.name().to_string(),
        };
        // The search, its settings (drawn once for every fold) and what it found.
        let mut search = p.search.as_ref().map(|s| {
            let settings = s.settings(fold_seed(ctx.seed, &format!("{}/search", ctx.stage)));
            let record = SearchRecord::new(s, p.model, &settings);
            (s, settings, record)
        });
        // With `scope = "first_fold"`: the first fold's winner, used for the others.
        let mut frozen: Option<FitConfig> = None;
        let mut folds = Vec::new();
        for fold in &split.folds {
            if !p.folds.is_empty() && !p.folds.contains(&fold.name) {
                continue;
            }
            let rel = format!("fold-{}", sanitize(&fold.name));
            let dir = root.join(&rel);
            let on = FoldRows {
                fold: &fold.name,
                rows: &fold.train,
                dir: &dir,
            };
            let cfg = match (&mut search, &frozen) {
                (_, Some(c)) => c.clone(),
                (Some((s, settings, record)), None) => {
                    let fs = fold_search(p, s, settings, d, &on, &device, ctx)?;
                    if s.scope == SearchScope::FirstFold {
                        frozen = Some(fs.chosen.clone());
                    }
                    let chosen = fs.chosen.clone();
                    record.folds.push(fs);
                    chosen
                }
                (None, None) => p.training.clone(),
            };
            let fitted = match finished_fit(&dir) {
                Some(f) => {
                    ctx.log(&format!("fold {}: already fitted (resumed run)", fold.name));
                    f
                }
                None => {
                    let seed = fold_seed(ctx.seed, &fold.name);
                    let label = format!("{}:{}", ctx.stage, fold.name);
                    let f = fit(d, &fold.train, p.model, &cfg, seed, &device, &label)?;
                    let fold_fit = FoldFit {
                        on: &on,
                        cfg: &cfg,
                        seed,
                    };
                    save_model(p, &method, d, &fold_fit, &f, ctx)?;
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
            search: search.map(|(_, _, record)| record),
            root,
        }))
    }
}

/// One fold's training rows and its model directory.
struct FoldRows<'a> {
    fold: &'a str,
    rows: &'a [u32],
    dir: &'a Path,
}

/// The search on one fold's training rows, or the one a resumed run saved.
fn fold_search(
    p: &TrainParams,
    search: &SearchConfig,
    settings: &[Setting],
    d: &Interactions,
    on: &FoldRows,
    device: &burn::tensor::Device,
    ctx: &mut StageContext,
) -> Result<FoldSearch, StageError> {
    let (fold, train, dir) = (on.fold, on.rows, on.dir);
    if let Some(saved) = load_postcard::<FoldSearch>(dir, SEARCH_FILE)
        .ok()
        .filter(|s| s.scores.len() == settings.len())
    {
        ctx.log(&format!("fold {fold}: search already run (resumed run)"));
        return Ok(saved);
    }
    let cut_seed = fold_seed(ctx.seed, &format!("{fold}/search-cut"));
    let fit_seed = fold_seed(ctx.seed, fold);
    let metric = crate::search::SearchMetric::for_kind(p.model).name();
    let n = settings.len();
    let fs = search_fold(
        d,
        fold,
        train,
        p.model,
        &p.training,
        search,
        settings,
        cut_seed,
        fit_seed,
        device,
        |i, s, score, secs| {
            ctx.log(&format!(
                "fold {fold}: search {}/{n} {}: {metric} {score:.4} ({secs:.1}s)",
                i + 1,
                crate::search::describe(s)
            ))
        },
    )?;
    ctx.log(&format!(
        "fold {fold}: search chose {} ({metric} {:.4}) in {:.1}s",
        crate::search::describe(&settings[fs.best]),
        fs.scores[fs.best],
        fs.seconds
    ));
    std::fs::create_dir_all(dir).map_err(|e| StageError::io(dir, e))?;
    save_postcard(dir, SEARCH_FILE, &fs)?;
    Ok(fs)
}

/// What one fold's model was fitted on, and with which settings and seed.
struct FoldFit<'a> {
    on: &'a FoldRows<'a>,
    cfg: &'a FitConfig,
    seed: u64,
}

/// The fit saved in a complete model directory (its manifest is written last).
fn finished_fit(dir: &Path) -> Option<Fitted> {
    if !dir.join(MANIFEST_FILE).is_file() {
        return None;
    }
    load_postcard(dir, FIT_FILE).ok()
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

fn save_model(
    p: &TrainParams,
    method: &str,
    d: &Interactions,
    fold: &FoldFit,
    f: &Fitted,
    ctx: &StageContext,
) -> Result<(), StageError> {
    let (dir, train) = (fold.on.dir, fold.on.rows);
    std::fs::create_dir_all(dir).map_err(|e| StageError::io(dir, e))?;
    ServingModel::new(p.model, f.model.clone(), d, train).save(dir)?;
    save_postcard(dir, FIT_FILE, f)?;
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
            config: fold.cfg.clone(),
            fold: fold.on.fold.to_string(),
            fit_interactions: f.fit_rows,
            valid_interactions: f.valid_rows,
            best_epoch: f.best_epoch,
            epochs_run: f.history.len(),
            stop: f.stop.clone(),
            seed: fold.seed,
            backend: ctx.backend.to_string(),
            seconds: f.seconds,
        },
    };
    RecommenderManifest::new(&p.task, &fingerprint(d, train), section).save(dir)?;
    Ok(())
}
