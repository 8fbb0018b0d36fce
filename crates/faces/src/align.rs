//! Face alignment: the similarity transform (rotation, uniform scale, translation) that maps
//! a face's five landmarks onto a canonical template in the least-squares sense (Umeyama
//! 1991, without reflection), and the bilinear warp that cuts the aligned face out of the
//! photo at the template's size.

use serde::{Deserialize, Serialize};

use crate::detect::Planes;
use profundo_core::augment::bilinear;

/// `p -> [a -b; b a] p + t`: rotation and uniform scale (`a = s cos r`, `b = s sin r`),
/// then translation.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Similarity {
    /// `scale * cos(rotation)`.
    pub a: f64,
    /// `scale * sin(rotation)`.
    pub b: f64,
    /// Translation along x.
    pub tx: f64,
    /// Translation along y.
    pub ty: f64,
}

impl Similarity {
    /// Where `p` goes.
    pub fn apply(&self, p: [f64; 2]) -> [f64; 2] {
        [
            self.a * p[0] - self.b * p[1] + self.tx,
            self.b * p[0] + self.a * p[1] + self.ty,
        ]
    }

    /// The transform that undoes this one (none when the scale is zero).
    pub fn inverse(&self) -> Option<Self> {
        let d = self.a * self.a + self.b * self.b;
        if d <= f64::EPSILON {
            return None;
        }
        let (a, b) = (self.a / d, -self.b / d);
        Some(Self {
            a,
            b,
            tx: -(a * self.tx - b * self.ty),
            ty: -(b * self.tx + a * self.ty),
        })
    }

    /// The scale factor.
    pub fn scale(&self) -> f64 {
        self.a.hypot(self.b)
    }

    /// The rotation in radians.
    pub fn rotation(&self) -> f64 {
        self.b.atan2(self.a)
    }

    /// The least-squares similarity taking `from[i]` to `to[i]` (Umeyama's solution: the
    /// centroids are matched, rotation and scale come from the centred points). None when
    /// fewer than two points are given or all `from` points coincide.
    pub fn fit(from: &[[f64; 2]], to: &[[f64; 2]]) -> Option<Self> {
        let n = from.len().min(to.len());
        if n < 2 {
            return None;
        }
        let mean = |pts: &[[f64; 2]]| {
            let (sx, sy) = pts[..n]
                .iter()
                .fold((0.0, 0.0), |(x, y), p| (x + p[0], y + p[1]));
            [sx / n as f64, sy / n as f64]
        };
        let (mf, mt) = (mean(from), mean(to));
        let (mut dot, mut cross, mut norm) = (0.0, 0.0, 0.0);
        for (p, q) in from[..n].iter().zip(&to[..n]) {
            let (px, py) = (p[0] - mf[0], p[1] - mf[1]);
            let (qx, qy) = (q[0] - mt[0], q[1] - mt[1]);
            dot += px * qx + py * qy;
            cross += px * qy - py * qx;
            norm += px * px + py * py;
        }
        if norm <= f64::EPSILON {
            return None;
        }
        let (a, b) = (dot / norm, cross / norm);
        Some(Self {
            a,
            b,
            tx: mt[0] - (a * mf[0] - b * mf[1]),
            ty: mt[1] - (b * mf[0] + a * mf[1]),
        })
    }
}

/// A photo's luma, computed once for all the faces cut from it (the embedding networks
/// read grey).
#[derive(Debug, Clone)]
pub struct Grey {
    width: usize,
    height: usize,
    data: Vec<f32>,
}

impl Grey {
    /// Luma of the RGB planes with the weights `image`'s `to_luma8` uses (ITU-R BT.709),
    /// kept as real values until the warp has sampled them.
    pub fn of(img: &Planes) -> Self {
        let n = img.width * img.height;
        let (r, rest) = img.data.split_at(n);
        let (g, b) = rest.split_at(n);
        let data = r
            .iter()
            .zip(g)
            .zip(b)
            .map(|((r, g), b)| 0.2126 * r + 0.7152 * g + 0.0722 * b)
            .collect();
        Self {
            width: img.width,
            height: img.height,
            data,
        }
    }
}

/// The face whose landmarks are `landmarks`, warped so that they land on `template` in an
/// `out_w x out_h` grey image. Bilinear interpolation; pixels from outside the photo
/// repeat its border.
pub fn align_face(
    grey: &Grey,
    landmarks: &[[f32; 2]; 5],
    template: &[[f64; 2]; 5],
    out_w: u32,
    out_h: u32,
) -> Option<image::GrayImage> {
    let from: Vec<[f64; 2]> = landmarks
        .iter()
        .map(|p| [p[0] as f64, p[1] as f64])
        .collect();
    let back = Similarity::fit(template, &from)?;
    Some(image::GrayImage::from_fn(out_w, out_h, |x, y| {
        let [sx, sy] = back.apply([x as f64, y as f64]);
        let v = bilinear(&grey.data, grey.height, grey.width, sx as f32, sy as f32);
        image::Luma([v.round() as u8])
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_recovers_a_known_similarity_and_its_inverse() {
        let truth = Similarity {
            a: 1.5 * 0.3f64.cos(),
            b: 1.5 * 0.3f64.sin(),
            tx: 12.0,
            ty: -4.0,
        };
        let from = [
            [10.0, 20.0],
            [40.0, 22.0],
            [25.0, 35.0],
            [14.0, 50.0],
            [38.0, 51.0],
        ];
        let to: Vec<[f64; 2]> = from.iter().map(|p| truth.apply(*p)).collect();
        let fit = Similarity::fit(&from, &to).unwrap();
        assert!((fit.scale() - 1.5).abs() < 1e-9 && (fit.rotation() - 0.3).abs() < 1e-9);
        assert!((fit.tx - 12.0).abs() < 1e-9 && (fit.ty + 4.0).abs() < 1e-9);
        let back = fit.inverse().unwrap().apply(to[2]);
        assert!((back[0] - 25.0).abs() < 1e-9 && (back[1] - 35.0).abs() < 1e-9);
        assert!(Similarity::fit(&[[1.0, 1.0], [1.0, 1.0]], &to[..2]).is_none());
    }

    /// A synthetic "face" (five bright dots at the template's landmarks) rotated by 25
    /// degrees, scaled and moved in a larger photo comes back upright at the template.
    #[test]
    fn a_rotated_face_is_warped_back_onto_the_template() {
        let template = [
            [30.0, 40.0],
            [62.0, 40.0],
            [46.0, 58.0],
            [34.0, 76.0],
            [58.0, 76.0],
        ];
        let pose = Similarity {
            a: 2.0 * 25f64.to_radians().cos(),
            b: 2.0 * 25f64.to_radians().sin(),
            tx: 120.0,
            ty: 30.0,
        };
        let landmarks: [[f32; 2]; 5] = std::array::from_fn(|k| {
            let p = pose.apply(template[k]);
            [p[0] as f32, p[1] as f32]
        });
        let (w, h) = (320usize, 260usize);
        let mut data = vec![0.0f32; 3 * w * h];
        for p in &landmarks {
            for dy in -3i32..=3 {
                for dx in -3i32..=3 {
                    let (x, y) = (p[0] as i32 + dx, p[1] as i32 + dy);
                    for c in 0..3 {
                        data[c * w * h + y as usize * w + x as usize] = 255.0;
                    }
                }
            }
        }
        let img = Planes {
            width: w,
            height: h,
            data,
        };
        let out = align_face(&Grey::of(&img), &landmarks, &template, 92, 112).unwrap();
        for t in &template {
            let v = out.get_pixel(t[0] as u32, t[1] as u32).0[0];
            assert!(v > 200, "landmark at {t:?} is {v}");
        }
        // Between the eyes, above the nose: dark.
        assert!(out.get_pixel(46, 30).0[0] < 50);
    }
}
