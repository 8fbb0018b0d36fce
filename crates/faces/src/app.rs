//! Using a trained face model: embed images, verify two faces, and identify faces against
//! a gallery.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::tensor::Device;
use profundo_core::backend::{self, BackendKind};
use profundo_core::manifest::{MANIFEST_FILE, load_weights, resolve_model_dir};
use serde::Serialize;

use crate::model::{EmbeddingNet, embed_ensemble, member_weights_file};
use crate::model_dir::FaceManifest;
use crate::preprocess::Preprocess;
use crate::score_norm::center_embedding;
use crate::whiten::Whitening;
use crate::{FacesError, Result};

/// A loaded face embedding model with its preprocessing and decision threshold.
pub struct FaceModel {
    /// The ensemble's member networks (one for most models).
    nets: Vec<EmbeddingNet>,
    manifest: FaceManifest,
    preprocess: Preprocess,
    threshold: f64,
    /// Mean training embedding to centre on (`model.center`; none for most models).
    center: Option<Vec<f32>>,
    /// Whitening after centring (`model.whiten`; none for most models).
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
        let manifest = FaceManifest::load(&dir)?;
        let bad = |message: String| {
            FacesError::Config(format!("{}: {message}", dir.join(MANIFEST_FILE).display()))
        };
        let m = &manifest.model;
        m.check().map_err(bad)?;
        let threshold = manifest
            .threshold
            .as_ref()
            .map(|t| t.value)
            .ok_or_else(|| bad("manifest has no `threshold`".into()))?;
        let device = backend::device(backend, device)?;
        let mut hasher = blake3::Hasher::new();
        let mut nets = Vec::with_capacity(m.members);
        for k in 0..m.members {
            let weights = dir.join(member_weights_file(k));
            let bytes =
                std::fs::read(&weights).map_err(|e| profundo_core::CoreError::io(&weights, e))?;
            hasher.update(&bytes);
            let net = load_weights(&weights, m.network.init(m.input_shape, &device))?;
            nets.push(net.valid());
        }
        let dim = m.dim();
        // Centring and whitening change every embedding: galleries made without them must
        // not match.
        if let Some(c) = &m.center {
            hasher.update(b"center");
            c.iter().for_each(|v| {
                hasher.update(&v.to_le_bytes());
            });
        }
        if let Some(w) = &m.whiten {
            hasher.update(b"whiten");
            w.matrices.iter().flatten().for_each(|v| {
                hasher.update(&v.to_le_bytes());
            });
        }
        let (preprocess, center, whiten) =
            (m.preprocess.clone(), m.center.clone(), m.whiten.clone());
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
    pub fn manifest(&self) -> &FaceManifest {
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
        Ok(self.verdict(&e[0], &e[1]))
    }

    /// Whether two embeddings are of the same person.
    pub fn verdict(&self, a: &[f32], b: &[f32]) -> Verdict {
        let score = cosine(a, b);
        Verdict {
            same: score >= self.threshold,
            score,
            threshold: self.threshold,
        }
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
