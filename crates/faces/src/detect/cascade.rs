//! The MTCNN cascade, step for step as facenet-pytorch 2.6.0's `detect_face` (the parity
//! fixture holds it to that): an image pyramid through P-Net, non-maximum suppression per
//! level then across levels, box regression and squaring; R-Net on 24x24 crops of the
//! candidates; O-Net on 48x48 crops, with the five landmarks; a last suppression by the
//! overlap over the smaller box.

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use super::Face;
use super::nets::{ONet, PNet, RNet};
use super::planes::{Planes, Region};

/// A candidate box `[x1, y1, x2, y2]` with its face probability and box regression.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    b: [f32; 4],
    score: f32,
    reg: [f32; 4],
}

/// How two boxes' overlap is measured in suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Overlap {
    /// Intersection over union of the continuous boxes (torchvision's `nms`).
    Union,
    /// Intersection over the smaller box, counting pixels inclusively (`+1`; the reference's
    /// last step).
    Min,
}

/// Greedy non-maximum suppression: the indices kept, best score first. A box is dropped
/// when its overlap with a kept, better box exceeds `threshold`.
pub(crate) fn nms(boxes: &[[f32; 4]], scores: &[f32], threshold: f32, how: Overlap) -> Vec<usize> {
    let mut order: Vec<usize> = (0..boxes.len()).collect();
    order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let one = if how == Overlap::Min { 1.0 } else { 0.0 };
    let area = |b: &[f32; 4]| (b[2] - b[0] + one) * (b[3] - b[1] + one);
    let mut keep = Vec::new();
    let mut dropped = vec![false; boxes.len()];
    for (k, &i) in order.iter().enumerate() {
        if dropped[i] {
            continue;
        }
        keep.push(i);
        let a = &boxes[i];
        for &j in &order[k + 1..] {
            if dropped[j] {
                continue;
            }
            let b = &boxes[j];
            let w = (a[2].min(b[2]) - a[0].max(b[0]) + one).max(0.0);
            let h = (a[3].min(b[3]) - a[1].max(b[1]) + one).max(0.0);
            let inter = w * h;
            let overlap = match how {
                Overlap::Union => inter / (area(a) + area(b) - inter),
                Overlap::Min => inter / area(a).min(area(b)),
            };
            if overlap > threshold {
                dropped[j] = true;
            }
        }
    }
    keep
}

/// The items [`nms`] keeps, best first, given each one's box and score.
fn keep<T: Clone>(
    items: &[T],
    box_score: impl Fn(&T) -> ([f32; 4], f32),
    threshold: f32,
    how: Overlap,
) -> Vec<T> {
    let (boxes, scores): (Vec<[f32; 4]>, Vec<f32>) = items.iter().map(box_score).unzip();
    nms(&boxes, &scores, threshold, how)
        .into_iter()
        .map(|i| items[i].clone())
        .collect()
}

/// The candidates [`nms`] keeps at `threshold`.
fn select(cands: &[Candidate], threshold: f32, how: Overlap) -> Vec<Candidate> {
    keep(cands, |c| (c.b, c.score), threshold, how)
}

/// The pyramid's scales: the first maps `min_face` pixels to P-Net's 12, each next one is
/// `factor` smaller, down to where the image's short side would fall under 12 pixels.
pub(crate) fn pyramid(height: usize, width: usize, min_face: f64, factor: f64) -> Vec<f64> {
    let m = 12.0 / min_face;
    let mut short = height.min(width) as f64 * m;
    let mut scale = m;
    let mut scales = Vec::new();
    while short >= 12.0 {
        scales.push(scale);
        scale *= factor;
        short *= factor;
    }
    scales
}

/// Box regression: `reg` moves each edge by a fraction of the box's size.
fn regress(b: [f32; 4], reg: [f32; 4], plus_one: bool) -> [f32; 4] {
    let one = if plus_one { 1.0 } else { 0.0 };
    let w = b[2] - b[0] + one;
    let h = b[3] - b[1] + one;
    [
        b[0] + reg[0] * w,
        b[1] + reg[1] * h,
        b[2] + reg[2] * w,
        b[3] + reg[3] * h,
    ]
}

/// The square of side `max(w, h)` with the box's centre (`rerec`).
fn square(b: [f32; 4]) -> [f32; 4] {
    let (w, h) = (b[2] - b[0], b[3] - b[1]);
    let l = w.max(h);
    let x0 = b[0] + w * 0.5 - l * 0.5;
    let y0 = b[1] + h * 0.5 - l * 0.5;
    [x0, y0, x0 + l, y0 + l]
}

/// The pixels a box crops, as the reference takes them: coordinates truncated to integers,
/// clipped to the image with the reference's one-based convention; none when empty.
fn crop_region(b: [f32; 4], width: usize, height: usize) -> Option<Region> {
    let x = (b[0].trunc() as i64).max(1);
    let y = (b[1].trunc() as i64).max(1);
    let ex = (b[2].trunc() as i64).min(width as i64);
    let ey = (b[3].trunc() as i64).min(height as i64);
    (ey > y - 1 && ex > x - 1).then(|| Region {
        x0: (x - 1) as usize,
        x1: ex as usize,
        y0: (y - 1) as usize,
        y1: ey as usize,
    })
}

/// `(x - 127.5) / 128`, the networks' input scaling.
fn normalise(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = (*x - 127.5) * 0.0078125);
}

fn tensor_values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_to_vec::<f32>()
        .unwrap_or_default()
}

/// Row `i` of a `[n, 4]` output read as a flat list.
fn four(values: &[f32], i: usize) -> [f32; 4] {
    [
        values[4 * i],
        values[4 * i + 1],
        values[4 * i + 2],
        values[4 * i + 3],
    ]
}

/// `net` on each batch, the batches side by side; each of its `K` outputs comes back as
/// one flat list over all batches, in batch order.
fn side_by_side<const K: usize>(
    batches: Vec<Tensor<4>>,
    net: impl Fn(Tensor<4>) -> [Vec<f32>; K] + Sync + Send,
) -> [Vec<f32>; K] {
    let outputs: Vec<[Vec<f32>; K]> = batches.into_par_iter().map(net).collect();
    std::array::from_fn(|k| outputs.iter().flat_map(|o| o[k].iter().copied()).collect())
}

/// The three networks and the cascade's settings.
pub(crate) struct Cascade<'a> {
    pub pnet: &'a PNet,
    pub rnet: &'a RNet,
    pub onet: &'a ONet,
    pub min_face: f64,
    pub factor: f64,
    pub thresholds: [f32; 3],
    pub device: &'a Device,
}

impl Cascade<'_> {
    /// Every face in `img`, largest box first.
    pub fn run(&self, img: &Planes) -> Vec<Face> {
        let proposals = self.propose(img);
        let refined = self.refine(img, proposals);
        let mut faces = self.output(img, refined);
        faces.sort_by(|a, b| b.area().total_cmp(&a.area()));
        faces
    }

    /// Stage 1: P-Net over the pyramid, the levels side by side (the small ones leave a
    /// core idle otherwise), each suppressed on its own, then together.
    fn propose(&self, img: &Planes) -> Vec<Candidate> {
        let (h, w) = (img.height, img.width);
        let levels: Vec<Vec<Candidate>> = pyramid(h, w, self.min_face, self.factor)
            .into_par_iter()
            .map(|scale| select(&self.level(img, scale), 0.5, Overlap::Union))
            .collect();
        select(&levels.concat(), 0.7, Overlap::Union)
            .into_iter()
            .map(|c| Candidate {
                b: square(regress(c.b, c.reg, false)),
                ..c
            })
            .collect()
    }

    /// P-Net's candidates at one pyramid scale, in pixels of the image.
    fn level(&self, img: &Planes, scale: f64) -> Vec<Candidate> {
        let (h, w) = (img.height, img.width);
        let hs = (h as f64 * scale + 1.0) as usize;
        let ws = (w as f64 * scale + 1.0) as usize;
        let mut level = img.area_resize(img.full(), hs, ws);
        normalise(&mut level);
        let x = Tensor::<4>::from_data(TensorData::new(level, [1, 3, hs, ws]), self.device);
        let (reg, prob) = self.pnet.forward(x);
        let [_, _, gh, gw] = reg.dims();
        let (reg, prob) = (tensor_values(reg), tensor_values(prob));
        let scale = scale as f32;
        let mut found = Vec::new();
        for gy in 0..gh {
            for gx in 0..gw {
                let score = prob[gy * gw + gx];
                if score < self.thresholds[0] {
                    continue;
                }
                let (x, y) = (gx as f32, gy as f32);
                let at = |k: usize| reg[k * gh * gw + gy * gw + gx];
                found.push(Candidate {
                    b: [
                        ((2.0 * x + 1.0) / scale).floor(),
                        ((2.0 * y + 1.0) / scale).floor(),
                        ((2.0 * x + 12.0) / scale).floor(),
                        ((2.0 * y + 12.0) / scale).floor(),
                    ],
                    score,
                    reg: [at(0), at(1), at(2), at(3)],
                });
            }
        }
        found
    }

    /// Crops of the candidates resized to `size`, normalised, in as many batches as there
    /// are threads (run side by side: one batch leaves a core idle in the small layers);
    /// candidates whose crop would be empty are dropped.
    fn crops(
        &self,
        img: &Planes,
        cands: Vec<Candidate>,
        size: usize,
    ) -> (Vec<Candidate>, Vec<Tensor<4>>) {
        let mut kept = Vec::with_capacity(cands.len());
        let mut data = Vec::with_capacity(cands.len() * 3 * size * size);
        for c in cands {
            if let Some(region) = crop_region(c.b, img.width, img.height) {
                data.extend(img.area_resize(region, size, size));
                kept.push(c);
            }
        }
        normalise(&mut data);
        let per_batch = kept.len().div_ceil(rayon::current_num_threads()).max(1);
        let batches = data
            .chunks(per_batch * 3 * size * size)
            .map(|chunk| {
                let n = chunk.len() / (3 * size * size);
                Tensor::<4>::from_data(
                    TensorData::new(chunk.to_vec(), [n, 3, size, size]),
                    self.device,
                )
            })
            .collect();
        (kept, batches)
    }

    /// Stage 2: R-Net on 24x24 crops.
    fn refine(&self, img: &Planes, cands: Vec<Candidate>) -> Vec<Candidate> {
        let (cands, batches) = self.crops(img, cands, 24);
        if cands.is_empty() {
            return cands;
        }
        let [reg, prob] = side_by_side(batches, |x| {
            let (reg, prob) = self.rnet.forward(x);
            [tensor_values(reg), tensor_values(prob)]
        });
        let passed: Vec<Candidate> = cands
            .iter()
            .enumerate()
            .filter(|&(i, _)| prob[i] > self.thresholds[1])
            .map(|(i, c)| Candidate {
                b: c.b,
                score: prob[i],
                reg: four(&reg, i),
            })
            .collect();
        select(&passed, 0.7, Overlap::Union)
            .into_iter()
            .map(|c| Candidate {
                b: square(regress(c.b, c.reg, true)),
                ..c
            })
            .collect()
    }

    /// Stage 3: O-Net on 48x48 crops, landmarks, and the last suppression.
    fn output(&self, img: &Planes, cands: Vec<Candidate>) -> Vec<Face> {
        let (cands, batches) = self.crops(img, cands, 48);
        if cands.is_empty() {
            return Vec::new();
        }
        let [reg, marks, prob] = side_by_side(batches, |x| {
            let (reg, marks, prob) = self.onet.forward(x);
            [
                tensor_values(reg),
                tensor_values(marks),
                tensor_values(prob),
            ]
        });
        let mut faces = Vec::new();
        for (i, c) in cands.iter().enumerate() {
            if prob[i] <= self.thresholds[2] {
                continue;
            }
            let b = c.b;
            let (w, h) = (b[2] - b[0] + 1.0, b[3] - b[1] + 1.0);
            let p = &marks[10 * i..10 * i + 10];
            let landmarks =
                std::array::from_fn(|k| [w * p[k] + b[0] - 1.0, h * p[5 + k] + b[1] - 1.0]);
            faces.push(Face {
                bbox: regress(b, four(&reg, i), true),
                score: prob[i],
                landmarks,
            });
        }
        keep(&faces, |f| (f.bbox, f.score), 0.7, Overlap::Min)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suppression_keeps_the_best_of_overlapping_boxes_only() {
        let boxes = [
            [0.0, 0.0, 10.0, 10.0],
            [1.0, 1.0, 11.0, 11.0],
            [20.0, 20.0, 30.0, 30.0],
        ];
        let keep = nms(&boxes, &[0.8, 0.9, 0.7], 0.5, Overlap::Union);
        assert_eq!(keep, vec![1, 2]);
        // A small box inside a large one: IoU is low, overlap over the smaller box is 1.
        let nested = [[0.0, 0.0, 100.0, 100.0], [10.0, 10.0, 30.0, 30.0]];
        assert_eq!(nms(&nested, &[0.9, 0.8], 0.7, Overlap::Union), vec![0, 1]);
        assert_eq!(nms(&nested, &[0.9, 0.8], 0.7, Overlap::Min), vec![0]);
    }

    #[test]
    fn the_pyramid_starts_at_the_minimum_face_and_stops_at_twelve_pixels() {
        let scales = pyramid(100, 200, 20.0, 0.5);
        // 12/20 = 0.6: short side 60, then 30, then 15; 7.5 is too small.
        assert_eq!(scales, vec![0.6, 0.3, 0.15]);
        assert!(pyramid(10, 10, 20.0, 0.7).is_empty());
    }

    #[test]
    fn boxes_are_squared_around_their_centre_and_cropped_inside_the_image() {
        assert_eq!(square([0.0, 0.0, 10.0, 20.0]), [-5.0, 0.0, 15.0, 20.0]);
        let r = crop_region([-5.0, 0.0, 15.0, 20.0], 12, 100).expect("not empty");
        assert_eq!((r.x0, r.x1, r.y0, r.y1), (0, 12, 0, 20));
        assert!(crop_region([50.0, 0.0, 60.0, 10.0], 40, 40).is_none());
    }
}
