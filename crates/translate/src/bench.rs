//! The translation workload of `profundo bench models`: the translation pipeline's
//! Transformer (d 256, 4 heads, 3+3 layers) over an 8,000-token vocabulary, on batches of 128
//! sentence pairs of 12 + 12 tokens (the pipeline's 3,072-token batch at Tatoeba's typical
//! length).

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::Device;
use profundo_core::bench::{BenchWorkload, Measure, Prepared, seeded_devices};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::model::{ModelConfig, Padded};
use crate::train::smoothed_loss;

/// Vocabulary size (shared with `bench_models.py`).
pub const VOCAB: usize = 8000;
/// Sentence pairs per batch.
pub const BATCH: usize = 128;
/// Tokens per sentence, each side.
pub const LEN: usize = 12;

/// The workload, as `profundo bench models` runs it.
pub fn workload() -> BenchWorkload {
    BenchWorkload {
        name: "translate-transformer",
        batch: BATCH,
        flops,
        prepare,
    }
}

fn flops(measure: Measure) -> Option<f64> {
    let forward = ModelConfig::default().forward_flops(LEN, VOCAB);
    Some(BenchWorkload::flops_from_forward(forward, measure, BATCH))
}

/// Random sentences of `LEN` tokens (ids past the specials).
fn sentences(n: usize, rng: &mut StdRng) -> Vec<Vec<u32>> {
    (0..n)
        .map(|_| {
            (0..LEN)
                .map(|_| rng.random_range(8..VOCAB as u32))
                .collect()
        })
        .collect()
}

/// The step of [`crate::train::train`]: encode, teacher-forced decode, label-smoothed loss
/// (read back), Adam (β2 0.98) with gradient-norm clipping. Inference is the teacher-forced
/// forward pass with each position's most likely token read back.
fn prepare(device: &Device) -> Vec<Prepared> {
    let train = seeded_devices(device);
    let cfg = ModelConfig::default();
    let mut rng = StdRng::seed_from_u64(7);
    let batch = |n: usize, rng: &mut StdRng, d: &Device| {
        let src = Padded::new(&sentences(n, rng), 0, d);
        let tgt = Padded::new(&sentences(n, rng), 0, d);
        (src, tgt)
    };
    let (src, tgt) = batch(BATCH, &mut rng, &train);
    let mut optim = AdamConfig::new()
        .with_beta_2(0.98)
        .with_epsilon(1e-9)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(1.0)))
        .init();
    let mut model = Some(cfg.init(VOCAB, &train));
    let step = Prepared::new(Measure::TrainStep, BATCH, &train, move || {
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
    let many = inference(Measure::InferBatch, BATCH);
    vec![step, one, many]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_match_a_hand_count() {
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
        assert_eq!(t.forward_flops(12, 8000), enc + dec + 2.0 * l * d * 8000.0);
    }
}
