//! A traffic-sign model on the server: sign images in, the sign's class, name and
//! probability out.

use std::path::{Path, PathBuf};

use profundo_core::backend::BackendKind;
use profundo_perception::PerceptionError;
use profundo_perception::app::{SignAnswer, SignClassifier};
use profundo_perception::picture;

use crate::batcher::{BatchConfig, Batcher, Reply};
use crate::error::ApiError;
use crate::oip::{
    InferRequest, InferResponse, ModelMetadata, OutputData, ResponseOutput, TensorMetadata, Upload,
};

/// A loaded (or loading) sign model.
pub struct SignsModel {
    batcher: Batcher<Vec<Upload>, Vec<SignAnswer>>,
}

/// The OIP input: base64 image files.
pub const INPUT: &str = "IMAGE";

/// Classes listed per answer on the plain route (as `profundo signs classify`).
const TOP: usize = 3;

impl SignsModel {
    /// Starts loading the model at `dir` on its worker thread.
    pub fn start(name: &str, dir: PathBuf, backend: BackendKind, batch: BatchConfig) -> Self {
        let load = move || SignClassifier::load(&dir, backend, "cpu").map_err(|e| e.to_string());
        Self {
            batcher: Batcher::spawn(name, batch, load, run),
        }
    }

    /// Whether it has loaded.
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        self.batcher.loaded()
    }

    /// Classifies `images` (one request).
    pub async fn classify(&self, images: Vec<Upload>) -> Reply<Vec<SignAnswer>> {
        if images.is_empty() {
            return Err(ApiError::bad_request("no image in the request"));
        }
        self.batcher.call(images).await
    }

    /// The model's OIP metadata.
    pub fn metadata(name: &str) -> ModelMetadata {
        ModelMetadata {
            name: name.to_string(),
            versions: vec![crate::VERSION.to_string()],
            platform: "profundo-perception".into(),
            inputs: vec![TensorMetadata::new(INPUT, "BYTES", &[-1])],
            outputs: vec![
                TensorMetadata::new("CLASS", "INT64", &[-1]),
                TensorMetadata::new("NAME", "BYTES", &[-1]),
                TensorMetadata::new("SCORE", "FP32", &[-1]),
            ],
            parameters: [(
                INPUT.to_string(),
                "one base64-encoded image file (PNG, JPEG, PPM, GIF or BMP) of one sign per \
                 element; CLASS is the GTSRB ClassId (-1 for a label that is not one)"
                    .to_string(),
            )]
            .into(),
        }
    }

    /// `POST /v2/models/{name}/infer`.
    pub async fn infer(&self, name: &str, req: InferRequest) -> Reply<InferResponse> {
        let images = req.input(INPUT, &[INPUT])?.uploads()?;
        let found = self.classify(images).await?;
        let n = found.len();
        let mut outputs = Vec::new();
        if req.wants("CLASS") {
            let classes = found
                .iter()
                .map(|r| r.class.map_or(-1, |c| c as i64))
                .collect();
            outputs.push(ResponseOutput::new(
                "CLASS",
                vec![n],
                OutputData::Int64(classes),
            ));
        }
        if req.wants("NAME") {
            let names = found.iter().map(|r| r.name.clone()).collect();
            outputs.push(ResponseOutput::new(
                "NAME",
                vec![n],
                OutputData::Bytes(names),
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

/// A request's images decoded, or the 400 naming its bad image.
fn decode(images: &[Upload]) -> Reply<Vec<(String, image::RgbImage)>> {
    images
        .iter()
        .map(|u| {
            picture::decode(&u.bytes, Path::new(&u.name))
                .map(|img| (u.name.clone(), img))
                .map_err(|e| match e {
                    PerceptionError::Image { .. } => ApiError::bad_request(e.to_string()),
                    other => ApiError::internal(other.to_string()),
                })
        })
        .collect()
}

/// One batch: every good request's images through the network together.
fn run(clf: &SignClassifier, requests: Vec<Vec<Upload>>) -> Vec<Reply<Vec<SignAnswer>>> {
    let decoded: Vec<Reply<Vec<(String, image::RgbImage)>>> =
        requests.iter().map(|r| decode(r)).collect();
    let all: Vec<(String, image::RgbImage)> = decoded
        .iter()
        .filter_map(|d| d.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let mut found = clf.classify_images(&all, TOP).into_iter();
    decoded
        .into_iter()
        .map(|d| d.map(|imgs| found.by_ref().take(imgs.len()).collect()))
        .collect()
}
