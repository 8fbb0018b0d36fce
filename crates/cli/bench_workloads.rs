//! The models `profundo bench models` times: each domain's network at its shipped
//! pipeline's size and batch, with synthetic inputs of the right shape, and the floating-point
//! operations each measure performs (for GFLOP/s against the machine's peak).
//!
//! `bench_models.py` builds the same networks in PyTorch; the two files change together.

use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use profundo_core::model::Classifier;
use profundo_faces::model::{EmbeddingNetConfig, MarginLoss, MarginModel};
use profundo_recommend::factors::top_k;
use profundo_recommend::train::{FactorNet, ModelKind};
use profundo_speech::model::ConvClassifierConfig;
use profundo_translate::model::{ModelConfig, Padded};
use profundo_translate::train::smoothed_loss;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One benchmarked network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Workload {
    /// The quickstart's temporal CNN over 13 MFCCs x 48 frames (first ensemble member).
    SpeechCnn,
    /// The faces pipelines' residual embedding network with its CosFace head (ORL, 40 people).
    FacesResnet,
    /// The translation pipeline's Transformer (d 256, 4 heads, 3+3 layers, 8,000 tokens).
    TranslateTransformer,
    /// The MovieLens-100K matrix factorisation (64 factors, 943 users, 1,682 items).
    RecommendMf,
}

/// Every workload, in table order.
pub const ALL: [Workload; 4] = [
    Workload::SpeechCnn,
    Workload::FacesResnet,
    Workload::TranslateTransformer,
    Workload::RecommendMf,
];

// Shapes shared with bench_models.py.
const SPEECH: ClassifierSpec = ClassifierSpec {
    shape: [1, 13, 48],
    batch: 64,
    classes: 10,
    smoothing: 0.1,
};
const FACES: ClassifierSpec = ClassifierSpec {
    shape: [1, 56, 46],
    batch: 32,
    classes: 40,
    smoothing: 0.0,
};
const VOCAB: usize = 8000;
/// 128 sentence pairs of 12 source and 12 target tokens: the pipeline's 3,072-token batch
/// at Tatoeba's typical length.
const MT_BATCH: usize = 128;
const MT_LEN: usize = 12;
const MF_USERS: usize = 943;
const MF_ITEMS: usize = 1682;
const MF_FACTORS: usize = 64;
const MF_BATCH: usize = 512;

impl Workload {
    /// The name used on the command line, in the table and by the PyTorch script.
    pub fn name(self) -> &'static str {
        match self {
            Self::SpeechCnn => "speech-cnn",
            Self::FacesResnet => "faces-resnet",
            Self::TranslateTransformer => "translate-transformer",
            Self::RecommendMf => "recommend-mf",
        }
    }

    /// Parses a workload name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL.into_iter().find(|w| w.name() == name)
    }

    /// Items per training step and per batch-inference call (the pipeline's batch size).
    pub fn batch(self) -> usize {
        match self {
            Self::SpeechCnn => SPEECH.batch,
            Self::FacesResnet => FACES.batch,
            Self::TranslateTransformer => MT_BATCH,
            Self::RecommendMf => MF_BATCH,
        }
    }

    /// Items in one call of `measure`.
    pub fn items(self, measure: Measure) -> usize {
        match measure {
            Measure::InferOne => 1,
            Measure::TrainStep | Measure::InferBatch => self.batch(),
        }
    }

    /// Floating-point operations of one call of `measure` (multiply-adds count two;
    /// a training step counts three forward passes). `None` where the count is not
    /// meaningful (the factorisation rows are memory-bound gathers).
    pub fn flops(self, measure: Measure) -> Option<f64> {
        let forward = match self {
            Self::SpeechCnn => {
                conv_forward_flops(&speech_cfg(), SPEECH.shape, SPEECH.classes) as f64
            }
            Self::FacesResnet => {
                let net = faces_forward_flops(&faces_cfg(), FACES.shape) as f64;
                match measure {
                    // Training adds the cosine head; inference embeds the mirror image too.
                    Measure::TrainStep => {
                        net + 2.0 * (faces_cfg().embedding_dim * FACES.classes) as f64
                    }
                    _ => 2.0 * net,
                }
            }
            Self::TranslateTransformer => transformer_forward_flops(&ModelConfig::default()),
            Self::RecommendMf => return None,
        };
        let pass = forward * self.items(measure) as f64;
        Some(match measure {
            Measure::TrainStep => 3.0 * pass,
            _ => pass,
        })
    }
}

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
    fn new(measure: Measure, items: usize, sync: &Device, call: impl FnMut() + 'static) -> Self {
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

/// Builds every measure of `w` on `device` (an inference device; training runs on its
/// autodiff twin), in [`Measure::ALL`] order, seeded so that every worker times the same
/// weights and inputs.
pub fn prepare(w: Workload, device: &Device) -> Vec<Prepared> {
    let train = device.clone().autodiff();
    train.seed(7);
    device.seed(7);
    match w {
        Workload::SpeechCnn => {
            let cfg = speech_cfg();
            let net = cfg.init(SPEECH.shape, SPEECH.classes, device);
            let model = cfg.init(SPEECH.shape, SPEECH.classes, &train);
            SPEECH.prepare(model, move |x| net.logits(x), device, &train)
        }
        Workload::FacesResnet => {
            let cfg = faces_cfg();
            let net = cfg.init(FACES.shape, device);
            let model = MarginModel::new(
                cfg.init(FACES.shape, &train),
                cfg.embedding_dim,
                FACES.classes,
                &MarginLoss::default(),
                &train,
            );
            FACES.prepare(model, move |x| net.embed_eval(x), device, &train)
        }
        Workload::TranslateTransformer => transformer(device, &train),
        Workload::RecommendMf => factorisation(device, &train),
    }
}

fn speech_cfg() -> ConvClassifierConfig {
    ConvClassifierConfig {
        channels: vec![32, 64, 128],
        kernel: 5,
        dropout: 0.3,
        temporal: true,
    }
}

fn faces_cfg() -> EmbeddingNetConfig {
    EmbeddingNetConfig::default()
}

/// A batch of standard-normal inputs.
fn images(n: usize, [c, h, w]: [usize; 3], device: &Device) -> Tensor<4> {
    Tensor::random([n, c, h, w], Distribution::Normal(0.0, 1.0), device)
}

fn classes(n: usize, classes: usize, device: &Device) -> Tensor<1, Int> {
    let ids: Vec<i64> = (0..n).map(|i| (i % classes) as i64).collect();
    Tensor::from_data(TensorData::new(ids, [n]), device)
}

/// A classifier workload: input shape, the pipeline's batch size, classes and label smoothing.
struct ClassifierSpec {
    shape: [usize; 3],
    batch: usize,
    classes: usize,
    smoothing: f32,
}

impl ClassifierSpec {
    /// The training step of `profundo_core::train::TrainRun::fit` on `model` (AdamW with
    /// decoupled weight decay, cross-entropy, the loss read back every step), then `infer`
    /// on standard-normal inputs of one item and of a batch.
    fn prepare<M: Classifier + 'static>(
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
        let y = classes(self.batch, self.classes, train);
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

/// Random sentences of `MT_LEN` tokens (ids past the specials).
fn sentences(n: usize, rng: &mut StdRng) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| {
            (0..MT_LEN)
                .map(|_| rng.random_range(8..VOCAB as u32))
                .collect()
        })
        .collect()
}

/// The step of `profundo_translate::train::train`: encode, teacher-forced decode,
/// label-smoothed loss (read back), Adam (β2 0.98) with gradient-norm clipping. Inference is
/// the teacher-forced forward pass with each position's most likely token read back.
fn transformer(device: &Device, train: &Device) -> Vec<Prepared> {
    let cfg = ModelConfig::default();
    let mut rng = StdRng::seed_from_u64(7);
    let batch = |n: usize, rng: &mut StdRng, d: &Device| {
        let src = Padded::new(&sentences(n, rng), 0, d);
        let tgt = Padded::new(&sentences(n, rng), 0, d);
        (src, tgt)
    };
    let (src, tgt) = batch(MT_BATCH, &mut rng, train);
    let mut optim = AdamConfig::new()
        .with_beta_2(0.98)
        .with_epsilon(1e-9)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let mut model = Some(cfg.init(VOCAB, train));
    let step = Prepared::new(Measure::TrainStep, MT_BATCH, train, move || {
        let Some(m) = model.take() else { return };
        let memory = m.encode(&src);
        let logits = m.forward(&memory, tgt.ids.clone());
        let loss = smoothed_loss(logits, &tgt, 0.1);
        std::hint::black_box(loss.clone().into_scalar::<f32>());
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        model = Some(optim.step(1e-4, m, grads));
    });
    let net = cfg.init(VOCAB, device);
    let mut inference = |measure: Measure, n: usize| {
        let (src, tgt) = batch(n, &mut rng, device);
        let net = net.clone();
        Prepared::new(measure, n, device, move || {
            let memory = net.encode(&src);
            // The next-token choice a decoder makes, read back: the full logits would add a
            // 50 MB device-to-host copy that no real use makes.
            let logits = net.forward(&memory, tgt.ids.clone());
            std::hint::black_box(logits.argmax(2).into_data());
        })
    };
    let one = inference(Measure::InferOne, 1);
    let many = inference(Measure::InferBatch, MT_BATCH);
    vec![step, one, many]
}

/// The rating-model step of `profundo_recommend::train` (squared error plus per-example L2,
/// Adam); inference is the app's top-10 for one user over the catalogue, and rating
/// predictions for a batch of (user, item) pairs.
fn factorisation(device: &Device, train: &Device) -> Vec<Prepared> {
    let mut rng = StdRng::seed_from_u64(7);
    let ids = |n: usize, max: usize, rng: &mut StdRng, d: &Device| {
        let v: Vec<i64> = (0..n).map(|_| rng.random_range(0..max as i64)).collect();
        Tensor::<1, Int>::from_data(TensorData::new(v, [n]), d)
    };
    let (u, i) = (
        ids(MF_BATCH, MF_USERS, &mut rng, train),
        ids(MF_BATCH, MF_ITEMS, &mut rng, train),
    );
    let ratings: Vec<f32> = (0..MF_BATCH)
        .map(|_| rng.random_range(1..=5) as f32)
        .collect();
    let y = Tensor::<1>::from_data(TensorData::new(ratings, [MF_BATCH]), train);
    let (global, reg, reg_bias) = (3.5, 0.1, 0.01);
    let mut optim = AdamConfig::new().init();
    let mut net = Some(FactorNet::new(MF_USERS, MF_ITEMS, MF_FACTORS, 0.01, train));
    let step = Prepared::new(Measure::TrainStep, MF_BATCH, train, move || {
        let Some(m) = net.take() else { return };
        let (pred, reg_f, reg_b) = m.predict(u.clone(), i.clone(), global);
        let data_loss = (pred - y.clone()).powi_scalar(2).mean();
        std::hint::black_box(data_loss.clone().into_scalar::<f32>());
        let loss = data_loss + reg_f.mean() * reg + reg_b.mean() * reg_bias;
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        net = Some(optim.step(3e-3, m, grads));
    });
    let module = FactorNet::new(MF_USERS, MF_ITEMS, MF_FACTORS, 0.01, device);
    let served = module.export(global, ModelKind::Mf);
    let mut scores = vec![0f32; MF_ITEMS];
    let one = Prepared::new(Measure::InferOne, 1, device, move || {
        served.score_all(17, &mut scores);
        std::hint::black_box(top_k(&scores, 10, &[]));
    });
    let (u, i) = (
        ids(MF_BATCH, MF_USERS, &mut rng, device),
        ids(MF_BATCH, MF_ITEMS, &mut rng, device),
    );
    let many = Prepared::new(Measure::InferBatch, MF_BATCH, device, move || {
        let (pred, _, _) = module.predict(u.clone(), i.clone(), global);
        std::hint::black_box(pred.into_data());
    });
    vec![step, one, many]
}

/// Forward FLOPs of a [`ConvClassifierConfig`] network for one input: every convolution
/// (no bias) and the linear head.
pub fn conv_forward_flops(
    cfg: &ConvClassifierConfig,
    [c, h, w]: [usize; 3],
    n_classes: usize,
) -> usize {
    let (mut prev, mut h, mut w, kh) = if cfg.temporal {
        (c * h, 1, w, 1)
    } else {
        (c, h, w, cfg.kernel)
    };
    let mut total = 0;
    for (k, &ch) in cfg.channels.iter().enumerate() {
        total += 2 * h * w * ch * prev * kh * cfg.kernel;
        if k + 1 < cfg.channels.len() {
            if !cfg.temporal {
                h /= 2;
            }
            w /= 2;
        }
        prev = ch;
    }
    total + 2 * prev * n_classes
}

/// Forward multiply-add FLOPs of the residual embedding network for one image (without the
/// cosine head).
pub fn faces_forward_flops(cfg: &EmbeddingNetConfig, shape: [usize; 3]) -> usize {
    let [mut prev, mut h, mut w] = shape;
    let mut total = 0;
    for (k, &ch) in cfg.channels.iter().enumerate() {
        let px = h * w;
        total += 2 * px * ch * prev * 9 + 2 * px * ch * ch * 9;
        if prev != ch {
            total += 2 * px * ch * prev;
        }
        if k + 1 < cfg.channels.len() {
            (h, w) = (h / 2, w / 2);
        }
        prev = ch;
    }
    total + 2 * cfg.embedding_inputs(shape) * cfg.embedding_dim
}

/// Forward FLOPs of the Transformer for one sentence pair of `MT_LEN` + `MT_LEN` tokens:
/// projections, attention products, feed-forward layers and the tied output projection.
pub fn transformer_forward_flops(cfg: &ModelConfig) -> f64 {
    let (d, ff, l, v) = (
        cfg.d_model as f64,
        cfg.d_ff as f64,
        MT_LEN as f64,
        VOCAB as f64,
    );
    let attention_products = |lq: f64, lk: f64| 2.0 * 2.0 * lq * lk * d;
    let feed_forward = 2.0 * 2.0 * l * d * ff;
    let encoder = 2.0 * 4.0 * l * d * d + attention_products(l, l) + feed_forward;
    let decoder = 2.0 * 4.0 * l * d * d // self-attention projections
        + attention_products(l, l)
        + 2.0 * 4.0 * l * d * d // cross-attention: query/output on the target, key/value on the source
        + attention_products(l, l)
        + feed_forward;
    cfg.encoder_layers as f64 * encoder + cfg.decoder_layers as f64 * decoder + 2.0 * l * d * v
}

#[cfg(test)]
mod tests {
    use super::*;
    use profundo_faces::model::Head;

    #[test]
    fn names_round_trip() {
        for w in ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
        assert_eq!(Workload::parse("bert"), None);
    }

    #[test]
    fn flop_counts_match_hand_counts() {
        // Speech: 13->32 over 48 frames, 32->64 over 24, 64->128 over 12 (kernel 5), head.
        let speech = 2 * (48 * 32 * 13 * 5 + 24 * 64 * 32 * 5 + 12 * 128 * 64 * 5 + 128 * 10);
        assert_eq!(
            Workload::SpeechCnn.flops(Measure::InferOne),
            Some(speech as f64)
        );
        assert_eq!(
            Workload::SpeechCnn.flops(Measure::TrainStep),
            Some(3.0 * 64.0 * speech as f64)
        );
        // A one-stage net: two 3x3 convs 1->4 and 4->4 on 2x2, a 1x1 shortcut, the linear layer.
        let cfg = EmbeddingNetConfig {
            channels: vec![4],
            embedding_dim: 3,
            ..Default::default()
        };
        let px = 4;
        assert_eq!(
            faces_forward_flops(&cfg, [1, 2, 2]),
            2 * (px * 4 * 9 + px * 4 * 4 * 9 + px * 4 + 4 * 3)
        );
        // Flattened, the linear layer sees all 4 channels at all 4 pixels.
        let flat = EmbeddingNetConfig {
            head: Head::Flatten,
            ..cfg
        };
        assert_eq!(
            faces_forward_flops(&flat, [1, 2, 2]),
            2 * (px * 4 * 9 + px * 4 * 4 * 9 + px * 4 + px * 4 * 3)
        );
        // One layer each, width 2, feed-forward 3, 12 tokens a side, 8,000-token vocabulary.
        let t = ModelConfig {
            d_model: 2,
            heads: 1,
            d_ff: 3,
            encoder_layers: 1,
            decoder_layers: 1,
            ..Default::default()
        };
        let (l, d) = (12.0, 2.0);
        let enc = 8.0 * l * d * d + 4.0 * l * l * d + 4.0 * l * d * 3.0;
        let dec = enc + 8.0 * l * d * d + 4.0 * l * l * d;
        assert_eq!(
            transformer_forward_flops(&t),
            enc + dec + 2.0 * l * d * 8000.0
        );
        assert_eq!(Workload::RecommendMf.flops(Measure::TrainStep), None);
    }
}
