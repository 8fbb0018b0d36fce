//! Stage kinds and the registry: domains register what they provide, the CLI assembles the
//! registry, and the engine runs whatever it holds without naming a domain.

use std::any::Any;
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use profundo_core::backend::BackendKind;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::StageError;

/// A value passed between stages. Every artifact can be written to and read back from a
/// directory, which is what makes stage outputs cacheable.
pub trait Artifact: Any + Send + Sync {
    /// The artifact type name, e.g. `features`.
    fn type_name(&self) -> &'static str;
    /// Writes the artifact into `dir` (an empty directory).
    fn save(&self, dir: &Path) -> Result<(), StageError>;
    /// A one-line description for logs.
    fn summary(&self) -> String;
    /// Upcast for downcasting to the concrete type.
    fn as_any(&self) -> &dyn Any;
    /// The labelled items, for artifacts that hold a collection (used by splits).
    fn items(&self) -> Option<&crate::artifacts::Items> {
        None
    }
    /// Trained model directories this artifact holds, by name (fold), for `export.model`.
    fn exportable_models(&self) -> Vec<(String, PathBuf)> {
        Vec::new()
    }
    /// Copies what users should see (metrics, plots, models) from the artifact's cache
    /// directory into the run directory; also called when the stage was cached.
    fn publish(
        &self,
        _stage: &str,
        _cache_dir: &Path,
        _run: &mut Publication,
    ) -> Result<(), StageError> {
        Ok(())
    }
}

/// What stages publish into a run: metrics, report sections, files.
#[derive(Debug, Default)]
pub struct Publication {
    /// The run directory.
    pub run_dir: PathBuf,
    /// `metrics.json` content, one entry per publishing stage: a pass-through edge, each
    /// evaluation stage's own layout, carried and written without being read.
    pub metrics: BTreeMap<String, serde_json::Value>,
    /// Markdown sections for `report.md`, in stage order.
    pub report: Vec<(String, String)>,
}

/// Downcasts an input artifact to its concrete type (the engine has already checked types).
pub fn downcast<T: Artifact>(a: &Arc<dyn Artifact>) -> Result<&T, StageError> {
    a.as_any().downcast_ref::<T>().ok_or_else(|| {
        StageError::Other(format!(
            "expected a `{}` input, got `{}`",
            std::any::type_name::<T>(),
            a.type_name()
        ))
    })
}

/// Input slot `i` of a running stage, whatever its type.
pub fn input_artifact(
    inputs: &[Option<Arc<dyn Artifact>>],
    i: usize,
) -> Result<&Arc<dyn Artifact>, StageError> {
    inputs
        .get(i)
        .and_then(|a| a.as_ref())
        .ok_or_else(|| StageError::Other(format!("input {} is missing", i + 1)))
}

/// Input slot `i` of a running stage, downcast to its concrete type.
pub fn input<T: Artifact>(
    inputs: &[Option<Arc<dyn Artifact>>],
    i: usize,
) -> Result<&T, StageError> {
    downcast(input_artifact(inputs, i)?)
}

/// Loads an artifact of one type from its cache directory.
pub type ArtifactLoader = fn(&Path) -> Result<Arc<dyn Artifact>, StageError>;

/// An input slot of a stage kind.
#[derive(Debug, Clone, Copy)]
pub struct Slot {
    /// Slot name, used in docs and errors.
    pub name: &'static str,
    /// Artifact types accepted.
    pub accepts: &'static [&'static str],
    /// Whether the slot may be left out.
    pub optional: bool,
}

/// Where a stage's data path points: as given if it exists (or if nothing else does), else
/// relative to the pipeline file's directory. The same rule as [`StageContext::resolve`],
/// for [`TypedStage::reads`].
pub fn data_path(path: &Path, pipeline_dir: &Path) -> PathBuf {
    let alt = pipeline_dir.join(path);
    if path.is_absolute() || path.exists() || !alt.exists() {
        path.to_path_buf()
    } else {
        alt
    }
}

/// Per-run context handed to a running stage.
pub struct StageContext {
    /// Stage name in the pipeline.
    pub stage: String,
    /// The pipeline seed.
    pub seed: u64,
    /// The pipeline backend.
    pub backend: BackendKind,
    /// The pipeline device (`cpu`, `cuda:0`).
    pub device: String,
    /// Directory that survives an interrupted run (checkpoints); removed after success.
    pub work_dir: PathBuf,
    /// Directory the pipeline file is in; relative data paths resolve against the
    /// current directory first, then this one.
    pub pipeline_dir: PathBuf,
    log: Option<std::fs::File>,
}

impl StageContext {
    /// A context for `stage`, logging into `log_file` when given.
    pub fn new(
        stage: &str,
        seed: u64,
        backend: BackendKind,
        device: &str,
        work_dir: PathBuf,
        pipeline_dir: PathBuf,
        log_file: Option<&Path>,
    ) -> Self {
        let log = log_file.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .ok()
        });
        Self {
            stage: stage.to_string(),
            seed,
            backend,
            device: device.to_string(),
            work_dir,
            pipeline_dir,
            log,
        }
    }

    /// Logs a line to the console and the stage's log file.
    pub fn log(&mut self, line: &str) {
        tracing::info!("[{}] {line}", self.stage);
        if let Some(f) = &mut self.log {
            let _ = writeln!(f, "{line}");
        }
    }

    /// Logs a warning to the console and the stage's log file.
    pub fn warn(&mut self, line: &str) {
        tracing::warn!("[{}] {line}", self.stage);
        if let Some(f) = &mut self.log {
            let _ = writeln!(f, "warning: {line}");
        }
    }

    /// Resolves a data path: as given if it exists, else relative to the pipeline file.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        data_path(path, &self.pipeline_dir)
    }
}

/// A stage kind with typed parameters. Implement this; the registry does the rest.
pub trait TypedStage: Send + Sync + 'static {
    /// Parameters, deserialised with `deny_unknown_fields`.
    type Params: DeserializeOwned + Serialize + schemars::JsonSchema + Send + Sync + 'static;
    /// The kind name, e.g. `speech.log_mel`.
    const KIND: &'static str;
    /// One-line description.
    const DOC: &'static str;
    /// Input slots, in order.
    const INPUTS: &'static [Slot];
    /// Output artifact type.
    const OUTPUT: &'static str;

    /// Semantic checks beyond types (ranges, consistency), of every parameter, before
    /// anything runs.
    fn check(_p: &Self::Params) -> Result<(), ParamError> {
        Ok(())
    }
    /// Files or directories whose content the output depends on (hashed into the cache key).
    fn reads(_p: &Self::Params, _ctx_dir: &Path) -> Vec<PathBuf> {
        Vec::new()
    }
    /// Runs the stage.
    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError>;
}

/// Why a stage's parameters were rejected: the parameter (its path, when known), the
/// value given (when one value shows the problem) and what is expected. The one error type
/// every stage's [`TypedStage::check`] and every parameter struct's own check return; the
/// pipeline adds the stage when it reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParamError {
    /// Parameter path, e.g. `training.epochs`.
    pub param: Option<String>,
    /// The offending value as written (none when a combination is at fault).
    pub value: Option<String>,
    /// What is expected, or what is wrong.
    pub expected: String,
}

impl ParamError {
    /// `param` was given `value`, which is not what is `expected` ("must be positive").
    pub fn new(
        param: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Self {
            param: Some(param.into()),
            value: Some(value.to_string()),
            expected: expected.into(),
        }
    }

    /// `param` breaks a rule no single value shows ("needs `center = true`").
    pub fn rule(param: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            param: Some(param.into()),
            value: None,
            expected: message.into(),
        }
    }

    /// The same error for a parameter nested under `parent` (`epochs` -> `training.epochs`).
    pub fn within(mut self, parent: &str) -> Self {
        self.param = Some(match self.param {
            Some(p) => format!("{parent}.{p}"),
            None => parent.to_string(),
        });
        self
    }

    /// A backbone configuration check's error as a parameter error under `parent`: an
    /// invalid setting names its field, anything else is about `parent` as a whole.
    pub fn core(parent: &str, e: profundo_core::CoreError) -> Self {
        match e {
            profundo_core::CoreError::InvalidConfig { name, message } => {
                Self::rule(name, message).within(parent)
            }
            other => Self::rule(parent, other.to_string()),
        }
    }

    /// The message without the parameter: `= VALUE: EXPECTED`, or `EXPECTED`.
    pub fn detail(&self) -> String {
        match &self.value {
            Some(v) => format!("= {v}: {}", self.expected),
            None => self.expected.clone(),
        }
    }
}

impl std::fmt::Display for ParamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.param {
            Some(p) => write!(f, "`{p}` {}", self.detail()),
            None => f.write_str(&self.expected),
        }
    }
}

/// A stage ready to run: parameters parsed and checked.
pub trait PreparedStage: Send + Sync {
    /// Parameters as JSON, for cache keys and the resolved pipeline: a pass-through edge
    /// (each kind's typed parameters, serialised for hashing; never read back).
    fn params_json(&self) -> serde_json::Value;
    /// Files the output depends on.
    fn reads(&self, pipeline_dir: &Path) -> Vec<PathBuf>;
    /// Runs the stage.
    fn run(
        &self,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError>;
}

/// The registry's view of a stage kind.
pub trait StageKind: Send + Sync {
    /// Kind name.
    fn name(&self) -> &'static str;
    /// One-line description.
    fn doc(&self) -> &'static str;
    /// Input slots.
    fn inputs(&self) -> &'static [Slot];
    /// Output artifact type.
    fn output(&self) -> &'static str;
    /// JSON schema of the parameters (types, defaults, docs).
    fn schema(&self) -> schemars::Schema;
    /// Parses and checks parameters.
    fn prepare(&self, params: &toml::Table) -> Result<Box<dyn PreparedStage>, ParamError>;
}

struct Kind<T>(std::marker::PhantomData<T>);

struct Prepared<T: TypedStage>(T::Params);

impl<T: TypedStage> PreparedStage for Prepared<T> {
    fn params_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.0).unwrap_or(serde_json::Value::Null)
    }
    fn reads(&self, pipeline_dir: &Path) -> Vec<PathBuf> {
        T::reads(&self.0, pipeline_dir)
    }
    fn run(
        &self,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        T::run(&self.0, ctx, inputs)
    }
}

impl<T: TypedStage> StageKind for Kind<T> {
    fn name(&self) -> &'static str {
        T::KIND
    }
    fn doc(&self) -> &'static str {
        T::DOC
    }
    fn inputs(&self) -> &'static [Slot] {
        T::INPUTS
    }
    fn output(&self) -> &'static str {
        T::OUTPUT
    }
    fn schema(&self) -> schemars::Schema {
        schemars::schema_for!(T::Params)
    }
    fn prepare(&self, params: &toml::Table) -> Result<Box<dyn PreparedStage>, ParamError> {
        let value = toml::Value::Table(params.clone());
        let p: T::Params = serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            ParamError {
                param: (path != "." && !path.is_empty()).then_some(path),
                value: None,
                expected: e.into_inner().to_string(),
            }
        })?;
        T::check(&p)?;
        Ok(Box::new(Prepared::<T>(p)))
    }
}

/// All stage kinds and artifact types known to this program.
#[derive(Default)]
pub struct Registry {
    kinds: BTreeMap<&'static str, Box<dyn StageKind>>,
    loaders: BTreeMap<&'static str, Option<ArtifactLoader>>,
    publishing: std::collections::BTreeSet<&'static str>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a stage kind.
    pub fn stage<T: TypedStage>(&mut self) -> &mut Self {
        self.kinds
            .insert(T::KIND, Box::new(Kind::<T>(std::marker::PhantomData)));
        self
    }

    /// Adds a cacheable artifact type with its loader.
    pub fn artifact(&mut self, type_name: &'static str, loader: ArtifactLoader) -> &mut Self {
        self.loaders.insert(type_name, Some(loader));
        self
    }

    /// Adds a cacheable artifact type that publishes into the run directory (metrics, plots,
    /// models): the engine loads it at the end of every run that selects its stage.
    pub fn publishing_artifact(
        &mut self,
        type_name: &'static str,
        loader: ArtifactLoader,
    ) -> &mut Self {
        self.publishing.insert(type_name);
        self.artifact(type_name, loader)
    }

    /// Whether artifacts of this type publish into the run directory.
    pub fn publishes(&self, type_name: &str) -> bool {
        self.publishing.contains(type_name)
    }

    /// Adds an artifact type that is cheaper to recompute than to store (never cached).
    pub fn uncached_artifact(&mut self, type_name: &'static str) -> &mut Self {
        self.loaders.insert(type_name, None);
        self
    }

    /// Looks up a stage kind.
    pub fn kind(&self, name: &str) -> Option<&dyn StageKind> {
        self.kinds.get(name).map(|k| k.as_ref())
    }

    /// All stage kinds, sorted by name.
    pub fn kinds(&self) -> impl Iterator<Item = &dyn StageKind> {
        self.kinds.values().map(|k| k.as_ref())
    }

    /// The loader of an artifact type.
    pub fn loader(&self, type_name: &str) -> Option<ArtifactLoader> {
        self.loaders.get(type_name).copied().flatten()
    }

    /// The registered kind name closest to `name`, if close enough to be a typo.
    pub fn suggest(&self, name: &str) -> Option<&'static str> {
        nearest(name, self.kinds.keys().copied())
    }
}

/// The candidate closest to `name` by edit distance, if it is plausibly a typo.
pub fn nearest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(d, c)| *d <= 3.max(c.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}
