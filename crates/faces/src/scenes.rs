//! Whole-photo test scenes made from face crops: each crop scaled and placed on a larger
//! textured frame, lit from one side or the front. The face datasets here are crops (ORL's
//! 92x112); these scenes are how the apps' detect -> align -> embed path is evaluated on
//! "photos" of people with known identities (`tests/faces.rs`, docs/faces.md):
//! a face somewhere near the centre of a 320x243 frame, at varying size, under lighting the
//! gallery photos did not have.

use image::{GrayImage, Luma};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// Frame width of a one-face scene (the Yale faces' 320x243).
pub const SCENE_WIDTH: u32 = 320;
/// Frame height of a one-face scene.
pub const SCENE_HEIGHT: u32 = 243;

/// Where the light comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lighting {
    /// Even, as in the gallery photos.
    Even,
    /// From the photo's left: the right side of the face falls into shadow.
    Left,
    /// From the photo's right.
    Right,
    /// A strong frontal light: brighter, with clipped highlights.
    Centre,
    /// A hard light from the photo's left casting a shadow: the right half of the face at
    /// 0.3 of its brightness behind a sharp edge down the middle, the left half at 1.1.
    ShadowLeft,
    /// The same from the photo's right.
    ShadowRight,
}

impl Lighting {
    /// The multiplicative gain at horizontal position `t` across the face (0 = left edge,
    /// 1 = right edge), before clipping to 255.
    pub fn gain(self, t: f32) -> f32 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Lighting::Even => 1.0,
            Lighting::Left => 1.15 - 0.8 * t,
            Lighting::Right => 0.35 + 0.8 * t,
            Lighting::Centre => 1.45,
            Lighting::ShadowLeft => shadow(t),
            Lighting::ShadowRight => shadow(1.0 - t),
        }
    }
}

/// A cast shadow's gain at `t` for a light on the left: 1.1 up to 0.45 of the way across,
/// 0.3 from 0.55 on, a linear edge between.
fn shadow(t: f32) -> f32 {
    let edge = ((t - 0.45) / 0.1).clamp(0.0, 1.0);
    1.1 - 0.8 * edge
}

/// One face placed in a scene.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Placement {
    /// Left edge of the scaled crop in the frame.
    pub x: i64,
    /// Top edge.
    pub y: i64,
    /// Height of the scaled crop (its width keeps the crop's aspect ratio).
    pub height: u32,
}

/// A seeded frame of `width x height`: smooth low-frequency texture (a few random
/// gradients and waves) between grey levels 40 and 200, nothing face-like.
pub fn background(width: u32, height: u32, rng: &mut StdRng) -> GrayImage {
    let base: f32 = rng.random_range(70.0..170.0);
    let waves: Vec<(f32, f32, f32, f32)> = (0..3)
        .map(|_| {
            (
                rng.random_range(10.0f32..35.0),
                rng.random_range(0.005f32..0.03),
                rng.random_range(0.005f32..0.03),
                rng.random_range(0.0f32..std::f32::consts::TAU),
            )
        })
        .collect();
    GrayImage::from_fn(width, height, |x, y| {
        let v = waves.iter().fold(base, |v, (amp, fx, fy, phase)| {
            v + amp * (fx * x as f32 + fy * y as f32 + phase).sin()
        });
        Luma([v.clamp(40.0, 200.0) as u8])
    })
}

/// The width of `face` scaled to `height` pixels high, keeping its aspect ratio.
fn scaled_width(face: &GrayImage, height: u32) -> f32 {
    face.width() as f32 * height as f32 / face.height() as f32
}

/// `faces` placed on `frame` at their placements (scaled with a triangle filter), then the
/// whole frame lit by `lighting` across the span of the faces.
pub fn compose(
    mut frame: GrayImage,
    faces: &[(&GrayImage, Placement)],
    lighting: Lighting,
) -> GrayImage {
    for (face, at) in faces {
        let width = scaled_width(face, at.height).round() as u32;
        let scaled = image::imageops::resize(
            *face,
            width.max(1),
            at.height.max(1),
            image::imageops::FilterType::Triangle,
        );
        image::imageops::overlay(&mut frame, &scaled, at.x, at.y);
    }
    let (x0, x1) = faces.iter().fold((f32::MAX, f32::MIN), |(a, b), (f, at)| {
        (
            a.min(at.x as f32),
            b.max(at.x as f32 + scaled_width(f, at.height)),
        )
    });
    let span = (x1 - x0).max(1.0);
    for (x, _, px) in frame.enumerate_pixels_mut() {
        let g = lighting.gain((x as f32 - x0) / span);
        px.0[0] = (px.0[0] as f32 * g).round().clamp(0.0, 255.0) as u8;
    }
    frame
}

/// A one-face scene: `face` at a seeded size (0.9-1.3x its own height) and position (its
/// centre within 40 px horizontally and 20 px vertically of the frame's) on a seeded
/// background, lit by `lighting`.
pub fn single(face: &GrayImage, lighting: Lighting, seed: u64) -> (GrayImage, Placement) {
    let mut rng = StdRng::seed_from_u64(seed);
    let frame = background(SCENE_WIDTH, SCENE_HEIGHT, &mut rng);
    let height = (face.height() as f32 * rng.random_range(0.9f32..1.3)).round() as u32;
    let width = scaled_width(face, height).round() as i64;
    let cx = SCENE_WIDTH as i64 / 2 + rng.random_range(-40i64..=40);
    let cy = SCENE_HEIGHT as i64 / 2 + rng.random_range(-20i64..=20);
    let at = Placement {
        x: cx - width / 2,
        y: cy - height as i64 / 2,
        height,
    };
    (compose(frame, &[(face, at)], lighting), at)
}

/// A group scene: `faces` side by side, left to right, each 0.9-1.1x its own height, in a
/// frame wide enough for all, under even light.
pub fn group(faces: &[&GrayImage], seed: u64) -> (GrayImage, Vec<Placement>) {
    let mut rng = StdRng::seed_from_u64(seed);
    let gap = 24i64;
    let mut x = gap;
    let mut placed = Vec::with_capacity(faces.len());
    let mut tallest = 0;
    for f in faces {
        let height = (f.height() as f32 * rng.random_range(0.9f32..1.1)).round() as u32;
        let width = scaled_width(f, height).round() as i64;
        let y = 40 + rng.random_range(-15i64..=15);
        placed.push(Placement { x, y, height });
        x += width + gap;
        tallest = tallest.max(height as i64 + y);
    }
    let frame = background(x as u32, (tallest + 40) as u32, &mut rng);
    let pairs: Vec<(&GrayImage, Placement)> =
        faces.iter().copied().zip(placed.iter().copied()).collect();
    (compose(frame, &pairs, Lighting::Even), placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crop() -> GrayImage {
        GrayImage::from_fn(92, 112, |x, y| Luma([(100 + (x + y) % 50) as u8]))
    }

    #[test]
    fn a_single_scene_holds_the_face_near_the_centre_and_is_reproducible() {
        let face = crop();
        let (a, at) = single(&face, Lighting::Even, 3);
        let (b, _) = single(&face, Lighting::Even, 3);
        assert_eq!(a, b);
        assert_eq!((a.width(), a.height()), (SCENE_WIDTH, SCENE_HEIGHT));
        assert!((100..=150).contains(&at.height), "{at:?}");
        let cx = at.x + (92 * at.height as i64 / 112) / 2;
        assert!((cx - 160).abs() <= 41, "{at:?}");
    }

    /// The grey levels across the middle row of a flat grey-200 face lit by `lighting`,
    /// as a function of the fraction of the face's width (0 = left edge).
    fn across_the_face(lighting: Lighting) -> impl Fn(f32) -> u8 {
        let face = GrayImage::from_pixel(92, 112, Luma([200]));
        let (lit, at) = single(&face, lighting, 1);
        let w = (92 * at.height as i64 / 112) as f32;
        let y = (at.y + at.height as i64 / 2) as u32;
        move |f| lit.get_pixel((at.x as f32 + f * (w - 1.0)) as u32, y).0[0]
    }

    #[test]
    fn side_light_darkens_the_far_side_of_the_face() {
        let px = across_the_face(Lighting::Left);
        let (left, right) = (px(0.03), px(0.97));
        assert!(left > 200 && right < 90, "{left} {right}");
    }

    #[test]
    fn a_cast_shadow_has_a_sharp_edge_down_the_middle() {
        let px = across_the_face(Lighting::ShadowRight);
        assert_eq!((px(0.1), px(0.4)), (60, 60));
        assert_eq!((px(0.6), px(0.9)), (220, 220));
    }

    #[test]
    fn a_group_scene_places_every_face_apart() {
        let face = crop();
        let (img, at) = group(&[&face, &face, &face], 9);
        assert_eq!(at.len(), 3);
        assert!(at.windows(2).all(|w| w[1].x > w[0].x + 92));
        assert!(img.width() as i64 > at[2].x + 92);
    }
}
