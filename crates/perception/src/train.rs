//! `perception.train`: trains the sign classifier ([`crate::model`]) on each fold of a
//! split through the shared loop, holding out whole tracks (never frames of a track seen
//! in training) to pick the best epoch; and the perception model directory (its manifest
//! section, saving and loading).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use burn::module::Module;
use burn::tensor::Device;
use profundo_core::backend;
use profundo_core::manifest::{
    Domain, ModelManifest, ModelSection, load_weights, save_weights, weights_file,
};
use profundo_core::train::{Examples, TrainConfig, predict_proba};
use profundo_pipeline::artifacts::{FeatureSet, FoldModel, Split, TrainedClassifier};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::{
    ClassificationSummary, FoldTraining, TrainingRecord, check_valid_fraction,
    cut_validation_groups, fold_seed, held_out_predictions, log_history, sanitize,
};
use profundo_pipeline::{ParamError, StageError};
use serde::{Deserialize, Serialize};

use crate::augment::SignAugment;
use crate::model::{SignNet, SignNetConfig};
use crate::stages::SignInputs;
use crate::{PerceptionError, Result};

/// The perception section of a model manifest: everything the classifier app needs
/// besides the weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignModel {
    /// The network.
    pub network: SignNetConfig,
    /// How images become inputs.
    pub inputs: SignInputs,
    /// Labels in output order (GTSRB: the `ClassId`, two digits).
    pub labels: Vec<String>,
    /// A readable name per label (GTSRB's sign names).
    pub names: Vec<String>,
    /// How the model was trained.
    pub training: SignTraining,
}

/// How a sign model was trained.
pub type SignTraining = TrainingRecord<SignAugment>;

impl ModelSection for SignModel {
    const DOMAIN: Domain = Domain::Perception;
    type Metrics = ClassificationSummary;
}

/// A sign model's manifest.
pub type SignManifest = ModelManifest<SignModel>;

/// Writes `model` and `manifest` into `dir` (weights first, manifest last).
pub fn save_model(dir: &Path, model: &SignNet, manifest: &SignManifest) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| profundo_core::CoreError::io(dir, e))?;
    save_weights(&dir.join(weights_file(0)), model)?;
    Ok(manifest.save(dir)?)
}

/// Loads a sign model directory onto `device`.
pub fn load_model(dir: &Path, device: &Device) -> Result<(SignNet, SignManifest)> {
    let manifest = SignManifest::load(dir)?;
    let m = &manifest.model;
    m.network
        .check(m.inputs.size as usize)
        .map_err(|e| PerceptionError::Config(format!("{}: {e}", dir.display())))?;
    let net = m
        .network
        .init(m.inputs.size as usize, m.labels.len(), device);
    let net = load_weights(&dir.join(weights_file(0)), net)?;
    Ok((net, manifest))
}

/// Parameters of `perception.train`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct TrainParams {
    /// The network.
    pub model: SignNetConfig,
    /// Optimisation settings.
    pub training: TrainConfig,
    /// On-the-fly augmentation (geometry, light, blur, corruptions).
    pub augment: SignAugment,
    /// Fraction of training tracks (whole tracks: frames of one physical sign are
    /// near-duplicates) held out to pick the best epoch; never test images.
    pub valid_fraction: f64,
    /// Task name written to the model manifest.
    pub task: String,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            model: SignNetConfig::default(),
            training: TrainConfig::default(),
            augment: SignAugment::default(),
            valid_fraction: 0.1,
            task: "perception.signs".into(),
        }
    }
}

/// Trains the sign classifier per fold.
pub struct TrainSigns;

impl TypedStage for TrainSigns {
    type Params = TrainParams;
    const KIND: &'static str = "perception.train";
    const DOC: &'static str =
        "Train the sign CNN on each fold of a split (validation by whole tracks)";
    const INPUTS: &'static [Slot] = &[
        Slot {
            name: "features",
            accepts: &[FeatureSet::TYPE],
            optional: false,
        },
        Slot {
            name: "split",
            accepts: &[Split::TYPE],
            optional: false,
        },
    ];
    const OUTPUT: &'static str = TrainedClassifier::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        p.model
            .check_layers()
            .map_err(|e| ParamError::rule("model", e.to_string()))?;
        p.augment
            .check()
            .map_err(|(name, m)| ParamError::rule(format!("augment.{name}"), m))?;
        p.training
            .check()
            .map_err(|e| ParamError::core("training", e))?;
        check_valid_fraction(p.valid_fraction)
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let fs: &FeatureSet = input(inputs, 0)?;
        let split: &Split = input(inputs, 1)?;
        let sign_inputs: SignInputs = fs.settings("sign images (perception.load_signs)")?;
        let size = sign_inputs.size as usize;
        p.model.check(size)?;
        let labels = fs.items.label_ids();
        let data = Examples {
            x: &fs.data,
            shape: fs.shape,
            labels: &labels,
            groups: None,
        };
        let device = backend::train_device(ctx.backend, &ctx.device)?;
        let plain = device.clone().inner();
        let names: Vec<String> = fs
            .items
            .labels
            .iter()
            .map(|l| crate::classes::display_name(l))
            .collect();
        let models_root = ctx.work_dir.join("models");
        let mut models = Vec::new();
        for fold in &split.folds {
            let (train_all, test) = fold.partition(&fs.items.items);
            let seed = fold_seed(ctx.seed, &fold.name);
            let (train, valid) =
                cut_validation_groups(&fs.items.items, &train_all, p.valid_fraction, seed);
            ctx.log(&format!(
                "fold {}: {} train, {} valid (whole tracks), {} test images",
                fold.name,
                train.len(),
                valid.len(),
                test.len()
            ));
            let t0 = Instant::now();
            let out = FoldTraining {
                data,
                train: &train,
                valid: &valid,
                config: &p.training,
                augment: &p.augment,
                device: &device,
            }
            .member(ctx, &fold.name, seed, |d| {
                p.model.init(size, fs.items.labels.len(), d)
            })?;
            log_history(ctx, &fold.name, &out.history);
            let model = out.model.valid();
            let probs = predict_proba(&model, data, &test, 256, &plain);
            let seconds = t0.elapsed().as_secs_f64();
            let predictions =
                held_out_predictions(ctx, &fold.name, &fs.items.items, &labels, &test, probs);
            let rel = format!("fold-{}", sanitize(&fold.name));
            let dir = models_root.join(&rel);
            let section = SignModel {
                network: p.model.clone(),
                inputs: sign_inputs.clone(),
                labels: fs.items.labels.clone(),
                names: names.clone(),
                training: SignTraining {
                    config: p.training.clone(),
                    augment: p.augment.clone(),
                    fold: fold.name.clone(),
                    train_items: train.len(),
                    valid_items: valid.len(),
                    best_epoch: out.best_epoch,
                    stop: out.stop,
                    seed,
                    backend: ctx.backend.to_string(),
                },
            };
            let manifest = ModelManifest::new(&p.task, &fs.fingerprint, section);
            save_model(&dir, &model, &manifest)?;
            profundo_core::fsutil::write_json_atomic(&dir.join("history.json"), &out.history)?;
            profundo_core::plots::training_curves(
                &dir.join("training.png"),
                &format!("{} — fold {}", ctx.stage, fold.name),
                &out.history,
            )?;
            models.push(FoldModel {
                fold: fold.name.clone(),
                model_dir: rel,
                history: out.history,
                best_epoch: out.best_epoch,
                stop: out.stop,
                seconds,
                predictions,
            });
        }
        Ok(Arc::new(TrainedClassifier {
            labels: fs.items.labels.clone(),
            protocol: split.protocol.clone(),
            models,
            root: models_root,
        }))
    }
}
