//! What `profundo bench models` times, shared by the domains: the measures, a prepared
//! measure (model, optimizer state and inputs built once, then called again and again), the
//! description a domain gives of its workload ([`BenchWorkload`]), and the training step and
//! inference of any [`Classifier`] ([`ClassifierBench`]). Each domain's `bench` module builds
//! its own network at its shipped pipeline's size; the CLI only runs and prints them.

use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};

use crate::model::Classifier;

/// What is timed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measure {
    /// Forward, backward and optimizer update on one batch.
    TrainStep,
    /// Inference on one item (latency).
    InferOne,
    /// Inference on one batch (throughput).
    InferBatch,
}

impl Measure {
    /// Every measure, in table order.
    pub const ALL: [Measure; 3] = [Measure::TrainStep, Measure::InferOne, Measure::InferBatch];

    /// The name in the table and the JSON rows.
    pub fn name(self) -> &'static str {
        match self {
            Self::TrainStep => "train step",
            Self::InferOne => "infer 1",
            Self::InferBatch => "infer batch",
        }
    }
}

/// A domain's benchmark workload.
#[derive(Debug, Clone, Copy)]
pub struct BenchWorkload {
    /// The name on the command line, in the table and in `bench_models.py`.
    pub name: &'static str,
    /// Items per training step and per batch-inference call (the pipeline's batch size).
    pub batch: usize,
    /// Floating-point operations of one call of a measure (multiply-adds count two; a
    /// training step counts three forward passes); `None` where a count is not meaningful.
    pub flops: fn(Measure) -> Option<f64>,
    /// Builds every measure on a device (an inference device; training runs on its
    /// autodiff twin), in [`Measure::ALL`] order, seeded so that every worker times the
    /// same weights and inputs.
    pub prepare: fn(&Device) -> Vec<Prepared>,
}

impl BenchWorkload {
    /// FLOPs of a call of `measure` from the forward FLOPs of one item: `forward` per item,
    /// three passes for a training step.
    pub fn flops_from_forward(forward: f64, measure: Measure, batch: usize) -> f64 {
        match measure {
            Measure::TrainStep => 3.0 * forward * batch as f64,
            Measure::InferOne => forward,
            Measure::InferBatch => forward * batch as f64,
        }
    }
}

/// One measure of a workload, built once and then called again and again (a persistent
/// benchmark worker answers many timing requests with the same model, optimizer state and
/// inputs, as `bench_models.py` does for PyTorch).
pub struct Prepared {
    /// What one call does.
    pub measure: Measure,
    /// Items per call.
    pub items: usize,
    /// The device to wait on after each call (the autodiff twin for a training step).
    sync: Device,
    call: Box<dyn FnMut()>,
}

impl Prepared {
    /// A measure of `items` items per call, waited on through `sync`.
    pub fn new(
        measure: Measure,
        items: usize,
        sync: &Device,
        call: impl FnMut() + 'static,
    ) -> Self {
        Self {
            measure,
            items,
            sync: sync.clone(),
            call: Box::new(call),
        }
    }

    /// Runs `calls` calls, each waited on until the device has finished its queued work
    /// (so asynchronous devices such as CUDA are timed to completion); their times in ms,
    /// in call order.
    ///
    /// # Panics
    /// If the device reports that a queued operation failed.
    pub fn time(&mut self, calls: usize) -> Vec<f64> {
        (0..calls)
            .map(|_| {
                let t = Instant::now();
                (self.call)();
                self.sync
                    .sync()
                    .expect("the device failed to run the benchmarked call");
                t.elapsed().as_secs_f64() * 1e3
            })
            .collect()
    }
}

/// A batch of standard-normal inputs.
pub fn images(n: usize, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::random([n, c, h, w], Distribution::Normal(0.0, 1.0), device)
}

/// Class ids `0, 1, ..., classes - 1, 0, ...` for `n` items.
pub fn class_ids(n: usize, classes: usize, device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [n]), device)
}

/// A classifier workload: input shape, the pipeline's batch size, classes and label smoothing.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierBench {
    /// Shape of one input.
    pub shape: [usize; 3],
    /// Items per training step and batch inference.
    pub batch: usize,
    /// Classes of the training loss.
    pub classes: usize,
    /// Label smoothing of the loss.
    pub smoothing: f32,
}

impl ClassifierBench {
    /// The training step of the shared loop ([`crate::train::TrainRun::fit`]: AdamW with
    /// decoupled weight decay, cross-entropy, the loss read back every step) on `model`,
    /// then `infer` on standard-normal inputs of one item and of a batch.
    pub fn prepare<M: Classifier + 'static>(
        &self,
        model: M,
        infer: impl Fn(Tensor<4>) -> Tensor<2> + Clone + 'static,
        device: &Device,
        train: &Device,
    ) -> Vec<Prepared> {
        let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
        let loss_fn = CrossEntropyLossConfig::new()
            .with_smoothing((self.smoothing > 0.0).then_some(self.smoothing))
            .init(train);
        let x = images(self.batch, self.shape, train);
        let y = class_ids(self.batch, self.classes, train);
        let mut model = Some(model);
        let step = Prepared::new(Measure::TrainStep, self.batch, train, move || {
            let Some(m) = model.take() else { return };
            let logits = m.train_logits(x.clone(), y.clone());
            let loss = loss_fn.forward(logits, y.clone());
            std::hint::black_box(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &m);
            model = Some(optim.step(1e-3, m, grads));
        });
        let inference = |measure: Measure, n: usize| {
            let x = images(n, self.shape, device);
            let infer = infer.clone();
            Prepared::new(measure, n, device, move || {
                std::hint::black_box(infer(x.clone()).into_data());
            })
        };
        vec![
            step,
            inference(Measure::InferOne, 1),
            inference(Measure::InferBatch, self.batch),
        ]
    }
}

/// The seeded training and inference devices of a workload: `device` and its autodiff twin,
/// both seeded with 7 (every worker then builds the same weights).
pub fn seeded_devices(device: &Device) -> Device {
    let train = device.clone().autodiff();
    train.seed(7);
    device.seed(7);
    train
}

/// The `p` quantile of sorted, non-empty samples (nearest rank).
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}
