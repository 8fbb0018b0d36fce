//! Model directories: `model.safetensors` (burn-store) plus `manifest.json`, enough for an app
//! to rebuild the network and its preprocessing without the pipeline that trained it.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use crate::fsutil::{read_json, write_json_atomic};
use crate::model::{BatchNormScope, ConvClassifier, ConvClassifierConfig, ConvEnsemble};
use crate::{CoreError, Result};

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";

/// Everything an app needs to use a trained model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// Model kind, e.g. `conv_classifier`.
    pub kind: String,
    /// What the model does, e.g. `speech.classify`; apps check it.
    pub task: String,
    /// profundo version that trained the model.
    pub profundo_version: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// Network hyper-parameters (for `conv_classifier`: [`ConvClassifierConfig`]).
    pub model: serde_json::Value,
    /// Shape of one input, `[channels, rows, cols]`.
    pub input_shape: [usize; 3],
    /// Class names in output order.
    pub labels: Vec<String>,
    /// Feature extraction settings, tagged with the stage kind that produced them.
    pub features: serde_json::Value,
    /// Training settings and outcome.
    pub training: serde_json::Value,
    /// Evaluation metrics known when the model was exported.
    pub metrics: serde_json::Value,
    /// blake3 fingerprint of the training data.
    pub dataset_fingerprint: String,
    /// How apps turn scores into decisions, e.g. a face model's verification threshold
    /// (absent for classifiers).
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub decision: serde_json::Value,
}

impl Manifest {
    /// Reads `dir/manifest.json`, with an error that says what a model directory is.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(MANIFEST_FILE);
        if !path.is_file() {
            return Err(CoreError::InvalidConfig {
                name: "model",
                message: format!(
                    "{}: not a model directory (no {MANIFEST_FILE}); pass a run directory \
                     (runs/<pipeline>/<run-id> or runs/<pipeline>/latest) or its model/ folder",
                    dir.display()
                ),
            });
        }
        read_json(&path)
    }
}

/// Finds the model directory for a path that is a model directory, a run directory
/// (`RUN/model`) or a pipeline's run folder (`runs/<pipeline>`, via `latest`).
pub fn resolve_model_dir(path: &Path) -> Result<PathBuf> {
    let candidates = [
        path.to_path_buf(),
        path.join("model"),
        path.join("latest").join("model"),
    ];
    for c in &candidates {
        if c.join(MANIFEST_FILE).is_file() {
            return Ok(c.clone());
        }
    }
    if !path.exists() {
        return Err(CoreError::io(
            path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "model path does not exist"),
        ));
    }
    // Produce the descriptive "not a model directory" error.
    Manifest::load(path).map(|_| path.to_path_buf())
}

/// Weights file of ensemble member `i` (`model.safetensors`, `model-1.safetensors`, ...).
pub fn weights_file(i: usize) -> String {
    if i == 0 {
        WEIGHTS_FILE.to_string()
    } else {
        format!("model-{i}.safetensors")
    }
}

/// Writes a module's parameters to a safetensors file (replacing it).
pub fn save_weights<M: Module>(path: &Path, module: &M) -> Result<()> {
    let mut store = SafetensorsStore::from_file(path.to_path_buf()).overwrite(true);
    module
        .save_into(&mut store)
        .map_err(|e| CoreError::Weights {
            path: path.to_path_buf(),
            action: "save",
            message: e.to_string(),
        })
}

/// Loads a safetensors file into `module` (built from the manifest's settings); every
/// tensor must match, or the error says the weights do not fit the network.
pub fn load_weights<M: Module>(path: &Path, mut module: M) -> Result<M> {
    let mut store = SafetensorsStore::from_file(path.to_path_buf());
    let applied = module
        .load_from(&mut store)
        .map_err(|e| CoreError::Weights {
            path: path.to_path_buf(),
            action: "load",
            message: e.to_string(),
        })?;
    if !applied.is_success() {
        return Err(CoreError::Weights {
            path: path.to_path_buf(),
            action: "load",
            message: format!("weights do not match the manifest's network: {applied:?}"),
        });
    }
    Ok(module)
}

/// Writes the members of a conv ensemble and `manifest` into `dir` (weights first, manifest
/// last). `manifest.model` must list one [`ConvClassifierConfig`] per member.
pub fn save_conv_ensemble(
    dir: &Path,
    members: &[ConvClassifier],
    manifest: &Manifest,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| CoreError::io(dir, e))?;
    for (i, model) in members.iter().enumerate() {
        save_weights(&dir.join(weights_file(i)), model)?;
    }
    write_json_atomic(&dir.join(MANIFEST_FILE), manifest)
}

/// The member configurations listed in a manifest's `model` (at least one).
pub fn member_configs(manifest: &Manifest, dir: &Path) -> Result<Vec<ConvClassifierConfig>> {
    let path = dir.join(MANIFEST_FILE);
    let configs: Vec<ConvClassifierConfig> = serde_json::from_value(manifest.model.clone())
        .map_err(|e| CoreError::Json {
            path: path.clone(),
            source: e,
        })?;
    if configs.is_empty() {
        return Err(CoreError::InvalidConfig {
            name: "model",
            message: format!("{}: `model` lists no network", path.display()),
        });
    }
    Ok(configs)
}

/// How a model's batch norm treats groups: the manifest's `training.batch_norm`
/// (models written before the setting existed: pooled).
pub fn batch_norm_scope(manifest: &Manifest, dir: &Path) -> Result<BatchNormScope> {
    match manifest.training.get("batch_norm") {
        None => Ok(BatchNormScope::Pooled),
        Some(v) => serde_json::from_value(v.clone()).map_err(|e| CoreError::Json {
            path: dir.join(MANIFEST_FILE),
            source: e,
        }),
    }
}

/// Loads a `conv_classifier` model directory (one network or an ensemble) onto `device`.
pub fn load_conv_ensemble(dir: &Path, device: &Device) -> Result<(ConvEnsemble, Manifest)> {
    let manifest = Manifest::load(dir)?;
    if manifest.kind != "conv_classifier" {
        return Err(CoreError::InvalidConfig {
            name: "model",
            message: format!(
                "{}: model kind `{}` is not a conv_classifier",
                dir.display(),
                manifest.kind
            ),
        });
    }
    let mut members = Vec::new();
    for (i, cfg) in member_configs(&manifest, dir)?.iter().enumerate() {
        let model = cfg.init(manifest.input_shape, manifest.labels.len(), device);
        members.push(load_weights(&dir.join(weights_file(i)), model)?);
    }
    Ok((ConvEnsemble { members }, manifest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Distribution, Tensor};

    fn manifest(model: &ConvClassifierConfig, shape: [usize; 3]) -> Manifest {
        Manifest {
            format: 1,
            kind: "conv_classifier".into(),
            task: "test".into(),
            profundo_version: crate::VERSION.into(),
            created: "now".into(),
            model: serde_json::json!([model]),
            input_shape: shape,
            labels: vec!["a".into(), "b".into(), "c".into()],
            features: serde_json::json!({}),
            training: serde_json::json!({}),
            metrics: serde_json::json!({}),
            dataset_fingerprint: "x".into(),
            decision: serde_json::Value::Null,
        }
    }

    #[test]
    fn the_batch_norm_scope_is_read_from_the_training_section() {
        let cfg = ConvClassifierConfig::default();
        let mut m = manifest(&cfg, [1, 4, 4]);
        let dir = Path::new("models/x");
        assert_eq!(batch_norm_scope(&m, dir).unwrap(), BatchNormScope::Pooled);
        m.training = serde_json::json!({"batch_norm": "group"});
        assert_eq!(batch_norm_scope(&m, dir).unwrap(), BatchNormScope::Group);
        m.training = serde_json::json!({"batch_norm": "per-speaker"});
        let err = batch_norm_scope(&m, dir).unwrap_err().to_string();
        assert!(
            err.contains("models/x/manifest.json") && err.contains("per-speaker"),
            "{err}"
        );
    }

    #[test]
    fn a_saved_model_reloads_with_identical_outputs() {
        let plain = crate::backend::device(crate::backend::BackendKind::Flex, "cpu").unwrap();
        let train = plain.clone().autodiff();
        for temporal in [false, true] {
            let cfg = ConvClassifierConfig {
                channels: vec![4, 8],
                kernel: 3,
                dropout: 0.1,
                temporal,
            };
            let shape = [1, 6, 10];
            // A few training steps, so batch-norm running statistics differ from their
            // initial values and must be saved too.
            let labels: Vec<usize> = (0..12).map(|i| i % 3).collect();
            let x: Vec<f32> = (0..12 * 60)
                .map(|i| ((i * 37) % 17) as f32 / 17.0 + (i / 60 % 3) as f32)
                .collect();
            let data = crate::train::Examples {
                x: &x,
                shape,
                labels: &labels,
                groups: None,
            };
            let idx: Vec<usize> = (0..12).collect();
            let tc = crate::train::TrainConfig {
                epochs: 2,
                batch_size: 4,
                ..Default::default()
            };
            let out = crate::train::train_classifier(
                cfg.init(shape, 3, &train),
                data,
                &idx,
                &[],
                &tc,
                &crate::augment::Augment2dConfig::default(),
                3,
                &train,
                None,
                "t",
            )
            .unwrap();
            let model = burn::module::Module::valid(&out.model);
            let dir = tempfile::tempdir().unwrap();
            save_conv_ensemble(
                dir.path(),
                std::slice::from_ref(&model),
                &manifest(&cfg, shape),
            )
            .unwrap();
            let (loaded, m) = load_conv_ensemble(dir.path(), &plain).unwrap();
            assert_eq!(loaded.members.len(), 1);
            let loaded = &loaded.members[0];
            assert_eq!(m.labels.len(), 3);
            let fresh = cfg.init(shape, 3, &plain);
            let x = Tensor::<4>::random([2, 1, 6, 10], Distribution::Default, &plain);
            let a: Vec<f32> = model.forward(x.clone()).into_data().try_to_vec().unwrap();
            let b: Vec<f32> = loaded.forward(x.clone()).into_data().try_to_vec().unwrap();
            let c: Vec<f32> = fresh.forward(x).into_data().try_to_vec().unwrap();
            assert_eq!(a.len(), 6);
            assert_eq!(a, b, "temporal = {temporal}: reloaded outputs differ");
            assert_ne!(a, c, "a fresh network must differ from the trained one");
        }
    }

    #[test]
    fn an_ensemble_reloads_with_identical_mean_probabilities() {
        let device = crate::backend::device(crate::backend::BackendKind::Flex, "cpu").unwrap();
        let shape = [1, 6, 10];
        let a = ConvClassifierConfig {
            channels: vec![4, 8],
            kernel: 3,
            dropout: 0.0,
            temporal: true,
        };
        let b = ConvClassifierConfig {
            channels: vec![6],
            kernel: 3,
            dropout: 0.0,
            temporal: false,
        };
        let ens = ConvEnsemble {
            members: vec![a.init(shape, 3, &device), b.init(shape, 3, &device)],
        };
        let mut m = manifest(&a, shape);
        m.model = serde_json::json!([a, b]);
        let dir = tempfile::tempdir().unwrap();
        save_conv_ensemble(dir.path(), &ens.members, &m).unwrap();
        assert!(dir.path().join("model-1.safetensors").is_file());
        let (loaded, _) = load_conv_ensemble(dir.path(), &device).unwrap();
        assert_eq!(loaded.members.len(), 2);
        let x = Tensor::<4>::random([3, 1, 6, 10], Distribution::Default, &device);
        let p: Vec<f32> = ens
            .probabilities(x.clone())
            .into_data()
            .try_to_vec()
            .unwrap();
        let q: Vec<f32> = loaded.probabilities(x).into_data().try_to_vec().unwrap();
        assert_eq!(p, q);
        for row in p.chunks(3) {
            assert!(
                (row.iter().sum::<f32>() - 1.0).abs() < 1e-5,
                "mean probabilities sum to 1"
            );
        }
    }

    #[test]
    fn a_directory_without_manifest_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = resolve_model_dir(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("not a model directory") && err.contains("manifest.json"),
            "{err}"
        );
    }
}
