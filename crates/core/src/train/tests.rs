//! The shared loop's tests, on a tiny network with batch norm.

use super::*;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig, PaddingConfig2d};
use burn::tensor::TensorData;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::model::{NormStats, blended_batch_norm, global_avg_pool};

/// The loop's test network: a 4-channel 3x3 convolution over `[1, 4, 4]` inputs, batch
/// norm (the running statistics, or a blend with the batch's own as [`NormStats`] says),
/// ReLU, global average pooling and a linear head.
#[derive(Module, Debug)]
pub(super) struct TinyNet {
    conv: Conv2d,
    norm: BatchNorm,
    head: Linear,
}

impl TinyNet {
    fn forward_with(&self, x: Tensor<4>, stats: NormStats) -> Tensor<2> {
        let y = self.conv.forward(x);
        let y = match stats {
            NormStats::Running => self.norm.forward(y),
            NormStats::Batch { weight } => blended_batch_norm(&self.norm, y, weight),
        };
        self.head
            .forward(global_avg_pool(burn::tensor::activation::relu(y)))
    }
}

impl Classifier for TinyNet {
    fn logits(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_with(x, NormStats::Running)
    }

    fn logits_with(&self, x: Tensor<4>, stats: NormStats) -> Tensor<2> {
        self.forward_with(x, stats)
    }
}

fn tiny_net(classes: usize, device: &Device) -> TinyNet {
    TinyNet {
        conv: Conv2dConfig::new([1, 4], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(device),
        norm: BatchNormConfig::new(4).init(device),
        head: LinearConfig::new(4, classes).init(device),
    }
}

fn tiny(x: Vec<f32>, labels: Vec<usize>, epochs: usize) -> Result<TrainOutcome<TinyNet>> {
    let cfg = TrainConfig {
        epochs,
        batch_size: 4,
        lr: 0.05,
        ..TrainConfig::default()
    };
    tiny_with(x, labels, cfg)
}

fn tiny_with(x: Vec<f32>, labels: Vec<usize>, cfg: TrainConfig) -> Result<TrainOutcome<TinyNet>> {
    let device = crate::backend::train_device(crate::backend::BackendKind::Flex, "cpu")?;
    device.seed(1);
    let model = tiny_net(2, &device);
    let data = Examples {
        x: &x,
        shape: [1, 4, 4],
        labels: &labels,
        groups: None,
    };
    let idx: Vec<usize> = (0..labels.len()).collect();
    TrainRun {
        data,
        train: &idx,
        valid: &idx,
        config: &cfg,
        augment: &crate::augment::Augment2dConfig::default(),
        seed: 1,
        device: &device,
        checkpoints: None,
        label: "test",
    }
    .fit(model)
}

#[test]
fn nan_inputs_stop_training_with_a_clear_error() {
    let mut x = vec![0.5f32; 8 * 16];
    x[3] = f32::NAN;
    let err = tiny(x, vec![0, 1, 0, 1, 0, 1, 0, 1], 2)
        .err()
        .expect("must fail")
        .to_string();
    assert!(
        err.contains("loss became NaN") && err.contains("epoch 1, batch 1"),
        "{err}"
    );
}

#[test]
fn the_budget_stops_training_after_the_epoch_that_exceeds_it() {
    let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
    let cfg = TrainConfig {
        epochs: 5,
        batch_size: 4,
        budget_s: Some(1e-9),
        ..TrainConfig::default()
    };
    let out = tiny_with(vec![0.1; 8 * 16], labels, cfg).unwrap();
    assert_eq!(out.history.len(), 1);
    assert_eq!(out.stop, StopReason::Budget);
}

#[test]
fn group_batches_hold_one_group_each_and_cover_every_item_once() {
    let groups = [0, 1, 2, 0, 1, 2, 0, 1, 0, 0, 2];
    let labels = vec![0; groups.len()];
    let x = vec![0.0; groups.len()];
    let mut data = Examples {
        x: &x,
        shape: [1, 1, 1],
        labels: &labels,
        groups: Some(&groups),
    };
    let order = [10, 3, 7, 0, 5, 1, 9, 8, 2, 6, 4];
    let mut rng = StdRng::seed_from_u64(1);
    let batches = data.training_batches(&order, 2, &mut rng);
    // Group 0 has 5 items (3 batches), group 1 three (2), group 2 three (2).
    assert_eq!(batches.len(), 7);
    let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..groups.len()).collect::<Vec<_>>());
    for b in &batches {
        assert!(
            b.len() <= 2 && b.iter().all(|&i| groups[i] == groups[b[0]]),
            "{b:?}"
        );
    }
    data.groups = None;
    let mixed = data.training_batches(&order, 4, &mut rng);
    assert_eq!(
        mixed,
        vec![vec![10, 3, 7, 0], vec![5, 1, 9, 8], vec![2, 6, 4]]
    );
}

#[test]
fn grouped_prediction_normalises_each_group_alone_and_keeps_the_order() {
    let device = crate::backend::device(crate::backend::BackendKind::Flex, "cpu").unwrap();
    device.seed(2);
    let model = tiny_net(3, &device);
    // Two groups on different scales, interleaved.
    let groups = [0, 1, 0, 1, 0, 1];
    let x: Vec<f32> = (0..6 * 16)
        .map(|k| {
            let item = k / 16;
            let scale = if groups[item] == 0 { 1.0 } else { 5.0 };
            scale * ((k * 7919 % 23) as f32 / 23.0 - 0.5)
        })
        .collect();
    let labels = vec![0; 6];
    let mut data = Examples {
        x: &x,
        shape: [1, 4, 4],
        labels: &labels,
        groups: Some(&groups),
    };
    let idx = [5, 0, 3, 2];
    let got = predict_proba(&model, data, &idx, 256, &device);
    for (k, &i) in idx.iter().enumerate() {
        let members: Vec<usize> = idx
            .iter()
            .copied()
            .filter(|&j| groups[j] == groups[i])
            .collect();
        let probs = burn::tensor::activation::softmax(
            model.logits_with(
                data.batch(&members, &device, None),
                NormStats::for_group(members.len()),
            ),
            1,
        );
        let rows: Vec<f32> = probs.into_data().try_to_vec().unwrap();
        let at = members.iter().position(|&j| j == i).unwrap();
        let want = &rows[at * 3..at * 3 + 3];
        let diff = got[k]
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f32::max);
        assert!(diff < 1e-6, "item {i}: {:?} against {want:?}", got[k]);
    }
    data.groups = None;
    let running = predict_proba(&model, data, &idx, 256, &device);
    assert_ne!(got, running, "without groups, the running statistics");
}

/// Every float the module holds (weights and batch-norm running statistics), in order.
fn float_values<M: burn::module::Module>(model: &M) -> Vec<f32> {
    struct Collect(Vec<f32>);
    impl burn::module::ModuleVisitor for Collect {
        fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
            self.0.extend(
                param
                    .val()
                    .into_data()
                    .try_to_vec::<f32>()
                    .unwrap_or_default(),
            );
        }
    }
    let mut c = Collect(Vec::new());
    // `valid` folds pending running-statistic updates in first.
    model.valid().visit(&mut c);
    c.0
}

#[test]
fn the_kept_best_epoch_does_not_follow_the_training_models_batch_norm_statistics() {
    let device = crate::backend::train_device(crate::backend::BackendKind::Flex, "cpu").unwrap();
    device.seed(3);
    let model = tiny_net(2, &device);
    let kept = snapshot(&model);
    let cloned = model.clone();
    let before = float_values(&kept);
    let x: Vec<f32> = (0..2 * 16).map(|k| (k % 7) as f32 - 2.0).collect();
    // A training-mode forward pass updates the running statistics.
    let _ = model.logits(Tensor::from_data(TensorData::new(x, [2, 1, 4, 4]), &device));
    let after = float_values(&model);
    assert_ne!(after, before, "the forward pass moves the statistics");
    assert_eq!(float_values(&cloned), after, "a clone shares them");
    assert_eq!(float_values(&kept), before, "a snapshot keeps its own");
}

#[test]
fn a_resumed_run_ends_as_the_uninterrupted_one_with_or_without_validation_items() {
    for valid in [4, 0] {
        resume_matches_uninterrupted(valid);
    }
}

/// Trains 4 epochs on 16 items, the last `valid` of them held out, once without a stop
/// and once stopped after the first epoch and resumed from its checkpoint.
fn resume_matches_uninterrupted(valid: usize) {
    let labels: Vec<usize> = (0..16).map(|i| i % 2).collect();
    let x: Vec<f32> = (0..16 * 16)
        .map(|k| ((k * 31) % 17) as f32 / 8.0 - 1.0)
        .collect();
    let cfg = TrainConfig {
        epochs: 4,
        batch_size: 4,
        lr: 0.05,
        ..TrainConfig::default()
    };
    let device = crate::backend::train_device(crate::backend::BackendKind::Flex, "cpu").unwrap();
    // One initialisation for both runs: tests running in parallel share the device's
    // random generator.
    let initial = tiny_net(2, &device);
    let run = |cfg: &TrainConfig, dir: &Path| {
        let data = Examples {
            x: &x,
            shape: [1, 4, 4],
            labels: &labels,
            groups: None,
        };
        let idx: Vec<usize> = (0..16 - valid).collect();
        let valid: Vec<usize> = (16 - valid..16).collect();
        let ck = Checkpointer::new(dir);
        TrainRun {
            data,
            train: &idx,
            valid: &valid,
            config: cfg,
            augment: &crate::augment::Augment2dConfig::default(),
            seed: 1,
            device: &device,
            checkpoints: Some(&ck),
            label: "test",
        }
        .fit(snapshot(&initial))
        .unwrap()
    };
    let tmp = tempfile::tempdir().unwrap();
    let whole = run(&cfg, &tmp.path().join("whole"));
    assert_eq!(whole.history.len(), 4);

    // Stop after one epoch (the budget), mark the checkpoint unfinished, resume.
    let cut = tmp.path().join("cut");
    let first = TrainConfig {
        budget_s: Some(1e-9),
        ..cfg.clone()
    };
    assert_eq!(run(&first, &cut).history.len(), 1);
    let mut state = Checkpointer::new(&cut).load_state().unwrap().unwrap();
    (state.finished, state.stop) = (false, None);
    crate::fsutil::write_json_atomic(&cut.join("state.json"), &state).unwrap();
    let resumed = run(&cfg, &cut);
    assert_eq!(resumed.resumed_from, Some(1));
    let untimed = |h: &[EpochRecord]| -> Vec<EpochRecord> {
        h.iter()
            .map(|r| EpochRecord {
                seconds: 0.0,
                ..r.clone()
            })
            .collect()
    };
    assert_eq!(
        untimed(&resumed.history),
        untimed(&whole.history),
        "{valid} validation items"
    );
    assert_eq!(resumed.best_epoch, whole.best_epoch);
    assert_eq!(float_values(&resumed.model), float_values(&whole.model));
}

#[test]
fn a_separable_toy_problem_is_learned() {
    // Class 1 items are bright, class 0 dark.
    let labels: Vec<usize> = (0..16).map(|i| i % 2).collect();
    let x: Vec<f32> = labels
        .iter()
        .flat_map(|&l| std::iter::repeat_n(if l == 1 { 1.0 } else { -1.0 }, 16))
        .collect();
    let out = tiny(x, labels, 8).unwrap();
    assert_eq!(out.history.len(), 8);
    let best = out.history[out.best_epoch - 1].valid_accuracy.unwrap();
    assert_eq!(best, 1.0, "{:?}", out.history);
}

#[test]
fn keep_last_returns_the_last_epoch_and_keeps_old_settings_serialised_as_before() {
    // Separable data: two classes by the sign of the image.
    let labels: Vec<usize> = (0..8).map(|i| i % 2).collect();
    let x: Vec<f32> = (0..8 * 16)
        .map(|i| if labels[i / 16] == 0 { -1.0 } else { 1.0 } + (i % 5) as f32 * 0.01)
        .collect();
    let cfg = |keep| TrainConfig {
        epochs: 6,
        batch_size: 4,
        lr: 0.05,
        keep,
        ..TrainConfig::default()
    };
    let last = tiny_with(x.clone(), labels.clone(), cfg(Keep::Last)).unwrap();
    assert_eq!(last.best_epoch, 6, "keep = last returns the last epoch");
    let best = tiny_with(x, labels, cfg(Keep::Best)).unwrap();
    let top = best
        .history
        .iter()
        .map(|r| r.valid_accuracy.unwrap())
        .fold(0.0, f64::max);
    let chosen = best.history[best.best_epoch - 1].valid_accuracy.unwrap();
    assert_eq!(chosen, top, "keep = best returns a best epoch");
    // The default is left out of the serialised settings (cache keys stay the same).
    let json = serde_json::to_string(&TrainConfig::default()).unwrap();
    assert!(!json.contains("keep"), "{json}");
    let json = serde_json::to_string(&cfg(Keep::Last)).unwrap();
    assert!(json.contains(r#""keep":"last""#), "{json}");
}
