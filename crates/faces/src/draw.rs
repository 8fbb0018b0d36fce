//! Detections drawn on the photo: each face's box (green, or red under the decision
//! threshold of an identification) and its five landmarks (yellow dots), the picture a
//! user checks a detection with.

use image::{Rgb, RgbImage};

use crate::detect::Face;

/// Box colour of a detected or recognised face.
pub const KNOWN: Rgb<u8> = Rgb([40, 220, 60]);
/// Box colour of a face identified as nobody in the gallery.
pub const UNKNOWN: Rgb<u8> = Rgb([230, 40, 40]);
/// Landmark colour.
pub const LANDMARK: Rgb<u8> = Rgb([255, 220, 0]);

/// `img` with `faces` drawn on it, each box in its colour (`colours[i]`, [`KNOWN`] when
/// missing), lines about 1/150 of the photo's size thick.
pub fn draw_faces(img: &image::DynamicImage, faces: &[Face], colours: &[Rgb<u8>]) -> RgbImage {
    let mut out = img.to_rgb8();
    let thick = (out.width().max(out.height()) / 150).max(2) as i64;
    for (i, f) in faces.iter().enumerate() {
        let colour = colours.get(i).copied().unwrap_or(KNOWN);
        let [x1, y1, x2, y2] = f.bbox.map(|v| v.round() as i64);
        fill(&mut out, x1 - thick, y1 - thick, x2 + thick, y1, colour);
        fill(&mut out, x1 - thick, y2, x2 + thick, y2 + thick, colour);
        fill(&mut out, x1 - thick, y1, x1, y2, colour);
        fill(&mut out, x2, y1, x2 + thick, y2, colour);
        // Dots scaled to the face, so that a small face's landmarks stay apart.
        let r = ((f.width() / 40.0).round() as i64).clamp(1, thick + 1);
        for p in &f.landmarks {
            dot(&mut out, p[0] as i64, p[1] as i64, r, LANDMARK);
        }
    }
    out
}

/// Encodes `img` as PNG and writes it to `path` in one rename (no half-written file).
pub fn save_png(path: &std::path::Path, img: &RgbImage) -> crate::Result<()> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| crate::FacesError::Image {
            path: path.to_path_buf(),
            message: format!("cannot encode PNG: {e}"),
        })?;
    profundo_core::fsutil::write_atomic(path, bytes.get_ref())?;
    Ok(())
}

/// Fills `[x0, x1) x [y0, y1)`, clipped to the image.
fn fill(img: &mut RgbImage, x0: i64, y0: i64, x1: i64, y1: i64, colour: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in y0.max(0)..y1.min(h) {
        for x in x0.max(0)..x1.min(w) {
            img.put_pixel(x as u32, y as u32, colour);
        }
    }
}

/// A filled disc of radius `r` at `(cx, cy)`, clipped to the image.
fn dot(img: &mut RgbImage, cx: i64, cy: i64, r: i64, colour: Rgb<u8>) {
    let (w, h) = (img.width() as i64, img.height() as i64);
    for y in (cy - r).max(0)..(cy + r + 1).min(h) {
        for x in (cx - r).max(0)..(cx + r + 1).min(w) {
            if (x - cx).pow(2) + (y - cy).pow(2) <= r * r {
                img.put_pixel(x as u32, y as u32, colour);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boxes_and_landmarks_land_where_the_face_is_even_at_the_border() {
        let img = image::DynamicImage::ImageRgb8(RgbImage::new(300, 200));
        let face = Face {
            bbox: [100.0, 50.0, 180.0, 150.0],
            score: 0.99,
            landmarks: [
                [120.0, 80.0],
                [160.0, 80.0],
                [140.0, 100.0],
                [125.0, 125.0],
                [155.0, 125.0],
            ],
        };
        let edge = Face {
            bbox: [-20.0, -10.0, 40.0, 60.0],
            ..face.clone()
        };
        let out = draw_faces(&img, &[face, edge], &[KNOWN, UNKNOWN]);
        assert_eq!(*out.get_pixel(140, 49), KNOWN); // top edge, drawn just outside the box
        assert_eq!(*out.get_pixel(180, 100), KNOWN); // right edge
        assert_eq!(*out.get_pixel(140, 100), LANDMARK); // nose
        assert_eq!(*out.get_pixel(140, 70), Rgb([0, 0, 0])); // inside, not drawn
        assert_eq!(*out.get_pixel(40, 30), UNKNOWN); // the clipped box's right edge
    }
}
