//! Images for `faces detect` (no model needed), `faces identify` and `signs classify`:
//! truncated files, headers that claim 100,000-pixel sides (decompression bombs), and the
//! unusual but valid files cameras and editors write (16-bit, CMYK, animated, EXIF-rotated).

use std::io::Cursor;

use image::{ImageEncoder, RgbImage};

use super::{Case, Fixture, put};
use crate::util::repo;

/// CRC-32 (IEEE) of `bytes`, as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
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

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    out.extend_from_slice(&body);
    out.extend_from_slice(&crc32(&body).to_be_bytes());
}

/// A PNG whose header claims `w` x `h` 8-bit grey pixels, with an empty image stream.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 0, 0, 0, 0]);
    png_chunk(&mut b, b"IHDR", &ihdr);
    // An empty zlib stream (one final stored block of length 0, Adler-32 of nothing).
    png_chunk(
        &mut b,
        b"IDAT",
        &[0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0, 0, 0, 1],
    );
    png_chunk(&mut b, b"IEND", &[]);
    b
}

/// A baseline JPEG of `w` x `h` with `components` components (4: Adobe CMYK), every block a
/// flat mid-grey: one-symbol Huffman tables make each block two bits (DC 0, end of block).
fn flat_jpeg(w: u16, h: u16, components: u8) -> Vec<u8> {
    let mut b = vec![0xFF, 0xD8];
    if components == 4 {
        // Adobe APP14, transform 0: the components are CMYK.
        b.extend_from_slice(&[0xFF, 0xEE, 0, 14]);
        b.extend_from_slice(b"Adobe");
        b.extend_from_slice(&[0, 100, 0, 0, 0, 0, 0]);
    }
    b.extend_from_slice(&[0xFF, 0xDB, 0, 67, 0]);
    b.extend_from_slice(&[1u8; 64]);
    let n = components as u16;
    b.extend_from_slice(&[0xFF, 0xC0]);
    b.extend_from_slice(&(8 + 3 * n).to_be_bytes());
    b.push(8);
    b.extend_from_slice(&h.to_be_bytes());
    b.extend_from_slice(&w.to_be_bytes());
    b.push(components);
    for c in 1..=components {
        b.extend_from_slice(&[c, 0x11, 0]);
    }
    b.extend_from_slice(&[0xFF, 0xC4, 0, 2 + 2 * 18]);
    for class in [0x00u8, 0x10] {
        b.push(class);
        b.push(1);
        b.extend_from_slice(&[0u8; 15]);
        b.push(0);
    }
    b.extend_from_slice(&[0xFF, 0xDA]);
    b.extend_from_slice(&(6 + 2 * n).to_be_bytes());
    b.push(components);
    for c in 1..=components {
        b.extend_from_slice(&[c, 0x00]);
    }
    b.extend_from_slice(&[0, 63, 0]);
    let blocks = (w as usize).div_ceil(8) * (h as usize).div_ceil(8) * components as usize;
    let blocks = blocks.min(4096);
    let bits = 2 * blocks;
    let mut scan = vec![0u8; bits.div_ceil(8)];
    if !bits.is_multiple_of(8) {
        *scan.last_mut().unwrap() = (1u8 << (8 - bits % 8)) - 1;
    }
    b.extend_from_slice(&scan);
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}

/// `img` as a JPEG carrying an EXIF orientation tag (6: turn 90 degrees clockwise to view).
fn jpeg_with_orientation(img: &RgbImage, orientation: u16) -> Vec<u8> {
    let mut plain = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut plain, 90)
        .write_image(
            img,
            img.width(),
            img.height(),
            image::ExtendedColorType::Rgb8,
        )
        .unwrap();
    let mut tiff = b"II*\0".to_vec();
    tiff.extend_from_slice(&8u32.to_le_bytes());
    tiff.extend_from_slice(&1u16.to_le_bytes());
    tiff.extend_from_slice(&0x0112u16.to_le_bytes());
    tiff.extend_from_slice(&3u16.to_le_bytes());
    tiff.extend_from_slice(&1u32.to_le_bytes());
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_le_bytes());
    let mut app1 = vec![0xFF, 0xE1];
    app1.extend_from_slice(&(2 + 6 + tiff.len() as u16).to_be_bytes());
    app1.extend_from_slice(b"Exif\0\0");
    app1.extend_from_slice(&tiff);
    let mut out = plain[..2].to_vec();
    out.extend_from_slice(&app1);
    out.extend_from_slice(&plain[2..]);
    out
}

fn encoded(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), format).unwrap();
    out
}

/// A three-frame animated GIF of coloured squares.
fn animated_gif() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = image::codecs::gif::GifEncoder::new(&mut out);
        let frames = [[200u8, 30, 30], [30, 60, 200], [230, 200, 30]].map(|c| {
            let img = image::RgbaImage::from_fn(32, 32, |x, y| {
                let inside = (8..24).contains(&x) && (8..24).contains(&y);
                image::Rgba(if inside {
                    [c[0], c[1], c[2], 255]
                } else {
                    [90, 110, 90, 255]
                })
            });
            image::Frame::new(img)
        });
        enc.encode_frames(frames).unwrap();
    }
    out
}

pub fn cases(f: &Fixture) -> Vec<Case> {
    let photo = image::open(repo().join("datasets/face-photos/grace_hopper.png")).unwrap();
    let png = encoded(&photo, image::ImageFormat::Png);
    let jpg = encoded(&photo.to_rgb8().into(), image::ImageFormat::Jpeg);
    let detect = |p: &str| {
        vec!["faces", "detect", p]
            .into_iter()
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let classify = |p: &str| {
        ["signs", "classify", "--model", &f.signs, p]
            .map(String::from)
            .to_vec()
    };
    let identify = |p: &str| {
        [
            "faces",
            "identify",
            "--model",
            &f.faces,
            "--gallery",
            &f.gallery,
            p,
        ]
        .map(String::from)
        .to_vec()
    };
    let mut cases = Vec::new();
    // Refused by every app that reads images, each message naming the file.
    let bad: [(&str, Vec<u8>, &[&str]); 10] = [
        ("empty.png", Vec::new(), &["empty"]),
        (
            "text.png",
            b"a text file, not a picture\n".to_vec(),
            &["not an image"],
        ),
        (
            "truncated.png",
            png[..png.len() / 3].to_vec(),
            &["truncated"],
        ),
        (
            "truncated.jpg",
            jpg[..jpg.len() / 3].to_vec(),
            &["truncated"],
        ),
        (
            "bomb.png",
            png_claiming(100_000, 100_000),
            &["100000x100000"],
        ),
        ("bomb.jpg", flat_jpeg(65_000, 65_000, 1), &["65000x65000"]),
        (
            "bomb-cmyk.jpg",
            flat_jpeg(60_000, 60_000, 4),
            &["60000x60000"],
        ),
        (
            "bomb.pgm",
            b"P5\n100000 100000\n255\n\0\0\0\0".to_vec(),
            &["100000x100000"],
        ),
        ("wide.png", png_claiming(2_000_000, 1), &["2000000x1"]),
        ("zero.png", png_claiming(0, 0), &[]),
    ];
    for (name, bytes, needles) in &bad {
        let path = put(f, "images", name, bytes);
        let mut n = vec![*name];
        n.extend_from_slice(needles);
        cases.push(Case::refused(
            &format!("images/detect/{name}"),
            &detect(&path),
            &n,
        ));
        if matches!(*name, "bomb.png" | "truncated.jpg" | "text.png") {
            cases.push(Case::refused(
                &format!("images/identify/{name}"),
                &identify(&path),
                &n,
            ));
        }
        cases.push(Case::refused(
            &format!("images/signs/{name}"),
            &classify(&path),
            &n,
        ));
    }

    // Unusual but valid: these must work.
    let tiny = put(
        f,
        "images",
        "1x1.png",
        &encoded(&RgbImage::new(1, 1).into(), image::ImageFormat::Png),
    );
    cases.push(Case::works(
        "images/detect/1x1.png",
        &detect(&tiny),
        &["1x1.png", "no face found"],
    ));
    cases.push(Case::refused(
        "images/signs/1x1.png",
        &classify(&tiny),
        &["1x1.png", "at least"],
    ));
    let deep = image::DynamicImage::ImageRgb16(photo.to_rgb16());
    let deep = put(
        f,
        "images",
        "16bit.png",
        &encoded(&deep, image::ImageFormat::Png),
    );
    cases.push(Case::works(
        "images/detect/16bit.png",
        &detect(&deep),
        &["16bit.png", "1 face(s)"],
    ));
    cases.push(Case::works(
        "images/signs/16bit.png",
        &classify(&deep),
        &["16bit.png"],
    ));
    let cmyk = put(f, "images", "cmyk.jpg", &flat_jpeg(32, 32, 4));
    cases.push(Case::works(
        "images/detect/cmyk.jpg",
        &detect(&cmyk),
        &["cmyk.jpg", "no face found"],
    ));
    cases.push(Case::works(
        "images/signs/cmyk.jpg",
        &classify(&cmyk),
        &["cmyk.jpg"],
    ));
    let gif = put(f, "images", "animated.gif", &animated_gif());
    cases.push(Case::works(
        "images/signs/animated.gif",
        &classify(&gif),
        &["animated.gif"],
    ));
    // Stored on its side with EXIF orientation 6: the apps must turn it upright first.
    let sideways = image::imageops::rotate270(&photo.to_rgb8());
    let exif = put(
        f,
        "images",
        "exif-rotated.jpg",
        &jpeg_with_orientation(&sideways, 6),
    );
    cases.push(Case::works(
        "images/detect/exif-rotated.jpg",
        &detect(&exif),
        &["exif-rotated.jpg", "1 face(s)"],
    ));
    let wide = RgbImage::from_pixel(60, 30, image::Rgb([200, 30, 30]));
    let wide = put(
        f,
        "images",
        "exif-wide.jpg",
        &jpeg_with_orientation(&wide, 6),
    );
    cases.push(Case::works(
        "images/signs/exif-wide.jpg",
        &classify(&wide),
        &["a 30x60 image"],
    ));
    cases
}
