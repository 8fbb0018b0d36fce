//! The speech workload of `profundo bench models`: the quickstart's temporal CNN (its first
//! ensemble member) over 13 MFCCs x 48 frames, batch 64, 10 classes.

use burn::tensor::Device;
use profundo_core::bench::{BenchWorkload, ClassifierBench, Measure, Prepared, seeded_devices};
use profundo_core::model::Classifier;

use crate::model::ConvClassifierConfig;

/// The input, batch, classes and label smoothing (shared with `bench_models.py`).
pub const SPEC: ClassifierBench = ClassifierBench {
    shape: [1, 13, 48],
    batch: 64,
    classes: 10,
    smoothing: 0.1,
};

/// The network timed: `pipelines/quickstart.toml`'s first member.
pub fn network() -> ConvClassifierConfig {
    ConvClassifierConfig {
        channels: vec![32, 64, 128],
        kernel: 5,
        dropout: 0.3,
        temporal: true,
    }
}

/// The workload, as `profundo bench models` runs it.
pub fn workload() -> BenchWorkload {
    BenchWorkload {
        name: "speech-cnn",
        batch: SPEC.batch,
        flops,
        prepare,
    }
}

fn flops(measure: Measure) -> Option<f64> {
    let forward = network().forward_flops(SPEC.shape, SPEC.classes) as f64;
    Some(BenchWorkload::flops_from_forward(
        forward, measure, SPEC.batch,
    ))
}

fn prepare(device: &Device) -> Vec<Prepared> {
    let train = seeded_devices(device);
    let cfg = network();
    let net = cfg.init(SPEC.shape, SPEC.classes, device);
    let model = cfg.init(SPEC.shape, SPEC.classes, &train);
    SPEC.prepare(model, move |x| net.logits(x), device, &train)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_match_a_hand_count() {
        // 13->32 over 48 frames, 32->64 over 24, 64->128 over 12 (kernel 5), head.
        let one = 2 * (48 * 32 * 13 * 5 + 24 * 64 * 32 * 5 + 12 * 128 * 64 * 5 + 128 * 10);
        let w = workload();
        assert_eq!((w.flops)(Measure::InferOne), Some(one as f64));
        assert_eq!((w.flops)(Measure::TrainStep), Some(3.0 * 64.0 * one as f64));
    }
}
