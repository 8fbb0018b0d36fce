//! Using a trained face model: embed images, verify two faces, and identify faces against
//! a gallery.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use profundo_core::backend::{self, BackendKind};
use profundo_core::manifest::{Manifest, load_weights, resolve_model_dir};
use serde::Serialize;

use crate::model::{EmbeddingNet, EmbeddingNetConfig, embed_ensemble, member_weights_file};
use crate::preprocess::Preprocess;
use crate::score_norm::center_embedding;
use crate::stages::train::MODEL_KIND;
use crate::whiten::Whitening;
use crate::{FacesError, Result};

/// A loaded face embedding model with its preprocessing and decision threshold.
pub struct FaceModel {
    /// The ensemble's member networks (one for most models).
    nets: Vec<EmbeddingNet>,
    manifest: Manifest,
    preprocess: Preprocess,
    threshold: f64,
    /// Mean training embedding to centre on (`decision.center`; none for most models).
    center: Option<Vec<f32>>,
    /// Whitening after centring (`decision.whiten`; none for most models).
    whiten: Option<Whitening>,
    model_id: String,
    dim: usize,
    device: Device,
    dir: PathBuf,
}

/// The answer of [`FaceModel::verify`].
#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    /// Whether the two images show the same person (`score >= threshold`).
    pub same: bool,
    /// Cosine similarity of the embeddings.
    pub score: f64,
    /// The model's threshold.
    pub threshold: f64,
}

impl FaceModel {
    /// Loads a model from a model directory, a run directory or `runs/<pipeline>` onto
    /// `backend`'s `device` (`"cpu"`, or `"cuda:N"` with tch).
    pub fn load(path: &Path, backend: BackendKind, device: &str) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let manifest = Manifest::load(&dir)?;
        let bad = |message: String| FacesError::Config(format!("{}: {message}", dir.display()));
        if manifest.kind != MODEL_KIND {
            return Err(bad(format!(
                "model kind `{}` is not a face model (`{MODEL_KIND}`)",
                manifest.kind
            )));
        }
        let config: EmbeddingNetConfig = serde_json::from_value(manifest.model.clone())
            .map_err(|e| bad(format!("manifest `model` is not an embedding network: {e}")))?;
        let mut features = manifest.features.clone();
        if let Some(o) = features.as_object_mut() {
            o.remove("kind");
        }
        let preprocess: Preprocess = serde_json::from_value(features).map_err(|e| {
            bad(format!(
                "manifest `features` are not face preprocessing settings: {e}"
            ))
        })?;
        let threshold = manifest
            .decision
            .get("threshold")
            .and_then(serde_json::Value::as_f64)
            .ok_or_else(|| bad("manifest has no `decision.threshold`".into()))?;
        // Models from before ensembles have no `members`: one network.
        let members =
            match manifest.decision.get("members") {
                None => 1,
                Some(m) => m.as_u64().filter(|&m| m >= 1).ok_or_else(|| {
                    bad(format!("manifest `decision.members` is {m}, not a count"))
                })? as usize,
            };
        let device = backend::device(backend, device)?;
        let mut hasher = blake3::Hasher::new();
        let mut nets = Vec::with_capacity(members);
        for k in 0..members {
            let weights = dir.join(member_weights_file(k));
            let bytes =
                std::fs::read(&weights).map_err(|e| profundo_core::CoreError::io(&weights, e))?;
            hasher.update(&bytes);
            let net = load_weights(&weights, config.init(manifest.input_shape, &device))?;
            nets.push(net.valid());
        }
        let dim = config.embedding_dim * members;
        let center = match manifest.decision.get("center") {
            None => None,
            Some(c) => {
                let c: Vec<f32> = serde_json::from_value(c.clone())
                    .ok()
                    .filter(|c: &Vec<f32>| c.len() == dim)
                    .ok_or_else(|| {
                        bad(format!(
                            "manifest `decision.center` is not a list of {dim} numbers"
                        ))
                    })?;
                // Centring changes every embedding: galleries made without it must not match.
                hasher.update(b"center");
                c.iter().for_each(|v| {
                    hasher.update(&v.to_le_bytes());
                });
                Some(c)
            }
        };
        let whiten = match manifest.decision.get("whiten") {
            None => None,
            Some(w) => {
                let w: Whitening = serde_json::from_value(w.clone())
                    .ok()
                    .filter(|w: &Whitening| w.fits(dim))
                    .ok_or_else(|| {
                        bad(format!(
                            "manifest `decision.whiten` is not a whitening of {dim} values"
                        ))
                    })?;
                if center.is_none() {
                    return Err(bad("manifest has `decision.whiten` without `center`".into()));
                }
                // Whitening changes every embedding too.
                hasher.update(b"whiten");
                w.matrices.iter().flatten().for_each(|v| {
                    hasher.update(&v.to_le_bytes());
                });
                Some(w)
            }
        };
        let model_id = hasher.finalize().to_hex()[..16].to_string();
        Ok(Self {
            nets,
            manifest,
            preprocess,
            threshold,
            center,
            whiten,
            model_id,
            dim,
            device,
            dir,
        })
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The "same person" threshold on cosine similarity.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// Identifies the weights (blake3 of the weights files); galleries record it.
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    /// The model directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Embedding size.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The preprocessing settings.
    pub fn preprocess(&self) -> &Preprocess {
        &self.preprocess
    }

    /// Embeddings of preprocessed inputs (each `height * width` values).
    pub fn embed_inputs(&self, inputs: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let refs: Vec<&[f32]> = inputs.iter().map(Vec::as_slice).collect();
        let mut flat = embed_ensemble(&self.nets, &refs, self.preprocess.shape(), &self.device);
        if let Some(c) = &self.center {
            flat.chunks_mut(self.dim.max(1))
                .for_each(|v| center_embedding(v, c));
        }
        if let Some(w) = &self.whiten {
            flat.chunks_mut(self.dim.max(1)).for_each(|v| w.apply(v));
        }
        flat.chunks(self.dim.max(1)).map(<[f32]>::to_vec).collect()
    }

    /// Embedding of one image file.
    pub fn embed_file(&self, path: &Path) -> Result<Vec<f32>> {
        let input = self.preprocess.load(path)?;
        Ok(self.embed_inputs(&[input]).remove(0))
    }

    /// Whether two image files show the same person.
    pub fn verify(&self, a: &Path, b: &Path) -> Result<Verdict> {
        let inputs = vec![self.preprocess.load(a)?, self.preprocess.load(b)?];
        let e = self.embed_inputs(&inputs);
        let score = cosine(&e[0], &e[1]);
        Ok(Verdict {
            same: score >= self.threshold,
            score,
            threshold: self.threshold,
        })
    }
}

/// Cosine similarity of two unit vectors, clamped to [-1, 1].
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let s: f64 = a
        .iter()
        .zip(b)
        .map(|(x, y)| (*x as f64) * (*y as f64))
        .sum();
    s.clamp(-1.0, 1.0)
}
