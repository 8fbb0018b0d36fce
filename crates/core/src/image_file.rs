//! Decoding the image files users bring, for every domain that reads pictures: the format
//! from the content (not the extension), a header claiming more than [`MAX_SIDE`] pixels a
//! side or more than [`MAX_DECODED_BYTES`] refused before anything is allocated, a JPEG cut
//! short refused rather than decoded into grey, and the picture turned upright by its EXIF
//! orientation (as a phone stores it).

use std::io::Cursor;
use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

/// The largest width or height accepted (a street photo is a few thousand pixels).
pub const MAX_SIDE: u32 = 12_000;

/// The most memory one decoded image may take.
pub const MAX_DECODED_BYTES: u64 = 512 << 20;

/// Why an image file cannot be used: the file and the problem.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {message}", path.display())]
pub struct ImageFileError {
    /// The file.
    pub path: PathBuf,
    /// What is wrong with it.
    pub message: String,
}

/// Decodes an image file's bytes (PNG, JPEG, GIF, BMP, PGM/PPM), with the limits and checks
/// of this module; `path` names the input in errors.
pub fn decode(bytes: &[u8], path: &Path) -> Result<DynamicImage, ImageFileError> {
    let bad = |message: String| ImageFileError {
        path: path.to_path_buf(),
        message,
    };
    if bytes.is_empty() {
        return Err(bad("not an image file (it is empty, 0 bytes)".into()));
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    let Some(format) = reader.format() else {
        return Err(bad(
            "not an image file (content is not PNG, JPEG, GIF, BMP, PGM or PPM)".into(),
        ));
    };
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        return Err(bad(
            "truncated JPEG: the file ends before the image data does (no end-of-image marker)"
                .into(),
        ));
    }
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let mut decoder = reader
        .into_decoder()
        .map_err(|e| bad(format!("cannot decode image (truncated or corrupt?): {e}")))?;
    let (w, h) = decoder.dimensions();
    if w > MAX_SIDE || h > MAX_SIDE {
        return Err(bad(format!(
            "image claims {w}x{h} pixels; at most {MAX_SIDE} per side are accepted"
        )));
    }
    if w == 0 || h == 0 {
        return Err(bad(format!("image claims {w}x{h} pixels: it is empty")));
    }
    decoder.set_limits(limits).map_err(|e| {
        bad(format!(
            "image of {w}x{h} pixels is too large to decode: {e}"
        ))
    })?;
    let orientation = decoder.orientation().ok();
    let mut img = DynamicImage::from_decoder(decoder)
        .map_err(|e| bad(format!("cannot decode image (truncated or corrupt?): {e}")))?;
    if let Some(o) = orientation {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// Whether a JPEG's last scan is followed by its end-of-image marker. Decoders fill a file
/// cut short with grey; a complete file has `FF D9` after its last start-of-scan `FF DA`
/// (a thumbnail's markers come earlier, inside the EXIF segment).
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let last_scan = bytes.windows(2).rposition(|m| m == [0xFF, 0xDA]);
    let Some(scan) = last_scan else {
        return false;
    };
    bytes[scan..].windows(2).any(|m| m == [0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(w: u32, h: u32, format: ImageFormat) -> Vec<u8> {
        let img =
            image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 9) as u8, (y * 5) as u8, 7]));
        let mut out = Vec::new();
        DynamicImage::ImageRgb8(img)
            .write_to(&mut Cursor::new(&mut out), format)
            .unwrap();
        out
    }

    #[test]
    fn decodes_png_and_jpeg_and_refuses_a_jpeg_cut_short() {
        let p = Path::new("x");
        for f in [ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Bmp] {
            let img = decode(&encoded(20, 10, f), p).unwrap();
            assert_eq!((img.width(), img.height()), (20, 10), "{f:?}");
        }
        let jpg = encoded(40, 40, ImageFormat::Jpeg);
        let e = decode(&jpg[..jpg.len() * 2 / 3], Path::new("cut.jpg")).unwrap_err();
        assert!(e.to_string().starts_with("cut.jpg: truncated JPEG"), "{e}");
        let e = decode(b"GIF89a", Path::new("g.gif")).unwrap_err();
        assert!(e.to_string().contains("g.gif"), "{e}");
        let e = decode(b"hello", Path::new("t.png")).unwrap_err();
        assert!(e.to_string().contains("not an image file"), "{e}");
    }

    #[test]
    fn a_header_claiming_huge_sides_is_refused_before_decoding() {
        let e = decode(b"P5\n100000 100000\n255\n\0\0", Path::new("bomb.pgm")).unwrap_err();
        assert!(e.message.contains("100000x100000"), "{e}");
    }
}
