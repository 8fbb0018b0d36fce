//! Image files to network inputs: decoding with size limits (a header claiming 100,000 x
//! 100,000 pixels is refused before anything is allocated), EXIF orientation, the
//! region of interest a GTSRB table gives, and resizing to the model's square input as
//! `[3, size, size]` RGB values in `[0, 1]`.

use std::path::Path;

use image::RgbImage;
use image::imageops::FilterType;
use profundo_core::image_file;
use serde::{Deserialize, Serialize};

use crate::{PerceptionError, Result};

/// File extensions read as images (lower case).
pub const IMAGE_EXTENSIONS: &[&str] = &["ppm", "pnm", "png", "jpg", "jpeg", "gif", "bmp"];

/// The smallest side accepted: anything smaller holds no readable sign.
pub const MIN_SIDE: u32 = 4;

/// A rectangle in pixels, `x1..=x2` by `y1..=y2` (GTSRB's `Roi.X1` ... `Roi.Y2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Roi {
    /// Left column.
    pub x1: u32,
    /// Top row.
    pub y1: u32,
    /// Right column (inclusive).
    pub x2: u32,
    /// Bottom row (inclusive).
    pub y2: u32,
}

impl Roi {
    /// The ROI a table gives for an image of `declared` size, mapped onto the image as
    /// decoded (`actual`): the same where the sizes agree (the official full-resolution
    /// release), scaled where the images were resized after the table was written.
    /// `None` when it is empty or falls outside the image.
    pub fn mapped(self, declared: (u32, u32), actual: (u32, u32)) -> Option<Roi> {
        let (dw, dh) = (declared.0.max(1) as f64, declared.1.max(1) as f64);
        let (sx, sy) = (actual.0 as f64 / dw, actual.1 as f64 / dh);
        let x1 = (self.x1 as f64 * sx).floor() as u32;
        let y1 = (self.y1 as f64 * sy).floor() as u32;
        let x2 = (((self.x2 + 1) as f64 * sx).ceil() as u32).min(actual.0);
        let y2 = (((self.y2 + 1) as f64 * sy).ceil() as u32).min(actual.1);
        (x2 > x1 + 1 && y2 > y1 + 1).then_some(Roi {
            x1,
            y1,
            x2: x2 - 1,
            y2: y2 - 1,
        })
    }
}

/// Decodes an image file's bytes (PPM, PNG, JPEG, GIF, BMP) with the shared limits and
/// checks of [`profundo_core::image_file`] (a header claiming more than [`image_file::MAX_SIDE`] pixels
/// a side refused before allocation, a truncated JPEG refused, EXIF orientation applied),
/// then refuses one smaller than [`MIN_SIDE`]. `path` names the input in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<RgbImage> {
    let img =
        image_file::decode(bytes, path).map_err(|e| PerceptionError::image(path, e.message))?;
    if img.width() < MIN_SIDE || img.height() < MIN_SIDE {
        return Err(PerceptionError::image(
            path,
            format!(
                "image is {}x{} pixels; a sign needs at least {MIN_SIDE}x{MIN_SIDE}",
                img.width(),
                img.height()
            ),
        ));
    }
    Ok(img.to_rgb8())
}

/// Reads and decodes an image file ([`decode`]).
pub fn read(path: &Path) -> Result<RgbImage> {
    let bytes = std::fs::read(path)
        .map_err(|e| PerceptionError::image(path, format!("cannot open: {e}")))?;
    decode(&bytes, path)
}

/// Whether `path` has an image file's extension.
pub fn is_image_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| IMAGE_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
}

/// `img` cropped to `roi` (if any) and resized to `size x size`, as `[3, size, size]`
/// values in `[0, 1]`, channel after channel.
pub fn to_input(img: &RgbImage, roi: Option<Roi>, size: u32) -> Vec<f32> {
    let cropped;
    let src = match roi {
        Some(r) => {
            cropped = image::imageops::crop_imm(img, r.x1, r.y1, r.x2 - r.x1 + 1, r.y2 - r.y1 + 1)
                .to_image();
            &cropped
        }
        None => img,
    };
    let resized = if src.dimensions() == (size, size) {
        src.clone()
    } else {
        image::imageops::resize(src, size, size, FilterType::Triangle)
    };
    planes(&resized)
}

/// An RGB image as `[3, height, width]` values in `[0, 1]`.
pub fn planes(img: &RgbImage) -> Vec<f32> {
    let (w, h) = img.dimensions();
    let n = (w * h) as usize;
    let mut out = vec![0.0f32; 3 * n];
    for (i, p) in img.pixels().enumerate() {
        for c in 0..3 {
            out[c * n + i] = p[c] as f32 / 255.0;
        }
    }
    out
}

/// `[3, height, width]` values (clamped to `[0, 1]`) back to an RGB image.
pub fn to_image(x: &[f32], h: u32, w: u32) -> RgbImage {
    let n = (w * h) as usize;
    RgbImage::from_fn(w, h, |col, row| {
        let i = (row * w + col) as usize;
        let px = |c: usize| (x[c * n + i].clamp(0.0, 1.0) * 255.0).round() as u8;
        image::Rgb([px(0), px(1), px(2)])
    })
}

/// The central square of an image wider or taller than `1 + tolerance` times its other
/// side, or `None` if it is square enough to be used whole.
pub fn central_square(w: u32, h: u32, tolerance: f64) -> Option<Roi> {
    let (long, short) = (w.max(h), w.min(h));
    if (long as f64) <= short as f64 * (1.0 + tolerance) {
        return None;
    }
    let (x1, y1) = ((w - short) / 2, (h - short) / 2);
    Some(Roi {
        x1,
        y1,
        x2: x1 + short - 1,
        y2: y1 + short - 1,
    })
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use super::*;

    fn png_bytes(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 7]));
        let mut out = Vec::new();
        img.write_to(&mut Cursor::new(&mut out), image::ImageFormat::Png)
            .unwrap();
        out
    }

    #[test]
    fn a_roi_written_for_the_original_size_maps_onto_a_resized_image() {
        // GTSRB: a 29x30 original with ROI (5,6)-(24,25), resized to 32x32.
        let roi = Roi {
            x1: 5,
            y1: 6,
            x2: 24,
            y2: 25,
        };
        assert_eq!(roi.mapped((29, 30), (29, 30)), Some(roi));
        let m = roi.mapped((29, 30), (32, 32)).unwrap();
        assert_eq!((m.x1, m.y1), (5, 6));
        assert_eq!((m.x2, m.y2), (27, 27));
        assert_eq!(
            Roi {
                x1: 40,
                y1: 0,
                x2: 50,
                y2: 5
            }
            .mapped((30, 30), (30, 30)),
            None
        );
    }

    #[test]
    fn images_become_unit_range_planes_of_the_input_size() {
        let img = decode(&png_bytes(50, 40), Path::new("x.png")).unwrap();
        let x = to_input(&img, None, 32);
        assert_eq!(x.len(), 3 * 32 * 32);
        assert!(x.iter().all(|v| (0.0..=1.0).contains(v)));
        let back = to_image(&planes(&img), 40, 50);
        assert_eq!(back, img);
    }

    #[test]
    fn bad_files_are_refused_naming_the_file_and_the_problem() {
        let p = Path::new("sign.png");
        let e = decode(b"", p).unwrap_err().to_string();
        assert!(e.contains("sign.png") && e.contains("empty"), "{e}");
        let e = decode(b"hello, I am text", p).unwrap_err().to_string();
        assert!(e.contains("not an image"), "{e}");
        let full = png_bytes(20, 20);
        let e = decode(&full[..full.len() / 2], p).unwrap_err().to_string();
        assert!(e.contains("truncated or corrupt"), "{e}");
        let e = decode(&png_bytes(3, 3), p).unwrap_err().to_string();
        assert!(e.contains("at least"), "{e}");
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut c = !0u32;
        for &b in bytes {
            c ^= b as u32;
            for _ in 0..8 {
                c = if c & 1 == 1 {
                    0xEDB8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
        }
        !c
    }

    #[test]
    fn a_header_claiming_a_huge_image_is_refused_before_decoding() {
        // A valid PNG header and IHDR for 100000 x 100000 pixels, no data.
        let mut png = png_bytes(8, 8);
        png[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        png[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        // The chunk's CRC over type and data, so that only the size is wrong.
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        let e = decode(&png, Path::new("bomb.png")).unwrap_err().to_string();
        assert!(e.contains("bomb.png"), "{e}");
        assert!(
            e.contains("100000x100000") || e.contains("too large"),
            "{e}"
        );
    }

    #[test]
    fn wide_photos_are_cropped_to_their_central_square() {
        assert_eq!(central_square(40, 40, 0.25), None);
        assert_eq!(central_square(45, 40, 0.25), None);
        let r = central_square(300, 100, 0.25).unwrap();
        assert_eq!((r.x1, r.x2, r.y1, r.y2), (100, 199, 0, 99));
    }
}
