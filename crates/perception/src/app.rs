//! The sign apps on a trained model: `classify` images (the sign's class, name and
//! probability, the top alternatives) and `explain` an answer with an occlusion heat map
//! (Zeiler & Fergus 2014: the drop in the answer's probability when a grey patch hides
//! each part of the sign).

use std::path::Path;

use burn::tensor::{Device, Tensor, TensorData};
use image::{Rgb, RgbImage};
use profundo_core::backend::{self, BackendKind};
use profundo_core::manifest::resolve_model_dir;
use profundo_core::metrics::top_k_indices;
use serde::{Deserialize, Serialize};

use crate::classes::class_id_of;
use crate::model::SignNet;
use crate::picture::{self, central_square};
use crate::train::{SignManifest, load_model};
use crate::{PerceptionError, Result};

/// How much wider than tall (or taller than wide) an image may be and still be taken as
/// one sign; anything more is cropped to its central square.
pub const SQUARE_TOLERANCE: f64 = 0.25;

/// One alternative answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignGuess {
    /// GTSRB `ClassId`, when the model's labels are GTSRB classes.
    pub class: Option<usize>,
    /// The model's label.
    pub label: String,
    /// The sign's name.
    pub name: String,
    /// Probability.
    pub score: f32,
}

/// What `classify` says about one image (one JSON line with `--json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignAnswer {
    /// The image file.
    pub path: String,
    /// GTSRB `ClassId` of the answer, when the model's labels are GTSRB classes.
    pub class: Option<usize>,
    /// The model's label of the answer.
    pub label: String,
    /// The sign's name.
    pub name: String,
    /// Its probability.
    pub score: f32,
    /// The most probable classes, best first (the answer included).
    pub top: Vec<SignGuess>,
    /// Set when only part of the image was classified (a whole photo: its central square).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cropped: Option<String>,
}

/// A loaded sign model.
pub struct SignClassifier {
    model: SignNet,
    /// The model's manifest.
    pub manifest: SignManifest,
    device: Device,
}

impl SignClassifier {
    /// Loads a model from a model directory, a run directory or `runs/<pipeline>` onto
    /// `backend`'s `device`.
    pub fn load(path: &Path, backend: BackendKind, device: &str) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let device = backend::device(backend, device)?;
        let (model, manifest) = load_model(&dir, &device)?;
        Ok(Self {
            model,
            manifest,
            device,
        })
    }

    fn size(&self) -> u32 {
        self.manifest.model.inputs.size
    }

    /// The input of an image: the whole image, or its central square when it is not
    /// roughly square (the note says so).
    pub fn prepare(&self, img: &RgbImage) -> (Vec<f32>, Option<String>) {
        let (w, h) = img.dimensions();
        let roi = central_square(w, h, SQUARE_TOLERANCE);
        let note = roi.map(|r| {
            format!(
                "a {w}x{h} image is not one sign: classified its central {}x{} square \
                 (crop the sign for a reliable answer)",
                r.x2 - r.x1 + 1,
                r.y2 - r.y1 + 1
            )
        });
        (picture::to_input(img, roi, self.size()), note)
    }

    /// Class probabilities of each input (`[3, size, size]` after one another).
    pub fn probabilities(&self, x: &[f32]) -> Vec<Vec<f32>> {
        let s = self.size() as usize;
        let n = 3 * s * s;
        let b = x.len() / n;
        if b == 0 {
            return Vec::new();
        }
        let t = Tensor::<4>::from_data(TensorData::new(x.to_vec(), [b, 3, s, s]), &self.device);
        let probs = burn::tensor::activation::softmax(self.model.forward(t), 1);
        let flat: Vec<f32> = probs.into_data().try_to_vec().unwrap_or_default();
        let classes = self.manifest.model.labels.len().max(1);
        flat.chunks(classes).map(<[f32]>::to_vec).collect()
    }

    fn guess(&self, k: usize, score: f32) -> SignGuess {
        let m = &self.manifest.model;
        let label = m.labels.get(k).cloned().unwrap_or_default();
        SignGuess {
            class: class_id_of(&label),
            name: m.names.get(k).cloned().unwrap_or_else(|| label.clone()),
            label,
            score,
        }
    }

    /// The answer for one image's probabilities.
    pub fn answer(
        &self,
        path: &str,
        probs: &[f32],
        top: usize,
        cropped: Option<String>,
    ) -> SignAnswer {
        let best = top_k_indices(probs, top.max(1));
        let guesses: Vec<SignGuess> = best.iter().map(|&k| self.guess(k, probs[k])).collect();
        let first = guesses
            .first()
            .cloned()
            .unwrap_or_else(|| self.guess(0, 0.0));
        SignAnswer {
            path: path.to_string(),
            class: first.class,
            label: first.label,
            name: first.name,
            score: first.score,
            top: guesses,
            cropped,
        }
    }

    /// Classifies decoded images, one batch.
    pub fn classify_images(&self, images: &[(String, RgbImage)], top: usize) -> Vec<SignAnswer> {
        let mut x = Vec::new();
        let mut notes = Vec::new();
        for (_, img) in images {
            let (input, note) = self.prepare(img);
            x.extend(input);
            notes.push(note);
        }
        self.probabilities(&x)
            .iter()
            .zip(images)
            .zip(notes)
            .map(|((p, (path, _)), note)| self.answer(path, p, top, note))
            .collect()
    }

    /// The occlusion heat map of `class` for one input: for each pixel, the mean drop in
    /// the class's probability when a patch of a quarter of the side, filled with the
    /// image's mean colour, covers it (`size x size` values, row after row; larger: more
    /// important to the answer).
    pub fn occlusion_map(&self, x: &[f32], class: usize) -> Vec<f32> {
        let s = self.size() as usize;
        let plane = s * s;
        let patch = (s / 4).max(1);
        let stride = (patch / 4).max(1);
        let mean: Vec<f32> = (0..3)
            .map(|c| x[c * plane..(c + 1) * plane].iter().sum::<f32>() / plane as f32)
            .collect();
        let base = self.probabilities(x).first().map_or(0.0, |p| p[class]);
        let positions: Vec<(usize, usize)> = (0..=s - patch)
            .step_by(stride)
            .flat_map(|y| (0..=s - patch).step_by(stride).map(move |c| (y, c)))
            .collect();
        let mut heat = vec![0f32; plane];
        let mut count = vec![0f32; plane];
        for chunk in positions.chunks(128) {
            let mut batch = Vec::with_capacity(chunk.len() * 3 * plane);
            for &(y0, x0) in chunk {
                let mut v = x.to_vec();
                for (c, m) in mean.iter().enumerate() {
                    for y in y0..y0 + patch {
                        for col in x0..x0 + patch {
                            v[c * plane + y * s + col] = *m;
                        }
                    }
                }
                batch.extend(v);
            }
            for (p, &(y0, x0)) in self.probabilities(&batch).iter().zip(chunk) {
                let drop = (base - p[class]).max(0.0);
                for y in y0..y0 + patch {
                    for col in x0..x0 + patch {
                        heat[y * s + col] += drop;
                        count[y * s + col] += 1.0;
                    }
                }
            }
        }
        heat.iter()
            .zip(&count)
            .map(|(h, c)| if *c > 0.0 { h / c } else { 0.0 })
            .collect()
    }

    /// The picture that explains an answer: the input as the network saw it, and beside
    /// it the same with the occlusion heat map over it (red: hiding this part lowers the
    /// answer's probability most), each enlarged `scale` times.
    pub fn explain(&self, x: &[f32], class: usize, scale: u32) -> RgbImage {
        let s = self.size();
        let heat = self.occlusion_map(x, class);
        let peak = heat.iter().copied().fold(0.0f32, f32::max).max(1e-6);
        let input = picture::to_image(x, s, s);
        let big = s * scale;
        let gap = 8;
        RgbImage::from_fn(2 * big + gap, big, |px, py| {
            if px >= big && px < big + gap {
                return Rgb([255, 255, 255]);
            }
            let right = px >= big + gap;
            let (sx, sy) = (
                ((if right { px - big - gap } else { px }) / scale),
                py / scale,
            );
            let p = *input.get_pixel(sx.min(s - 1), sy.min(s - 1));
            if !right {
                return p;
            }
            let t = heat[(sy.min(s - 1) * s + sx.min(s - 1)) as usize] / peak;
            let hot = heat_colour(t);
            let grey = (p[0] as f32 * 0.3 + p[1] as f32 * 0.59 + p[2] as f32 * 0.11) * 0.6;
            let a = 0.35 + 0.5 * t;
            Rgb([0, 1, 2].map(|c| (grey * (1.0 - a) + hot[c] * a).round() as u8))
        })
    }
}

/// Blue (0) through yellow to red (1).
fn heat_colour(t: f32) -> [f32; 3] {
    let t = t.clamp(0.0, 1.0);
    if t < 0.5 {
        let u = t * 2.0;
        [255.0 * u, 255.0 * u, 255.0 * (1.0 - u)]
    } else {
        let u = (t - 0.5) * 2.0;
        [255.0, 255.0 * (1.0 - u), 0.0]
    }
}

/// Encodes `img` as PNG and writes it to `path` in one rename.
pub fn save_png(path: &Path, img: &RgbImage) -> Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| PerceptionError::image(path, format!("cannot encode PNG: {e}")))?;
    profundo_core::fsutil::write_atomic(path, bytes.get_ref())?;
    Ok(())
}
