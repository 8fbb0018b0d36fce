//! A face model on the server: photos in; every face found, aligned and embedded, and
//! named from the gallery chosen at start-up (`--gallery NAME=FILE`).

use std::path::{Path, PathBuf};

use profundo_core::backend::BackendKind;
use profundo_faces::FacesError;
use profundo_faces::app::FaceModel;
use profundo_faces::detect::{Detector, DetectorConfig, Face};
use profundo_faces::gallery::{Gallery, Match};
use profundo_faces::photo::{IdentifiedFace, aligned_inputs};
use profundo_faces::preprocess::decode_image;
use serde::Serialize;
use utoipa::ToSchema;

use crate::batcher::{BatchConfig, Batcher, Reply};
use crate::error::ApiError;
use crate::oip::{
    InferRequest, InferResponse, ModelMetadata, OutputData, ResponseOutput, TensorMetadata, Upload,
};

/// One face found in a photo.
pub struct FoundFace {
    /// The detection.
    pub face: Face,
    /// Its embedding.
    pub embedding: Vec<f32>,
    /// Its best gallery match (when the server has a gallery for the model).
    pub matched: Option<Match>,
}

/// A loaded (or loading) face model.
pub struct FacesModel {
    batcher: Batcher<Vec<Upload>, Vec<Vec<FoundFace>>>,
    has_gallery: bool,
}

/// The OIP input: base64 images.
pub const INPUT: &str = "IMAGE";

/// What the worker thread holds.
struct Loaded {
    model: FaceModel,
    detector: Detector,
    gallery: Option<Gallery>,
}

/// One face of `POST /v1/faces/{name}/embed`'s answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EmbeddedFace {
    /// `[x1, y1, x2, y2]` in pixels.
    #[serde(rename = "box")]
    pub bbox: [f32; 4],
    /// The detector's face probability.
    pub score: f32,
    /// Eyes, nose tip, mouth corners, `[x, y]` each.
    pub landmarks: [[f32; 2]; 5],
    /// The embedding of the aligned face.
    pub embedding: Vec<f32>,
}

/// `POST /v1/faces/{name}/embed`'s answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EmbeddedPhoto {
    /// The photo (`?path=`, else `-`).
    pub path: String,
    /// Its faces, largest first.
    pub faces: Vec<EmbeddedFace>,
}

impl FacesModel {
    /// Starts loading the model at `dir`, the shipped detector and, when given, the
    /// gallery file (checked against the model) on the model's worker thread.
    pub fn start(
        name: &str,
        dir: PathBuf,
        gallery: Option<PathBuf>,
        backend: BackendKind,
        batch: BatchConfig,
    ) -> Self {
        let has_gallery = gallery.is_some();
        let load = move || -> Result<Loaded, String> {
            let model = FaceModel::load(&dir, backend, "cpu").map_err(|e| e.to_string())?;
            let detector =
                Detector::on_cpu(DetectorConfig::default()).map_err(|e| e.to_string())?;
            let gallery = gallery
                .map(|g| {
                    let loaded = Gallery::load(&g, Some((model.model_id(), model.dim())))?;
                    if loaded.people.is_empty() {
                        return Err(FacesError::Gallery {
                            path: g,
                            message: "the gallery is empty; enroll people first with \
                                      `profundo faces enroll`"
                                .into(),
                        });
                    }
                    Ok(loaded)
                })
                .transpose()
                .map_err(|e| e.to_string())?;
            Ok(Loaded {
                model,
                detector,
                gallery,
            })
        };
        Self {
            batcher: Batcher::spawn(name, batch, load, run),
            has_gallery,
        }
    }

    /// Whether it has loaded.
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        self.batcher.loaded()
    }

    /// Every face of every photo (one request).
    pub async fn faces(&self, photos: Vec<Upload>) -> Reply<Vec<Vec<FoundFace>>> {
        if photos.is_empty() {
            return Err(ApiError::bad_request("no image in the request"));
        }
        self.batcher.call(photos).await
    }

    /// `POST /v1/faces/{name}/identify`: each face of the photo, named as
    /// `faces identify --json` names it.
    pub async fn identify(&self, model: &str, photo: Upload) -> Reply<Vec<IdentifiedFace>> {
        if !self.has_gallery {
            return Err(ApiError::bad_request(format!(
                "model `{model}` has no gallery: start the server with --gallery {model}=FILE"
            )));
        }
        let path = photo.name.clone();
        let faces = self.faces(vec![photo]).await?;
        let faces = faces.into_iter().next().unwrap_or_default();
        if faces.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{path}: no face found (an image that is already a face crop: --no-detect)"
            )));
        }
        Ok(faces
            .into_iter()
            .filter_map(|f| Some(IdentifiedFace::new(path.clone(), &f.face, f.matched?)))
            .collect())
    }

    /// `POST /v1/faces/{name}/embed`: each face of the photo with its embedding.
    pub async fn embed(&self, photo: Upload) -> Reply<EmbeddedPhoto> {
        let path = photo.name.clone();
        let faces = self.faces(vec![photo]).await?;
        let faces = faces.into_iter().next().unwrap_or_default();
        Ok(EmbeddedPhoto {
            path,
            faces: faces
                .into_iter()
                .map(|f| EmbeddedFace {
                    bbox: f.face.bbox,
                    score: f.face.score,
                    landmarks: f.face.landmarks,
                    embedding: f.embedding,
                })
                .collect(),
        })
    }

    /// The model's OIP metadata.
    pub fn metadata(name: &str) -> ModelMetadata {
        ModelMetadata {
            name: name.to_string(),
            versions: vec![crate::VERSION.to_string()],
            platform: "profundo-faces".into(),
            inputs: vec![TensorMetadata::new(INPUT, "BYTES", &[-1])],
            outputs: vec![
                TensorMetadata::new("IMAGE_INDEX", "INT64", &[-1]),
                TensorMetadata::new("BOX", "FP32", &[-1, 4]),
                TensorMetadata::new("DETECTION_SCORE", "FP32", &[-1]),
                TensorMetadata::new("EMBEDDING", "FP32", &[-1, -1]),
                TensorMetadata::new("NAME", "BYTES", &[-1]),
                TensorMetadata::new("SCORE", "FP32", &[-1]),
            ],
            parameters: [
                (
                    INPUT.to_string(),
                    "one base64-encoded photo per element (PNG, JPEG, GIF, BMP, PGM/PPM); \
                     every face is detected (MTCNN), aligned and embedded"
                        .to_string(),
                ),
                (
                    "outputs".to_string(),
                    "one row per face found, all photos together: IMAGE_INDEX says whose \
                     photo; NAME (`unknown` under the threshold) and SCORE (cosine to the \
                     nearest gallery template) only with --gallery"
                        .to_string(),
                ),
            ]
            .into(),
        }
    }

    /// `POST /v2/models/{name}/infer`.
    pub async fn infer(&self, name: &str, req: InferRequest) -> Reply<InferResponse> {
        let photos = req.input(INPUT, &[INPUT])?.uploads()?;
        let per_photo = self.faces(photos).await?;
        let rows: Vec<(usize, FoundFace)> = per_photo
            .into_iter()
            .enumerate()
            .flat_map(|(i, faces)| faces.into_iter().map(move |f| (i, f)))
            .collect();
        let n = rows.len();
        let dim = rows.first().map_or(0, |(_, f)| f.embedding.len());
        let mut outputs = Vec::new();
        let mut add = |name: &str, shape: Vec<usize>, data: OutputData| {
            if req.wants(name) {
                outputs.push(ResponseOutput::new(name, shape, data));
            }
        };
        let index = rows.iter().map(|(i, _)| *i as i64).collect();
        add("IMAGE_INDEX", vec![n], OutputData::Int64(index));
        let boxes = rows.iter().flat_map(|(_, f)| f.face.bbox).collect();
        add("BOX", vec![n, 4], OutputData::Fp32(boxes));
        let scores = rows.iter().map(|(_, f)| f.face.score).collect();
        add("DETECTION_SCORE", vec![n], OutputData::Fp32(scores));
        let embeddings = rows.iter().flat_map(|(_, f)| f.embedding.clone()).collect();
        add("EMBEDDING", vec![n, dim], OutputData::Fp32(embeddings));
        if self.has_gallery {
            let matched = || rows.iter().filter_map(|(_, f)| f.matched.as_ref());
            add(
                "NAME",
                vec![n],
                OutputData::Bytes(matched().map(|m| m.name.clone()).collect()),
            );
            add(
                "SCORE",
                vec![n],
                OutputData::Fp32(matched().map(|m| m.score as f32).collect()),
            );
        }
        Ok(InferResponse {
            model_name: name.to_string(),
            id: req.id,
            outputs,
        })
    }
}

/// Each face of a photo with its network input.
type PhotoInputs = Vec<(Face, Vec<f32>)>;

/// A request's photos decoded, faces detected and aligned: the network inputs per photo.
fn prepare(l: &Loaded, photos: &[Upload]) -> Reply<Vec<PhotoInputs>> {
    photos
        .iter()
        .map(|p| {
            let path = Path::new(&p.name);
            decode_image(&p.bytes, path)
                .and_then(|img| aligned_inputs(&l.detector, l.model.preprocess(), &img, path))
                .map_err(|e| match e {
                    FacesError::Image { .. } => ApiError::bad_request(e.to_string()),
                    other => ApiError::internal(other.to_string()),
                })
        })
        .collect()
}

/// One batch: every face of every good request through the network together.
fn run(l: &Loaded, requests: Vec<Vec<Upload>>) -> Vec<Reply<Vec<Vec<FoundFace>>>> {
    let prepared: Vec<_> = requests.iter().map(|r| prepare(l, r)).collect();
    let inputs: Vec<Vec<f32>> = prepared
        .iter()
        .flatten()
        .flatten()
        .flatten()
        .map(|(_, input)| input.clone())
        .collect();
    let mut embeddings = if inputs.is_empty() {
        Vec::new()
    } else {
        l.model.embed_inputs(&inputs)
    }
    .into_iter();
    prepared
        .into_iter()
        .map(|request| {
            request.map(|photos| {
                photos
                    .into_iter()
                    .map(|faces| {
                        faces
                            .into_iter()
                            .map(|(face, _)| {
                                let embedding = embeddings.next().unwrap_or_default();
                                let matched = l
                                    .gallery
                                    .as_ref()
                                    .and_then(|g| g.identify(&embedding, l.model.threshold()));
                                FoundFace {
                                    face,
                                    embedding,
                                    matched,
                                }
                            })
                            .collect()
                    })
                    .collect()
            })
        })
        .collect()
}
