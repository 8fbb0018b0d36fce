//! How detections are scored against annotated boxes, as PASCAL VOC does: a detection is a
//! true positive when its IoU with a not-yet-matched ground-truth box of the same photo is at
//! least the threshold (0.5), best-scored detections matched first; precision, recall and
//! average precision (area under the interpolated precision-recall curve) follow.

use serde::Serialize;

/// Intersection over union of two boxes `[x1, y1, x2, y2]` (continuous coordinates).
pub fn iou(a: &[f32; 4], b: &[f32; 4]) -> f32 {
    let w = (a[2].min(b[2]) - a[0].max(b[0])).max(0.0);
    let h = (a[3].min(b[3]) - a[1].max(b[1])).max(0.0);
    let inter = w * h;
    let area = |r: &[f32; 4]| (r[2] - r[0]).max(0.0) * (r[3] - r[1]).max(0.0);
    let union = area(a) + area(b) - inter;
    if union > 0.0 { inter / union } else { 0.0 }
}

/// One photo's detections (box and score) and its annotated boxes.
#[derive(Debug, Clone, Default)]
pub struct Annotated {
    /// Detected boxes with their scores.
    pub detections: Vec<([f32; 4], f32)>,
    /// Ground-truth boxes.
    pub truth: Vec<[f32; 4]>,
}

/// Detection quality over a set of photos.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectionScores {
    /// IoU a detection needs to count.
    pub iou_threshold: f32,
    /// Annotated faces.
    pub faces: usize,
    /// Detections.
    pub detections: usize,
    /// Detections matched to a face.
    pub true_positives: usize,
    /// `true_positives / detections` (1 when nothing was detected).
    pub precision: f64,
    /// `true_positives / faces`.
    pub recall: f64,
    /// Area under the precision-recall curve over the detection scores, precision made
    /// monotone (VOC 2010+ "all points" average precision).
    pub average_precision: f64,
}

/// Scores `photos` at `iou_threshold`.
pub fn score_detections(photos: &[Annotated], iou_threshold: f32) -> DetectionScores {
    // (score, is true positive) for every detection of every photo.
    let mut ranked: Vec<(f32, bool)> = Vec::new();
    for photo in photos {
        let mut order: Vec<usize> = (0..photo.detections.len()).collect();
        order.sort_by(|&a, &b| photo.detections[b].1.total_cmp(&photo.detections[a].1));
        let mut taken = vec![false; photo.truth.len()];
        for i in order {
            let (b, score) = &photo.detections[i];
            let best = photo
                .truth
                .iter()
                .enumerate()
                .filter(|(j, _)| !taken[*j])
                .map(|(j, t)| (j, iou(b, t)))
                .max_by(|x, y| x.1.total_cmp(&y.1));
            let hit = match best {
                Some((j, o)) if o >= iou_threshold => {
                    taken[j] = true;
                    true
                }
                _ => false,
            };
            ranked.push((*score, hit));
        }
    }
    let faces: usize = photos.iter().map(|p| p.truth.len()).sum();
    ranked.sort_by(|a, b| b.0.total_cmp(&a.0));
    let tp = ranked.iter().filter(|r| r.1).count();
    // Precision and recall after each detection, best score first.
    let mut curve = Vec::with_capacity(ranked.len());
    let mut hits = 0usize;
    for (k, (_, hit)) in ranked.iter().enumerate() {
        hits += usize::from(*hit);
        curve.push((
            hits as f64 / faces.max(1) as f64,
            hits as f64 / (k + 1) as f64,
        ));
    }
    // Monotone precision envelope, then the area under it.
    let mut ap = 0.0;
    let mut best_precision = 0.0f64;
    let mut envelope = vec![0.0; curve.len()];
    for k in (0..curve.len()).rev() {
        best_precision = best_precision.max(curve[k].1);
        envelope[k] = best_precision;
    }
    let mut last_recall = 0.0;
    for (k, (recall, _)) in curve.iter().enumerate() {
        ap += (recall - last_recall) * envelope[k];
        last_recall = *recall;
    }
    DetectionScores {
        iou_threshold,
        faces,
        detections: ranked.len(),
        true_positives: tp,
        precision: if ranked.is_empty() {
            1.0
        } else {
            tp as f64 / ranked.len() as f64
        },
        recall: tp as f64 / faces.max(1) as f64,
        average_precision: ap,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = [0.0, 0.0, 10.0, 10.0];
        assert_eq!(iou(&a, &a), 1.0);
        assert_eq!(iou(&a, &[20.0, 20.0, 30.0, 30.0]), 0.0);
        // Overlap 5x10 = 50, union 150.
        assert!((iou(&a, &[5.0, 0.0, 15.0, 10.0]) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn each_face_matches_one_detection_and_ap_follows_the_ranking() {
        let face = [0.0, 0.0, 10.0, 10.0];
        let photo = Annotated {
            // A duplicate of the face (false positive), the face, a miss elsewhere.
            detections: vec![
                ([0.5, 0.0, 10.5, 10.0], 0.7),
                (face, 0.9),
                ([50.0, 50.0, 60.0, 60.0], 0.8),
            ],
            truth: vec![face, [100.0, 100.0, 110.0, 110.0]],
        };
        let s = score_detections(&[photo], 0.5);
        assert_eq!((s.faces, s.detections, s.true_positives), (2, 3, 1));
        assert!((s.precision - 1.0 / 3.0).abs() < 1e-9);
        assert!((s.recall - 0.5).abs() < 1e-9);
        // Best detection is a hit: recall 0.5 at precision 1, nothing more found.
        assert!((s.average_precision - 0.5).abs() < 1e-9);
    }
}
