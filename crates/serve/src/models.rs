//! The models a server holds: each one's domain read from its manifest, its worker
//! started, its readiness and metadata, and inference dispatched to its domain.

use std::collections::BTreeMap;

use profundo_core::manifest::{Domain, PassThroughManifest, resolve_model_dir};

use crate::ServeConfig;
use crate::batcher::Reply;
use crate::error::{ApiError, ServeError};
use crate::faces::FacesModel;
use crate::oip::{InferRequest, InferResponse, ModelMetadata};
use crate::recommend::RecommendModel;
use crate::signs::SignsModel;
use crate::speech::SpeechModel;
use crate::translate::TranslateModel;

/// One served model, by domain.
pub enum Served {
    /// Spoken words.
    Speech(SpeechModel),
    /// Faces in photos.
    Faces(FacesModel),
    /// Translation.
    Translate(TranslateModel),
    /// Recommendations.
    Recommend(RecommendModel),
    /// Traffic signs.
    Signs(SignsModel),
}

impl Served {
    /// The model's domain.
    pub fn domain(&self) -> Domain {
        match self {
            Served::Speech(_) => Domain::Speech,
            Served::Faces(_) => Domain::Faces,
            Served::Translate(_) => Domain::Translate,
            Served::Recommend(_) => Domain::Recommend,
            Served::Signs(_) => Domain::Perception,
        }
    }

    /// `None` while loading, then whether it loaded.
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        match self {
            Served::Speech(m) => m.loaded(),
            Served::Faces(m) => m.loaded(),
            Served::Translate(m) => m.loaded(),
            Served::Recommend(m) => m.loaded(),
            Served::Signs(m) => m.loaded(),
        }
    }

    /// Whether it is loaded and answering.
    pub fn ready(&self) -> bool {
        matches!(self.loaded(), Some(Ok(())))
    }

    /// Its OIP metadata under `name`.
    pub fn metadata(&self, name: &str) -> ModelMetadata {
        match self {
            Served::Speech(_) => SpeechModel::metadata(name),
            Served::Faces(_) => FacesModel::metadata(name),
            Served::Translate(_) => TranslateModel::metadata(name),
            Served::Recommend(_) => RecommendModel::metadata(name),
            Served::Signs(_) => SignsModel::metadata(name),
        }
    }

    /// An OIP inference request.
    pub async fn infer(&self, name: &str, req: InferRequest) -> Reply<InferResponse> {
        match self {
            Served::Speech(m) => m.infer(name, req).await,
            Served::Faces(m) => m.infer(name, req).await,
            Served::Translate(m) => m.infer(name, req).await,
            Served::Recommend(m) => m.infer(name, req).await,
            Served::Signs(m) => m.infer(name, req).await,
        }
    }
}

/// Every model of the server, by name.
pub struct Models {
    by_name: BTreeMap<String, Served>,
}

/// Whether `name` can be a model's name in a URL path.
fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

impl Models {
    /// Checks every `--model` and `--gallery`, reads each model's domain from its
    /// manifest, and starts loading each on its own worker thread.
    pub fn start(config: &ServeConfig) -> Result<Self, ServeError> {
        if config.models.is_empty() {
            return Err(ServeError::Config(
                "no model to serve: pass --model NAME=RUN_DIR (once per model)".into(),
            ));
        }
        let mut domains = BTreeMap::new();
        for (name, path) in &config.models {
            if !valid_name(name) {
                return Err(ServeError::Config(format!(
                    "--model {name}={}: a model name is letters, digits, `-`, `_` and `.`",
                    path.display()
                )));
            }
            let bad = |message: String| ServeError::Model {
                name: name.clone(),
                message,
            };
            let dir = resolve_model_dir(path).map_err(|e| bad(e.to_string()))?;
            let manifest = PassThroughManifest::load_any(&dir).map_err(|e| bad(e.to_string()))?;
            if domains
                .insert(name.clone(), (dir, manifest.domain))
                .is_some()
            {
                return Err(ServeError::Config(format!(
                    "--model {name}: two models are named `{name}`"
                )));
            }
        }
        let mut galleries = BTreeMap::new();
        for (name, file) in &config.galleries {
            match domains.get(name) {
                Some((_, Domain::Faces)) => {}
                Some((_, other)) => {
                    return Err(ServeError::Config(format!(
                        "--gallery {name}={}: `{name}` is a {other} model; galleries are for \
                         faces models",
                        file.display()
                    )));
                }
                None => {
                    return Err(ServeError::Config(format!(
                        "--gallery {name}={}: no --model is named `{name}`",
                        file.display()
                    )));
                }
            }
            if !file.is_file() {
                return Err(ServeError::Config(format!(
                    "--gallery {name}={}: no such file (enroll people with `profundo faces \
                     enroll` first)",
                    file.display()
                )));
            }
            galleries.insert(name.clone(), file.clone());
        }
        let batch = config.batch;
        let by_name = domains
            .into_iter()
            .map(|(name, (dir, domain))| {
                let served = match domain {
                    Domain::Speech => {
                        Served::Speech(SpeechModel::start(&name, dir, config.backend, batch))
                    }
                    Domain::Faces => Served::Faces(FacesModel::start(
                        &name,
                        dir,
                        galleries.remove(&name),
                        config.backend,
                        batch,
                    )),
                    Domain::Translate => {
                        Served::Translate(TranslateModel::start(&name, dir, config.backend, batch))
                    }
                    Domain::Recommend => {
                        Served::Recommend(RecommendModel::start(&name, dir, batch))
                    }
                    Domain::Perception => {
                        Served::Signs(SignsModel::start(&name, dir, config.backend, batch))
                    }
                };
                (name, served)
            })
            .collect();
        Ok(Self { by_name })
    }

    /// The names, sorted.
    pub fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// Every model with its name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Served)> {
        self.by_name.iter().map(|(n, m)| (n.as_str(), m))
    }

    /// The model `name`, or a 404 listing the models there are.
    pub fn get(&self, name: &str) -> Result<&Served, ApiError> {
        self.by_name.get(name).ok_or_else(|| {
            ApiError::not_found(format!(
                "no model named `{name}` on this server (models: {})",
                self.names().join(", ")
            ))
        })
    }

    /// The model `name` of `domain`, or a 404 saying what it is.
    pub fn of_domain(&self, name: &str, domain: Domain) -> Result<&Served, ApiError> {
        let m = self.get(name)?;
        if m.domain() != domain {
            return Err(ApiError::not_found(format!(
                "model `{name}` is a {} model, not a {domain} model",
                m.domain()
            )));
        }
        Ok(m)
    }

    /// Whether every model is loaded.
    pub fn all_ready(&self) -> bool {
        self.by_name.values().all(Served::ready)
    }

    /// The first model that failed to load, with its error.
    pub fn load_failure(&self) -> Option<(String, String)> {
        self.by_name.iter().find_map(|(n, m)| match m.loaded() {
            Some(Err(e)) => Some((n.clone(), e.clone())),
            _ => None,
        })
    }
}
