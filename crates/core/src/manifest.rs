//! Model directories: the weights (burn-store safetensors) plus `manifest.json`, enough for
//! an app to rebuild the network and its preprocessing without the pipeline that trained
//! it.
//!
//! A manifest has a common part ([`Manifest`]: format version, domain, task, provenance,
//! an optional decision threshold) and one typed section per domain (`model`, a type that
//! implements [`ModelSection`] in that domain's crate) plus that domain's evaluation
//! metrics. Reading one checks the version and the domain first, then every field, and an
//! error names the file and the field.

use std::fmt;
use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{CoreError, Result};

/// File name of the manifest inside a model directory.
pub const MANIFEST_FILE: &str = "manifest.json";
/// File name of the weights inside a model directory.
pub const WEIGHTS_FILE: &str = "model.safetensors";
/// The manifest format this build writes and reads. Version 1 (profundo before the typed
/// manifest) had free-form `model`/`features`/`training`/`decision` objects and no
/// `domain`; such a model is refused with the advice to re-run its pipeline.
pub const MANIFEST_VERSION: u32 = 2;

/// The application domain a model belongs to: the tag that says which section type the
/// manifest's `model` holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Domain {
    /// Spoken-word classification (`profundo-speech`).
    Speech,
    /// Face embeddings: verification and identification (`profundo-faces`).
    Faces,
    /// Machine translation (`profundo-translate`).
    Translate,
    /// Recommendations (`profundo-recommend`).
    Recommend,
    /// Traffic-sign recognition (`profundo-perception`).
    Perception,
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Domain::Speech => "speech",
            Domain::Faces => "faces",
            Domain::Translate => "translate",
            Domain::Recommend => "recommend",
            Domain::Perception => "perception",
        })
    }
}

/// A domain's section of the manifest: the network, its preprocessing and training record.
/// Implemented by one type per domain, in that domain's crate.
pub trait ModelSection: Serialize + DeserializeOwned + Clone + fmt::Debug {
    /// The domain whose models carry this section.
    const DOMAIN: Domain;
    /// The metrics that domain's evaluation records in an exported model.
    type Metrics: Serialize + DeserializeOwned + Clone + fmt::Debug + PartialEq;
}

/// A decision threshold on a model's score (a face model's cosine similarity above which
/// two faces are the same person), with how it was chosen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    /// The threshold.
    pub value: f64,
    /// How it was chosen, e.g. "equal error rate on validation pairs".
    pub rule: String,
}

/// `manifest.json`: everything an app needs to use a trained model. `S` is the domain's
/// section, `M` its metrics; [`ModelManifest`] ties them together.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(
    deny_unknown_fields,
    bound(deserialize = "S: Deserialize<'de>, M: Deserialize<'de>")
)]
pub struct Manifest<S, M> {
    /// Manifest format version ([`MANIFEST_VERSION`]).
    pub version: u32,
    /// The domain; says what `model` holds.
    pub domain: Domain,
    /// What the model does, e.g. `speech.digits`.
    pub task: String,
    /// profundo version that trained the model.
    pub profundo_version: String,
    /// Creation time (RFC 3339).
    pub created: String,
    /// blake3 fingerprint of the training data.
    pub dataset_fingerprint: String,
    /// The domain's section: network, preprocessing, training record.
    pub model: S,
    /// The decision threshold, for models that decide by one (face models); an evaluation
    /// may re-calibrate it on export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<Threshold>,
    /// Evaluation metrics recorded by `export.model` (none before export).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics: Option<M>,
}

/// The manifest of a domain's models.
pub type ModelManifest<S> = Manifest<S, <S as ModelSection>::Metrics>;

/// A manifest whose domain section and metrics are carried, not interpreted: the generic
/// `export.model` stage and inspection commands read and rewrite any domain's manifest
/// through it, and the domain's own reader checks the section.
pub type PassThroughManifest = Manifest<serde_json::Value, serde_json::Value>;

/// The fields every manifest version has, read before anything else so that an old or
/// foreign manifest gets an error that says what it is.
#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    version: Option<u32>,
    #[serde(default)]
    format: Option<u32>,
    #[serde(default)]
    domain: Option<Domain>,
    #[serde(default)]
    profundo_version: Option<String>,
}

fn manifest_error(path: &Path, message: impl Into<String>) -> CoreError {
    CoreError::Manifest {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads `dir/manifest.json` as a manifest of `domain` (any domain with `None`) with
/// section `S` and metrics `M`: checks the version, then the domain, then every field.
pub fn read_manifest<S: DeserializeOwned, M: DeserializeOwned>(
    dir: &Path,
    domain: Option<Domain>,
) -> Result<Manifest<S, M>> {
    let path = dir.join(MANIFEST_FILE);
    if !path.is_file() {
        return Err(manifest_error(
            dir,
            format!(
                "not a model directory (no {MANIFEST_FILE}); pass a run directory \
                 (runs/<pipeline>/<run-id> or runs/<pipeline>/latest) or its model/ folder"
            ),
        ));
    }
    let text = std::fs::read_to_string(&path).map_err(|e| CoreError::io(&path, e))?;
    let header: Header = serde_json::from_str(&text).map_err(|e| CoreError::Json {
        path: path.clone(),
        source: e,
    })?;
    let version = header.version.or(header.format);
    if version != Some(MANIFEST_VERSION) {
        let found = version.map_or("no version".to_string(), |v| format!("format {v}"));
        let by = header
            .profundo_version
            .map_or(String::new(), |v| format!(", written by profundo {v}"));
        return Err(manifest_error(
            &path,
            format!(
                "{found}{by}; this profundo ({}) reads format {MANIFEST_VERSION} only: \
                 re-run the pipeline that trained the model (`profundo run \
                 pipelines/<name>.toml`) to write it again",
                crate::VERSION
            ),
        ));
    }
    match (domain, header.domain) {
        (_, None) => return Err(manifest_error(&path, "missing field `domain`")),
        (Some(want), Some(got)) if want != got => {
            return Err(manifest_error(
                &path,
                format!("this is a {got} model (domain `{got}`), not a {want} model"),
            ));
        }
        _ => {}
    }
    let de = &mut serde_json::Deserializer::from_str(&text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let field = e.path().to_string();
        manifest_error(&path, format!("field `{field}`: {}", e.inner()))
    })
}

impl<S: ModelSection> Manifest<S, S::Metrics> {
    /// A manifest for a freshly trained model (no threshold, no metrics yet).
    pub fn new(task: &str, dataset_fingerprint: &str, model: S) -> Self {
        Self {
            version: MANIFEST_VERSION,
            domain: S::DOMAIN,
            task: task.to_string(),
            profundo_version: crate::VERSION.to_string(),
            created: chrono::Local::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            dataset_fingerprint: dataset_fingerprint.to_string(),
            model,
            threshold: None,
            metrics: None,
        }
    }

    /// Reads `dir/manifest.json`, which must be a manifest of `S`'s domain.
    pub fn load(dir: &Path) -> Result<Self> {
        read_manifest(dir, Some(S::DOMAIN))
    }
}

impl<S: Serialize, M: Serialize> Manifest<S, M> {
    /// Writes `dir/manifest.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<()> {
        crate::fsutil::write_json_atomic(&dir.join(MANIFEST_FILE), self)
    }
}

impl PassThroughManifest {
    /// Reads any domain's manifest without interpreting its section.
    pub fn load_any(dir: &Path) -> Result<Self> {
        read_manifest(dir, None)
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
    PassThroughManifest::load_any(path).map(|_| path.to_path_buf())
}

/// Weights file of ensemble member `i` (`model.safetensors`, `model-1.safetensors`, ...).
pub fn weights_file(i: usize) -> String {
    if i == 0 {
        WEIGHTS_FILE.to_string()
    } else {
        format!("model-{i}.safetensors")
    }
}

/// Writes a module's parameters to a safetensors file (replacing it), atomically and
/// readable by others like every output ([`crate::fsutil::write_atomic`]; burn's own file
/// store creates it private to the user).
pub fn save_weights<M: Module>(path: &Path, module: &M) -> Result<()> {
    let err = |message: String| CoreError::Weights {
        path: path.to_path_buf(),
        action: "save",
        message,
    };
    let mut store = SafetensorsStore::from_bytes(None);
    module
        .save_into(&mut store)
        .map_err(|e| err(e.to_string()))?;
    let bytes = store.get_bytes().map_err(|e| err(e.to_string()))?;
    crate::fsutil::write_atomic(path, &bytes)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Section {
        layers: Vec<usize>,
        labels: Vec<String>,
    }

    #[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Metrics {
        accuracy: f64,
    }

    impl ModelSection for Section {
        const DOMAIN: Domain = Domain::Speech;
        type Metrics = Metrics;
    }

    fn saved() -> (tempfile::TempDir, ModelManifest<Section>) {
        let dir = tempfile::tempdir().unwrap();
        let mut m = ModelManifest::new(
            "test",
            "abc",
            Section {
                layers: vec![4, 8],
                labels: vec!["a".into(), "b".into()],
            },
        );
        m.metrics = Some(Metrics { accuracy: 0.75 });
        m.save(dir.path()).unwrap();
        (dir, m)
    }

    fn edit(dir: &Path, f: impl FnOnce(&mut serde_json::Value)) {
        let path = dir.join(MANIFEST_FILE);
        let mut v: serde_json::Value = crate::fsutil::read_json(&path).unwrap();
        f(&mut v);
        crate::fsutil::write_json_atomic(&path, &v).unwrap();
    }

    #[test]
    fn a_manifest_reads_back_typed_and_through_the_pass_through_reader() {
        let (dir, m) = saved();
        assert_eq!(ModelManifest::<Section>::load(dir.path()).unwrap(), m);
        let raw = PassThroughManifest::load_any(dir.path()).unwrap();
        assert_eq!(raw.domain, Domain::Speech);
        assert_eq!(raw.model["layers"], serde_json::json!([4, 8]));
        // Rewritten through the pass-through type, it still reads typed.
        raw.save(dir.path()).unwrap();
        assert_eq!(ModelManifest::<Section>::load(dir.path()).unwrap(), m);
    }

    #[test]
    fn a_bad_field_is_named_with_the_file() {
        let (dir, _) = saved();
        edit(dir.path(), |v| v["model"]["layers"][1] = "eight".into());
        let err = ModelManifest::<Section>::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("manifest.json") && err.contains("model.layers[1]"),
            "{err}"
        );
        let (dir, _) = saved();
        edit(dir.path(), |v| {
            v["model"].as_object_mut().unwrap().remove("labels");
        });
        let err = ModelManifest::<Section>::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing field `labels`"), "{err}");
        let (dir, _) = saved();
        edit(dir.path(), |v| v["metrics"]["recall"] = 1.into());
        let err = ModelManifest::<Section>::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("field `metrics.recall`") && err.contains("unknown field `recall`"),
            "{err}"
        );
    }

    #[test]
    fn an_old_or_foreign_manifest_says_what_it_is() {
        let (dir, _) = saved();
        edit(dir.path(), |v| {
            let o = v.as_object_mut().unwrap();
            o.remove("version");
            o.remove("domain");
            o.insert("format".into(), 1.into());
        });
        let err = ModelManifest::<Section>::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("format 1") && err.contains("re-run the pipeline"),
            "{err}"
        );
        let (dir, _) = saved();
        edit(dir.path(), |v| v["domain"] = "faces".into());
        let err = ModelManifest::<Section>::load(dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("this is a faces model") && err.contains("not a speech model"),
            "{err}"
        );
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
