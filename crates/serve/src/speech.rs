//! A speech model on the server: WAV clips in, the recognised word and its probability out.

use std::path::{Path, PathBuf};

use profundo_core::backend::BackendKind;
use profundo_speech::SpeechError;
use profundo_speech::app::{Recognition, Recognizer};
use profundo_speech::wav::decode_wav;

use crate::batcher::{BatchConfig, Batcher, Reply};
use crate::error::ApiError;
use crate::oip::{
    InferRequest, InferResponse, ModelMetadata, OutputData, ResponseOutput, TensorMetadata, Upload,
};

/// A loaded (or loading) speech model.
pub struct SpeechModel {
    batcher: Batcher<Vec<Upload>, Vec<Recognition>>,
}

/// The OIP input: base64 WAV files.
pub const INPUT: &str = "AUDIO";

impl SpeechModel {
    /// Starts loading the model at `dir` on its worker thread.
    pub fn start(name: &str, dir: PathBuf, backend: BackendKind, batch: BatchConfig) -> Self {
        let load = move || Recognizer::load(&dir, backend, "cpu").map_err(|e| e.to_string());
        Self {
            batcher: Batcher::spawn(name, batch, load, run),
        }
    }

    /// Whether it has loaded.
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        self.batcher.loaded()
    }

    /// Recognises `clips` (one request).
    pub async fn recognize(&self, clips: Vec<Upload>) -> Reply<Vec<Recognition>> {
        if clips.is_empty() {
            return Err(ApiError::bad_request("no audio clip in the request"));
        }
        self.batcher.call(clips).await
    }

    /// The model's OIP metadata.
    pub fn metadata(name: &str) -> ModelMetadata {
        ModelMetadata {
            name: name.to_string(),
            versions: vec![crate::VERSION.to_string()],
            platform: "profundo-speech".into(),
            inputs: vec![TensorMetadata::new(INPUT, "BYTES", &[-1])],
            outputs: vec![
                TensorMetadata::new("LABEL", "BYTES", &[-1]),
                TensorMetadata::new("SCORE", "FP32", &[-1]),
            ],
            parameters: [(
                INPUT.to_string(),
                "one base64-encoded WAV file per element (any sample rate, bit depth and \
                 channel count hound reads; resampled to the model's rate)"
                    .to_string(),
            )]
            .into(),
        }
    }

    /// `POST /v2/models/{name}/infer`.
    pub async fn infer(&self, name: &str, req: InferRequest) -> Reply<InferResponse> {
        let clips = req.input(INPUT, &[INPUT])?.uploads()?;
        let found = self.recognize(clips).await?;
        let n = found.len();
        let mut outputs = Vec::new();
        if req.wants("LABEL") {
            let labels = found.iter().map(|r| r.label.clone()).collect();
            outputs.push(ResponseOutput::new(
                "LABEL",
                vec![n],
                OutputData::Bytes(labels),
            ));
        }
        if req.wants("SCORE") {
            let scores = found.iter().map(|r| r.score).collect();
            outputs.push(ResponseOutput::new(
                "SCORE",
                vec![n],
                OutputData::Fp32(scores),
            ));
        }
        Ok(InferResponse {
            model_name: name.to_string(),
            id: req.id,
            outputs,
        })
    }
}

/// A request's clips decoded and resampled, or the 400 naming its bad clip.
fn prepare(rec: &Recognizer, clips: &[Upload]) -> Reply<Vec<Vec<f32>>> {
    clips
        .iter()
        .map(|c| {
            decode_wav(&c.bytes, Path::new(&c.name))
                .and_then(|audio| rec.prepare(&audio))
                .map_err(|e| match e {
                    SpeechError::Wav { .. } | SpeechError::Config(_) => {
                        ApiError::bad_request(e.to_string())
                    }
                    other => ApiError::internal(other.to_string()),
                })
        })
        .collect()
}

/// One batch: every good request's clips through the network together.
fn run(rec: &Recognizer, requests: Vec<Vec<Upload>>) -> Vec<Reply<Vec<Recognition>>> {
    let prepared: Vec<Reply<Vec<Vec<f32>>>> = requests.iter().map(|r| prepare(rec, r)).collect();
    let mut names = Vec::new();
    let mut clips: Vec<&[f32]> = Vec::new();
    for (req, p) in requests.iter().zip(&prepared) {
        if let Ok(samples) = p {
            names.extend(req.iter().map(|c| c.name.clone()));
            clips.extend(samples.iter().map(Vec::as_slice));
        }
    }
    let mut found = rec.recognize_batch(&names, &clips).into_iter();
    prepared
        .into_iter()
        .map(|p| p.map(|samples| found.by_ref().take(samples.len()).collect()))
        .collect()
}
