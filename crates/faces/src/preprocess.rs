//! Image files to network inputs: decode (PGM, PNG, JPEG, GIF, BMP), convert to grey,
//! fit to the model's input size, normalise. The settings travel in the model manifest so
//! apps preprocess exactly as training did.

use std::path::Path;

use image::imageops::FilterType;
use serde::{Deserialize, Serialize};

use crate::{FacesError, Result};

/// File extensions read as images (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["pgm", "ppm", "pnm", "png", "jpg", "jpeg", "gif", "bmp"];

/// The smallest side accepted: anything smaller is not a face crop.
pub const MIN_SIDE: u32 = 8;

/// How an image of another aspect ratio is fitted to the input size.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Fit {
    /// Scale to cover the input size, then crop the centre (keeps the aspect ratio).
    #[default]
    CenterCrop,
    /// Scale each side independently (distorts other aspect ratios).
    Stretch,
}

/// Per-image intensity normalisation.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Normalize {
    /// Zero mean, unit variance per image (robust to lighting).
    #[default]
    Standardize,
    /// Pixel values scaled to [0, 1].
    Unit,
    /// Tan-Triggs photometric normalisation (gamma, difference of Gaussians, contrast
    /// equalisation: [`crate::photometric`]), then zero mean and unit variance.
    TanTriggs,
}

/// Preprocessing settings (stored in the model manifest under `features`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct Preprocess {
    /// Input height in pixels.
    pub height: u32,
    /// Input width in pixels.
    pub width: u32,
    /// Aspect-ratio policy.
    pub fit: Fit,
    /// Intensity normalisation.
    pub normalize: Normalize,
}

impl Default for Preprocess {
    /// Half the ORL resolution (112x92 -> 56x46).
    fn default() -> Self {
        Self {
            height: 56,
            width: 46,
            fit: Fit::CenterCrop,
            normalize: Normalize::Standardize,
        }
    }
}

impl Preprocess {
    /// Checks the settings.
    pub fn check(&self) -> Result<()> {
        if !(MIN_SIDE..=512).contains(&self.height) || !(MIN_SIDE..=512).contains(&self.width) {
            return Err(FacesError::Config(format!(
                "input size {}x{} must be between {MIN_SIDE} and 512 pixels per side",
                self.height, self.width
            )));
        }
        Ok(())
    }

    /// Shape of one network input, `[1, height, width]`.
    pub fn shape(&self) -> [usize; 3] {
        [1, self.height as usize, self.width as usize]
    }

    /// Reads, decodes and preprocesses one image file.
    pub fn load(&self, path: &Path) -> Result<Vec<f32>> {
        self.input(&read_image(path)?, path)
    }

    /// Decodes and preprocesses the bytes of an image file (`path` names it in errors).
    pub fn decode(&self, bytes: &[u8], path: &Path) -> Result<Vec<f32>> {
        self.input(&decode_image(bytes, path)?, path)
    }

    /// [`Self::from_image`] with the problem reported against `path`.
    pub fn input(&self, img: &image::DynamicImage, path: &Path) -> Result<Vec<f32>> {
        self.from_image(img).map_err(|message| FacesError::Image {
            path: path.to_path_buf(),
            message,
        })
    }

    /// Preprocesses a decoded image; the error message says what is wrong with it.
    pub fn from_image(&self, img: &image::DynamicImage) -> Result<Vec<f32>, String> {
        let (w, h) = (img.width(), img.height());
        if w < MIN_SIDE || h < MIN_SIDE {
            return Err(format!(
                "image is {w}x{h} pixels; a face crop needs at least {MIN_SIDE}x{MIN_SIDE}"
            ));
        }
        let grey = img.to_luma8();
        let fitted = match self.fit {
            Fit::Stretch => {
                image::imageops::resize(&grey, self.width, self.height, FilterType::Triangle)
            }
            Fit::CenterCrop => {
                let scale = (self.width as f64 / w as f64).max(self.height as f64 / h as f64);
                let sw = ((w as f64 * scale).round() as u32).max(self.width);
                let sh = ((h as f64 * scale).round() as u32).max(self.height);
                let scaled = image::imageops::resize(&grey, sw, sh, FilterType::Triangle);
                let (x0, y0) = ((sw - self.width) / 2, (sh - self.height) / 2);
                image::imageops::crop_imm(&scaled, x0, y0, self.width, self.height).to_image()
            }
        };
        let mut v: Vec<f32> = fitted
            .into_raw()
            .into_iter()
            .map(|p| p as f32 / 255.0)
            .collect();
        match self.normalize {
            Normalize::Standardize => standardize(&mut v),
            Normalize::TanTriggs => {
                let (h, w) = (self.height as usize, self.width as usize);
                crate::photometric::tan_triggs(&mut v, h, w);
                standardize(&mut v);
            }
            Normalize::Unit => {}
        }
        Ok(v)
    }
}

/// Reads and decodes an image file; errors name the file and say what is wrong.
pub fn read_image(path: &Path) -> Result<image::DynamicImage> {
    let bytes = std::fs::read(path).map_err(|e| FacesError::Image {
        path: path.to_path_buf(),
        message: format!("cannot open: {e}"),
    })?;
    decode_image(&bytes, path)
}

/// Decodes the bytes of an image file, whatever its extension says, with the shared limits
/// and checks of [`profundo_core::image_file`] (huge headers refused before allocation,
/// truncated JPEGs refused, EXIF orientation applied); `path` names the file in errors.
pub fn decode_image(bytes: &[u8], path: &Path) -> Result<image::DynamicImage> {
    profundo_core::image_file::decode(bytes, path).map_err(|e| FacesError::Image {
        path: e.path,
        message: e.message,
    })
}

/// Zero mean, unit variance in place (a flat image only gets centred).
pub fn standardize(v: &mut [f32]) {
    let n = v.len().max(1) as f32;
    let mean = v.iter().sum::<f32>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f32>() / n;
    let scale = if var > 1e-10 { 1.0 / var.sqrt() } else { 1.0 };
    v.iter_mut().for_each(|x| *x = (*x - mean) * scale);
}

/// Whether a path has one of the [`IMAGE_EXTENSIONS`].
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_png(dir: &Path, name: &str, w: u32, h: u32) -> std::path::PathBuf {
        let img =
            image::GrayImage::from_fn(w, h, |x, y| image::Luma([((x * 7 + y * 3) % 256) as u8]));
        let p = dir.join(name);
        img.save(&p).unwrap();
        p
    }

    #[test]
    fn any_size_becomes_the_input_size_with_zero_mean_and_unit_variance() {
        let dir = tempfile::tempdir().unwrap();
        let pre = Preprocess::default();
        for (w, h) in [(92, 112), (300, 200), (20, 20)] {
            let v = pre
                .load(&write_png(dir.path(), &format!("{w}x{h}.png"), w, h))
                .unwrap();
            assert_eq!(v.len(), 56 * 46);
            let mean = v.iter().sum::<f32>() / v.len() as f32;
            let var = v.iter().map(|x| (x - mean).powi(2)).sum::<f32>() / v.len() as f32;
            assert!(
                mean.abs() < 1e-4 && (var - 1.0).abs() < 1e-3,
                "{mean} {var}"
            );
        }
    }

    #[test]
    fn bad_files_get_errors_naming_the_file_and_the_problem() {
        let dir = tempfile::tempdir().unwrap();
        let pre = Preprocess::default();
        let text = dir.path().join("notes.png");
        std::fs::write(&text, "hello, not an image").unwrap();
        let err = pre.load(&text).unwrap_err().to_string();
        assert!(
            err.contains("notes.png") && err.contains("not an image"),
            "{err}"
        );

        let good = write_png(dir.path(), "face.png", 40, 40);
        let bytes = std::fs::read(&good).unwrap();
        let cut = dir.path().join("cut.png");
        std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
        let err = pre.load(&cut).unwrap_err().to_string();
        assert!(
            err.contains("cut.png") && err.contains("cannot decode"),
            "{err}"
        );

        let tiny = write_png(dir.path(), "dot.png", 1, 1);
        let err = pre.load(&tiny).unwrap_err().to_string();
        assert!(err.contains("dot.png") && err.contains("1x1"), "{err}");

        let err = pre
            .load(&dir.path().join("missing.pgm"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("missing.pgm") && err.contains("cannot open"),
            "{err}"
        );
    }
}
