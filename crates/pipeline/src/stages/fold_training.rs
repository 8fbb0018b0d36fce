//! What every stage that trains networks fold by fold shares: validation cuts that keep
//! augmented copies together, test-time views, per-fold seeds, ensemble member tags, and
//! [`FoldTraining`] (one network of one fold through the shared loop, with checkpoints in
//! the stage's work directory).

use std::collections::{BTreeSet, HashMap};

use burn::tensor::Device;
use profundo_core::augment::Augmenter;
use profundo_core::model::Classifier;
use profundo_core::train::{Checkpointer, Examples, TrainConfig, TrainOutcome, TrainRun};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::StageError;
use crate::artifacts::ItemMeta;
use crate::registry::{ParamError, StageContext};

/// The test-time views of the held-out items (`ItemMeta::view`): for each view name,
/// in name order, the index of every test item's view, in `test`'s order. A view that some
/// test item lacks is left out. With no test items, every view name present is kept.
pub fn test_views(items: &[ItemMeta], test: &[usize]) -> Vec<(String, Vec<usize>)> {
    let mut of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut names: BTreeSet<&str> = BTreeSet::new();
    for (i, it) in items.iter().enumerate() {
        if let Some(v) = it.view.as_deref() {
            of.insert((it.origin(), v), i);
            names.insert(v);
        }
    }
    names
        .into_iter()
        .filter_map(|v| {
            let idx: Option<Vec<usize>> = test
                .iter()
                .map(|&t| of.get(&(items[t].name.as_str(), v)).copied())
                .collect();
            idx.map(|idx| (v.to_string(), idx))
        })
        .collect()
}

/// Index of the largest value.
pub fn argmax(v: &[f32]) -> usize {
    profundo_core::metrics::top_k_indices(v, 1)
        .first()
        .copied()
        .unwrap_or(0)
}

/// A fold name made safe for a directory name.
pub fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What every network of one fold trains on: the examples, the fold's training and
/// validation items, the training settings and the augmentation.
pub struct FoldTraining<'a> {
    /// The examples (all items; `train` and `valid` index them).
    pub data: Examples<'a>,
    /// Items fitted on.
    pub train: &'a [usize],
    /// Items that pick the best epoch.
    pub valid: &'a [usize],
    /// Epochs, batch size, optimiser and schedule.
    pub config: &'a TrainConfig,
    /// On-the-fly augmentation of the training batches.
    pub augment: &'a dyn Augmenter,
    /// The training (autodiff) device.
    pub device: &'a Device,
}

impl FoldTraining<'_> {
    /// Trains one network tagged `tag` (see [`member_tag`]): seeds the device with `seed`,
    /// builds the model with `init`, and trains it with checkpoints under the stage's
    /// `checkpoints/<tag>`, so an interrupted run resumes it; a resume is logged.
    pub fn member<M: Classifier>(
        &self,
        ctx: &mut StageContext,
        tag: &str,
        seed: u64,
        init: impl FnOnce(&Device) -> M,
    ) -> Result<TrainOutcome<M>, StageError> {
        self.device.seed(seed);
        let model = init(self.device);
        let ck = Checkpointer::new(&ctx.work_dir.join("checkpoints").join(tag));
        let label = format!("{}:{tag}", ctx.stage);
        let out = TrainRun {
            data: self.data,
            train: self.train,
            valid: self.valid,
            config: self.config,
            augment: self.augment,
            seed,
            device: self.device,
            checkpoints: Some(&ck),
            label: &label,
        }
        .fit(model)?;
        if let Some(e) = out.resumed_from {
            ctx.log(&format!(
                "fold {tag}: resumed from the checkpoint after epoch {e}"
            ));
        }
        Ok(out)
    }
}

/// Logs each epoch of a fold's training history into the stage's log, one line each.
pub fn log_history(
    ctx: &mut StageContext,
    tag: &str,
    history: &[profundo_core::train::EpochRecord],
) {
    for r in history {
        ctx.log(&format!(
            "fold {tag} epoch {}: loss {:.4} acc {:.4} valid_loss {} valid_acc {} lr {:.2e} ({:.1}s)",
            r.epoch,
            r.train_loss,
            r.train_accuracy,
            r.valid_loss.map_or("-".into(), |v| format!("{v:.4}")),
            r.valid_accuracy.map_or("-".into(), |v| format!("{v:.4}")),
            r.lr,
            r.seconds
        ));
    }
}

/// The held-out predictions of the items `test` (indices into `items`, true classes in
/// `labels`) from their probability rows, in `test`'s order; logs the fold's held-out
/// accuracy when there are any.
pub fn held_out_predictions(
    ctx: &mut StageContext,
    fold: &str,
    items: &[ItemMeta],
    labels: &[usize],
    test: &[usize],
    probs: Vec<Vec<f32>>,
) -> Vec<crate::artifacts::Prediction> {
    let predictions: Vec<crate::artifacts::Prediction> = test
        .iter()
        .zip(probs)
        .map(|(&i, probs)| crate::artifacts::Prediction {
            name: items[i].name.clone(),
            group: items[i].group.clone(),
            truth: labels[i],
            probs,
        })
        .collect();
    if !predictions.is_empty() {
        let hits = predictions
            .iter()
            .filter(|pr| argmax(&pr.probs) == pr.truth)
            .count();
        ctx.log(&format!(
            "fold {fold}: held-out accuracy {:.4} ({hits}/{})",
            hits as f64 / predictions.len() as f64,
            predictions.len()
        ));
    }
    predictions
}

/// How one fold's network was trained, as its model manifest records it (`augment`: the
/// domain's augmentation settings).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRecord<A> {
    /// Optimisation settings.
    pub config: TrainConfig,
    /// Augmentation of the inputs.
    pub augment: A,
    /// The fold (`final`: all data).
    pub fold: String,
    /// Items fitted on.
    pub train_items: usize,
    /// Items that picked (or watched) the epochs.
    pub valid_items: usize,
    /// The epoch whose weights were kept (first network of an ensemble).
    pub best_epoch: usize,
    /// Why training ended (first network of an ensemble).
    pub stop: profundo_core::train::StopReason,
    /// The fold's seed.
    pub seed: u64,
    /// Backend it was trained on.
    pub backend: String,
}

/// The tag of ensemble member `k` of fold `fold` (its checkpoint folder and log label):
/// member 0 keeps the fold's own, so a single model resumes exactly as before ensembles.
pub fn member_tag(fold: &str, k: usize) -> String {
    match k {
        0 => fold.to_string(),
        _ => format!("{fold}-m{k}"),
    }
}

/// The seed of one fold: the pipeline seed mixed with the fold name.
pub fn fold_seed(seed: u64, fold: &str) -> u64 {
    let h = blake3::hash(fold.as_bytes());
    let mut b = [0u8; 8];
    b.copy_from_slice(&h.as_bytes()[..8]);
    seed ^ u64::from_le_bytes(b)
}

/// Checks a `valid_fraction` parameter ([`cut_validation`]'s `fraction`).
pub fn check_valid_fraction(f: f64) -> Result<(), ParamError> {
    if (0.0..0.9).contains(&f) {
        Ok(())
    } else {
        Err(ParamError::new("valid_fraction", f, "must be in [0, 0.9)"))
    }
}

/// Splits training indices into (train, valid), holding out `fraction` of the original
/// items together with their augmented copies (so validation never sees a near-duplicate
/// of a training item), and validating on originals only.
pub fn cut_validation(
    items: &[crate::artifacts::ItemMeta],
    train: &[usize],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    cut_by(items, train, fraction, seed, ItemMeta::origin)
}

/// Holds out `fraction` of the distinct `key`s among `train` (seeded) with every item
/// that has one; validation keeps originals only.
fn cut_by(
    items: &[ItemMeta],
    train: &[usize],
    fraction: f64,
    seed: u64,
    key: impl Fn(&ItemMeta) -> &str,
) -> (Vec<usize>, Vec<usize>) {
    if fraction <= 0.0 {
        return (train.to_vec(), Vec::new());
    }
    let mut keys: Vec<&str> = train.iter().map(|&i| key(&items[i])).collect();
    keys.sort();
    keys.dedup();
    keys.shuffle(&mut StdRng::seed_from_u64(seed ^ 0x5EED));
    let n_valid = ((keys.len() as f64) * fraction).round() as usize;
    let held: std::collections::HashSet<&str> =
        keys[..n_valid.min(keys.len())].iter().copied().collect();
    let (mut t, mut v) = (Vec::new(), Vec::new());
    for &i in train {
        if held.contains(key(&items[i])) {
            if !items[i].is_augmented() {
                v.push(i);
            }
        } else {
            t.push(i);
        }
    }
    (t, v)
}

/// Splits training indices into (train, valid) by whole groups: `fraction` of the groups
/// among `train` (seeded) go to validation with all their items. For data whose groups
/// are near-duplicates of one another (GTSRB's tracks: 30 frames of one physical sign),
/// where holding out single items would validate on what training has already seen.
/// Augmented copies and test-time views are never validated on.
pub fn cut_validation_groups(
    items: &[ItemMeta],
    train: &[usize],
    fraction: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>) {
    cut_by(items, train, fraction, seed, |it| it.group.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str, group: &str) -> ItemMeta {
        ItemMeta {
            name: name.into(),
            source: None,
            label: "a".into(),
            group: group.into(),
            fields: Default::default(),
            path: String::new(),
            view: None,
        }
    }

    #[test]
    fn validation_by_groups_holds_out_whole_groups() {
        let items: Vec<ItemMeta> = (0..40)
            .map(|i| item(&format!("i{i}"), &format!("track{}", i / 4)))
            .collect();
        let all: Vec<usize> = (0..40).collect();
        let (t, v) = cut_validation_groups(&items, &all, 0.2, 7);
        assert_eq!(v.len(), 8, "2 of 10 tracks, 4 frames each");
        assert_eq!(t.len() + v.len(), 40);
        for &i in &v {
            assert!(t.iter().all(|&j| items[j].group != items[i].group));
        }
        assert_eq!(cut_validation_groups(&items, &all, 0.2, 7), (t, v));
        assert_eq!(cut_validation_groups(&items, &all, 0.0, 7).1.len(), 0);
    }
}
