//! A translation model on the server: sentences in, translations out. Requests queued
//! together that share a direction and beam size are decoded as one batch.

use std::path::PathBuf;

use profundo_core::backend::{self, BackendKind};
use profundo_translate::TranslateError;
use profundo_translate::batching::Direction;
use profundo_translate::decode::DecodeConfig;
use profundo_translate::translator::{TranslatedLine, Translation, Translator};
use serde::Deserialize;
use utoipa::ToSchema;

use crate::batcher::{BatchConfig, Batcher, Reply};
use crate::error::ApiError;
use crate::oip::{
    InferRequest, InferResponse, ModelMetadata, OutputData, ResponseOutput, TensorMetadata,
};

/// The beam size when a request names none (the CLI's default).
pub const DEFAULT_BEAM: usize = 5;
/// The largest beam a request may ask for.
pub const MAX_BEAM: usize = 16;

/// One request: sentences of one direction.
pub struct Sentences {
    /// The sentences.
    pub texts: Vec<String>,
    /// Source language (may be left out when the model has one direction from it).
    pub from: Option<String>,
    /// Target language.
    pub to: Option<String>,
    /// Beam size (1 = greedy).
    pub beam: usize,
}

/// `POST /v1/translate/{name}`'s body: one sentence or a list.
#[derive(Debug, Clone, Deserialize, ToSchema)]
pub struct TranslateBody {
    /// A sentence, or a list of sentences.
    pub text: Texts,
    /// Source language (`es`).
    #[serde(default)]
    pub from: Option<String>,
    /// Target language (`en`).
    #[serde(default)]
    pub to: Option<String>,
    /// Beam size (1 = greedy; default 5, as the CLI).
    #[serde(default)]
    pub beam: Option<usize>,
}

/// One sentence or several.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(untagged)]
pub enum Texts {
    /// One sentence: the answer is one object.
    One(String),
    /// Several: the answer is a list.
    Many(Vec<String>),
}

/// One request's translations and the direction they were made in.
type Translated = (Direction, Vec<Translation>);

/// A loaded (or loading) translation model.
pub struct TranslateModel {
    batcher: Batcher<Sentences, Translated>,
}

/// The OIP input: sentences.
pub const INPUT: &str = "TEXT";

impl TranslateModel {
    /// Starts loading the model at `dir` on its worker thread.
    pub fn start(name: &str, dir: PathBuf, backend: BackendKind, batch: BatchConfig) -> Self {
        let load = move || {
            let device = backend::device(backend, "cpu").map_err(|e| e.to_string())?;
            Translator::load(&dir, &device).map_err(|e| e.to_string())
        };
        Self {
            batcher: Batcher::spawn(name, batch, load, run),
        }
    }

    /// Whether it has loaded.
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        self.batcher.loaded()
    }

    /// Translates one request's sentences; an empty one or a bad beam is a 400.
    pub async fn translate(&self, s: Sentences) -> Reply<Vec<TranslatedLine>> {
        if s.texts.is_empty() {
            return Err(ApiError::bad_request("no sentence to translate"));
        }
        if let Some(i) = s.texts.iter().position(|t| t.trim().is_empty()) {
            return Err(ApiError::bad_request(format!(
                "sentence {} is empty",
                i + 1
            )));
        }
        if !(1..=MAX_BEAM).contains(&s.beam) {
            return Err(ApiError::bad_request(format!(
                "beam must be between 1 and {MAX_BEAM}, not {}",
                s.beam
            )));
        }
        let (dir, out) = self.batcher.call(s).await?;
        Ok(out
            .into_iter()
            .enumerate()
            .map(|(i, t)| TranslatedLine::new(i + 1, &dir, t))
            .collect())
    }

    /// The model's OIP metadata.
    pub fn metadata(name: &str) -> ModelMetadata {
        ModelMetadata {
            name: name.to_string(),
            versions: vec![crate::VERSION.to_string()],
            platform: "profundo-translate".into(),
            inputs: vec![TensorMetadata::new(INPUT, "BYTES", &[-1])],
            outputs: vec![TensorMetadata::new("TRANSLATION", "BYTES", &[-1])],
            parameters: [
                (
                    INPUT.to_string(),
                    "one sentence per element (UTF-8)".to_string(),
                ),
                (
                    "parameters".to_string(),
                    format!(
                        "from, to: languages (either may be left out when the model's \
                         directions leave no doubt); beam: 1 (greedy) to {MAX_BEAM}, default \
                         {DEFAULT_BEAM}"
                    ),
                ),
            ]
            .into(),
        }
    }

    /// `POST /v2/models/{name}/infer`.
    pub async fn infer(&self, name: &str, req: InferRequest) -> Reply<InferResponse> {
        let texts = req.input(INPUT, &[INPUT])?.strings()?;
        let beam = req.int_parameter("beam", DEFAULT_BEAM as i64)?;
        let s = Sentences {
            texts,
            from: req.text_parameter("from")?.map(str::to_string),
            to: req.text_parameter("to")?.map(str::to_string),
            beam: usize::try_from(beam).unwrap_or(0),
        };
        let lines = self.translate(s).await?;
        let n = lines.len();
        let mut outputs = Vec::new();
        if req.wants("TRANSLATION") {
            let data = lines.into_iter().map(|l| l.translation).collect();
            outputs.push(ResponseOutput::new(
                "TRANSLATION",
                vec![n],
                OutputData::Bytes(data),
            ));
        }
        Ok(InferResponse {
            model_name: name.to_string(),
            id: req.id,
            outputs,
        })
    }
}

fn translate_error(e: TranslateError) -> ApiError {
    match e {
        TranslateError::Config { .. } | TranslateError::Input { .. } => {
            ApiError::bad_request(e.to_string())
        }
        other => ApiError::internal(other.to_string()),
    }
}

/// One batch: requests grouped by direction and beam, each group decoded together.
fn run(t: &Translator, requests: Vec<Sentences>) -> Vec<Reply<Translated>> {
    let dirs: Vec<Reply<Direction>> = requests
        .iter()
        .map(|r| {
            t.direction(r.from.as_deref(), r.to.as_deref())
                .map_err(translate_error)
        })
        .collect();
    let mut answers: Vec<Option<Reply<Translated>>> = dirs.iter().map(|_| None).collect();
    for (i, d) in dirs.iter().enumerate() {
        match d {
            Err(e) => answers[i] = Some(Err(e.clone())),
            Ok(_) if answers[i].is_some() => {}
            Ok(dir) => {
                // Every later request of this direction and beam joins this group.
                let group: Vec<usize> = (i..requests.len())
                    .filter(|&j| {
                        answers[j].is_none()
                            && dirs[j].as_ref().is_ok_and(|dj| dj == dir)
                            && requests[j].beam == requests[i].beam
                    })
                    .collect();
                let lines: Vec<&str> = group
                    .iter()
                    .flat_map(|&j| requests[j].texts.iter().map(String::as_str))
                    .collect();
                let cfg = DecodeConfig::default().with_beam(requests[i].beam);
                match t.translate(&lines, dir, &cfg) {
                    Ok(out) => {
                        let mut out = out.into_iter();
                        for &j in &group {
                            let mine = out.by_ref().take(requests[j].texts.len()).collect();
                            answers[j] = Some(Ok((dir.clone(), mine)));
                        }
                    }
                    Err(e) => {
                        let e = translate_error(e);
                        for &j in &group {
                            answers[j] = Some(Err(e.clone()));
                        }
                    }
                }
            }
        }
    }
    answers
        .into_iter()
        .map(|a| a.unwrap_or_else(|| Err(ApiError::internal("no translation was made"))))
        .collect()
}
