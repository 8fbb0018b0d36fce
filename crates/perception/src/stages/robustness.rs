//! `perception.corruptions`: accuracy of the trained sign models on their test images
//! under every corruption of the suite ([`crate::corrupt`]) at every severity, the
//! ImageNet-C way: a table per corruption and severity, the mean corruption accuracy, and
//! a PNG grid of a few test images, clean and corrupted, each with the prediction it got.
//!
//! The corrupted images are drawn from a fixed seed per image, corruption and severity
//! (the `seed` parameter, not the pipeline's), so every model meets the same test set.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use burn::tensor::Device;
use profundo_core::backend;
use profundo_core::metrics::mean_std;
use profundo_core::plots::{GridCell, image_grid};
use profundo_core::train::{Examples, predict_proba};
use profundo_pipeline::artifacts::{FeatureSet, MetricsArtifact, TrainedClassifier};
use profundo_pipeline::registry::{Artifact, Slot, StageContext, TypedStage, input};
use profundo_pipeline::stages::argmax;
use profundo_pipeline::{ParamError, StageError};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::classes::display_name;
use crate::corrupt::Corruption;
use crate::model::SignNet;
use crate::picture::to_image;
use crate::train::load_model;

/// Parameters of `perception.corruptions`.
#[derive(Debug, Clone, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct CorruptionsParams {
    /// The corruptions to measure (default: all).
    pub corruptions: Vec<Corruption>,
    /// Severities, each 1 (mild) to 3 (strong).
    pub severities: Vec<usize>,
    /// Seeds the corrupted test images (the same for every model and pipeline seed).
    pub seed: u64,
    /// Test images shown in the PNG grid.
    pub examples: usize,
}

impl Default for CorruptionsParams {
    fn default() -> Self {
        Self {
            corruptions: Corruption::ALL.to_vec(),
            severities: vec![1, 2, 3],
            seed: 2012,
            examples: 6,
        }
    }
}

/// Accuracy under one corruption at one severity.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CorruptedScore {
    /// The corruption.
    pub corruption: Corruption,
    /// Its severity.
    pub severity: usize,
    /// Accuracy on the corrupted test images.
    pub accuracy: f64,
}

/// What `perception.corruptions` measured (its `metrics.json` section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RobustnessReport {
    /// Test images (per corruption and severity).
    pub items: usize,
    /// Accuracy on the clean test images.
    pub clean_accuracy: f64,
    /// Mean accuracy over every corruption and severity.
    pub mean_corruption_accuracy: f64,
    /// Mean accuracy over the corruptions, per severity.
    pub by_severity: BTreeMap<usize, f64>,
    /// Accuracy per corruption and severity.
    pub scores: Vec<CorruptedScore>,
    /// The seed of the corrupted images.
    pub seed: u64,
}

/// Measures accuracy under corruption.
pub struct Corruptions;

/// The seed of one image's corruption: every (image, corruption, severity) its own.
fn image_seed(seed: u64, item: usize, c: Corruption, severity: usize) -> u64 {
    let mut h = blake3::Hasher::new();
    h.update(&seed.to_le_bytes());
    h.update(&(item as u64).to_le_bytes());
    h.update(c.name().as_bytes());
    h.update(&(severity as u64).to_le_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.finalize().as_bytes()[..8]);
    u64::from_le_bytes(b)
}

/// `items` corrupted by `c` at `severity`, concatenated.
fn corrupted(
    fs: &FeatureSet,
    items: &[usize],
    (c, severity): (Corruption, usize),
    seed: u64,
) -> Vec<f32> {
    let n: usize = fs.shape.iter().product();
    let mut out = vec![0f32; items.len() * n];
    out.par_chunks_mut(n).zip(items).for_each(|(x, &i)| {
        x.copy_from_slice(fs.item(i));
        let mut rng = StdRng::seed_from_u64(image_seed(seed, i, c, severity));
        c.apply(x, fs.shape, severity, &mut rng);
    });
    out
}

/// The predicted class of each image in `x` (`[3, h, w]` after one another; `truth` holds
/// their classes, one each), through the shared loop's batched inference.
fn predict(
    model: &SignNet,
    x: &[f32],
    shape: [usize; 3],
    truth: &[usize],
    device: &Device,
) -> Vec<usize> {
    let data = Examples {
        x,
        shape,
        labels: truth,
        groups: None,
    };
    let idx: Vec<usize> = (0..truth.len()).collect();
    predict_proba(model, data, &idx, 256, device)
        .iter()
        .map(|p| argmax(p))
        .collect()
}

impl TypedStage for Corruptions {
    type Params = CorruptionsParams;
    const KIND: &'static str = "perception.corruptions";
    const DOC: &'static str = "Accuracy of the sign models on their test images under snow, fog, smudges, occlusion, motion blur, noise and low light, at 3 severities";
    const INPUTS: &'static [Slot] = &[
        Slot {
            name: "trained",
            accepts: &[TrainedClassifier::TYPE],
            optional: false,
        },
        Slot {
            name: "features",
            accepts: &[FeatureSet::TYPE],
            optional: false,
        },
    ];
    const OUTPUT: &'static str = MetricsArtifact::TYPE;

    fn check(p: &Self::Params) -> Result<(), ParamError> {
        if p.corruptions.is_empty() {
            return Err(ParamError::rule("corruptions", "names no corruption"));
        }
        if p.severities.is_empty() || p.severities.iter().any(|s| !(1..=3).contains(s)) {
            return Err(ParamError::new(
                "severities",
                format!("{:?}", p.severities),
                "must list severities from 1 to 3",
            ));
        }
        Ok(())
    }

    fn run(
        p: &Self::Params,
        ctx: &mut StageContext,
        inputs: &[Option<Arc<dyn Artifact>>],
    ) -> Result<Arc<dyn Artifact>, StageError> {
        let trained: &TrainedClassifier = input(inputs, 0)?;
        let fs: &FeatureSet = input(inputs, 1)?;
        let device = backend::device(ctx.backend, &ctx.device)?;
        let index: HashMap<&str, usize> = fs
            .items
            .items
            .iter()
            .enumerate()
            .map(|(i, it)| (it.name.as_str(), i))
            .collect();
        let mut severities = p.severities.clone();
        severities.sort();
        severities.dedup();
        // The severity the example grid shows.
        let mid = severities[severities.len() / 2];
        // Hits per (corruption, severity), pooled over the folds; clean hits.
        let mut hits: BTreeMap<(Corruption, usize), usize> = BTreeMap::new();
        let (mut clean_hits, mut total) = (0usize, 0usize);
        let mut grid: Vec<Vec<GridCell>> = Vec::new();
        for fold in trained.fold_models() {
            let items: Vec<usize> = fold
                .predictions
                .iter()
                .map(|pr| {
                    index.get(pr.name.as_str()).copied().ok_or_else(|| {
                        StageError::Other(format!(
                            "test image `{}` of fold {} is not in the `features` input: \
                             train and features must come from the same dataset",
                            pr.name, fold.fold
                        ))
                    })
                })
                .collect::<Result<_, _>>()?;
            if items.is_empty() {
                continue;
            }
            let (model, _) = load_model(&trained.model_path(fold), &device)?;
            let truth: Vec<usize> = fold.predictions.iter().map(|pr| pr.truth).collect();
            let score = |pred: &[usize]| pred.iter().zip(&truth).filter(|(a, b)| a == b).count();
            // The clean images' answers are the training stage's held-out predictions.
            let clean: Vec<usize> = fold
                .predictions
                .iter()
                .map(|pr| argmax(&pr.probs))
                .collect();
            clean_hits += score(&clean);
            total += items.len();
            let mut shown: Vec<(Corruption, Vec<usize>)> = Vec::new();
            for &c in &p.corruptions {
                for &s in &severities {
                    let x = corrupted(fs, &items, (c, s), p.seed);
                    let pred = predict(&model, &x, fs.shape, &truth, &device);
                    let h = score(&pred);
                    ctx.log(&format!(
                        "fold {}: {c} severity {s}: accuracy {:.4} ({h}/{})",
                        fold.fold,
                        h as f64 / items.len() as f64,
                        items.len()
                    ));
                    *hits.entry((c, s)).or_default() += h;
                    if s == mid {
                        shown.push((c, pred));
                    }
                }
            }
            if grid.is_empty() {
                let shown = Shown {
                    truth: &truth,
                    clean: &clean,
                    corrupted: &shown,
                    severity: mid,
                };
                grid = example_grid(fs, &items, &shown, p, &trained.labels);
            }
        }
        if total == 0 {
            return Err(StageError::Other(
                "the trained models have no test images to corrupt".into(),
            ));
        }
        let scores: Vec<CorruptedScore> = hits
            .iter()
            .map(|(&(corruption, severity), &h)| CorruptedScore {
                corruption,
                severity,
                accuracy: h as f64 / total as f64,
            })
            .collect();
        let mean = |it: &mut dyn Iterator<Item = f64>| mean_std(&it.collect::<Vec<_>>()).0;
        let by_severity: BTreeMap<usize, f64> = severities
            .iter()
            .map(|&s| {
                (
                    s,
                    mean(
                        &mut scores
                            .iter()
                            .filter(|x| x.severity == s)
                            .map(|x| x.accuracy),
                    ),
                )
            })
            .collect();
        let report = RobustnessReport {
            items: total,
            clean_accuracy: clean_hits as f64 / total as f64,
            mean_corruption_accuracy: mean(&mut scores.iter().map(|x| x.accuracy)),
            by_severity,
            scores,
            seed: p.seed,
        };
        let plot_dir = ctx.work_dir.join("plots");
        std::fs::create_dir_all(&plot_dir)
            .map_err(|e| StageError::data(&plot_dir, e.to_string()))?;
        let mut headers = vec!["clean".to_string()];
        headers.extend(p.corruptions.iter().map(|c| c.name().replace('_', " ")));
        image_grid(
            &plot_dir.join("corruptions.png"),
            &format!(
                "{}: test signs, clean and corrupted (severity {mid}); captions: prediction",
                ctx.stage
            ),
            &headers,
            &grid,
            3,
        )?;
        let markdown = markdown(&report, &p.corruptions, &severities, &ctx.stage);
        Ok(Arc::new(MetricsArtifact {
            metrics: serde_json::to_value(&report).map_err(|e| StageError::Other(e.to_string()))?,
            summary: None,
            domain: None,
            thresholds: BTreeMap::new(),
            report: markdown,
            plots: vec!["corruptions.png".into()],
            root: plot_dir,
        }))
    }
}

/// The first `examples` test images, evenly spread over the test set: clean and under
/// each corruption, captioned with the predicted sign.
/// What the example grid shows of one fold's test images (in its `items` order).
struct Shown<'a> {
    truth: &'a [usize],
    clean: &'a [usize],
    /// Predictions under each corruption at `severity`.
    corrupted: &'a [(Corruption, Vec<usize>)],
    severity: usize,
}

fn example_grid(
    fs: &FeatureSet,
    items: &[usize],
    shown: &Shown,
    p: &CorruptionsParams,
    labels: &[String],
) -> Vec<Vec<GridCell>> {
    let truth = shown.truth;
    let [_, h, w] = fs.shape;
    let k = p.examples.min(items.len());
    let name = |class: usize| {
        let n = labels
            .get(class)
            .map(|l| display_name(l))
            .unwrap_or_default();
        n.chars().take(18).collect::<String>()
    };
    let cell = |x: &[f32], pred: usize, t: usize| {
        let img = to_image(x, h as u32, w as u32);
        GridCell {
            rgb: img.into_raw(),
            width: w as u32,
            height: h as u32,
            caption: name(pred),
            good: pred == t,
        }
    };
    (0..k)
        .map(|r| {
            let pos = r * items.len() / k.max(1);
            let i = items[pos];
            let mut row = vec![cell(fs.item(i), shown.clean[pos], truth[pos])];
            for (c, pred) in shown.corrupted {
                let x = corrupted(fs, &[i], (*c, shown.severity), p.seed);
                row.push(cell(&x, pred[pos], truth[pos]));
            }
            row
        })
        .collect()
}

fn markdown(
    r: &RobustnessReport,
    corruptions: &[Corruption],
    severities: &[usize],
    stage: &str,
) -> String {
    let pct = |v: f64| format!("{:.2}", 100.0 * v);
    let mut md = format!(
        "Accuracy (%) on {} test images, clean {}; mean over every corruption and severity \
         (mCA) {}.\n\n| corruption |",
        r.items,
        pct(r.clean_accuracy),
        pct(r.mean_corruption_accuracy)
    );
    for s in severities {
        md.push_str(&format!(" severity {s} |"));
    }
    md.push_str(" mean |\n|---|");
    md.push_str(&"---|".repeat(severities.len() + 1));
    md.push('\n');
    for &c in corruptions {
        let row: Vec<f64> = severities
            .iter()
            .filter_map(|&s| {
                r.scores
                    .iter()
                    .find(|x| x.corruption == c && x.severity == s)
                    .map(|x| x.accuracy)
            })
            .collect();
        md.push_str(&format!("| {c} |"));
        for v in &row {
            md.push_str(&format!(" {} |", pct(*v)));
        }
        md.push_str(&format!(
            " {} |\n",
            pct(row.iter().sum::<f64>() / row.len().max(1) as f64)
        ));
    }
    md.push_str("| **mean** |");
    for s in severities {
        md.push_str(&format!(
            " **{}** |",
            pct(r.by_severity.get(s).copied().unwrap_or(0.0))
        ));
    }
    md.push_str(&format!(" **{}** |\n", pct(r.mean_corruption_accuracy)));
    md.push_str(&format!(
        "\n![corrupted examples](plots/{stage}-corruptions.png)\n"
    ));
    md
}
