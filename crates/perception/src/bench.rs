//! The perception workload of `profundo bench models`: the GTSRB pipeline's sign CNN over
//! 32x32 RGB, batch 64, 43 classes.

use burn::tensor::Device;
use profundo_core::bench::{BenchWorkload, ClassifierBench, Measure, Prepared, seeded_devices};
use profundo_core::model::Classifier;

use crate::model::SignNetConfig;

/// The input, batch, classes and label smoothing (shared with `bench_models.py`).
pub const SPEC: ClassifierBench = ClassifierBench {
    shape: [3, 32, 32],
    batch: 64,
    classes: 43,
    smoothing: 0.0,
};

/// The network timed: `pipelines/perception-gtsrb.toml`'s.
pub fn network() -> SignNetConfig {
    SignNetConfig {
        channels: vec![32, 64, 128],
        convs_per_stage: 2,
        dropout: 0.3,
        multi_scale: false,
    }
}

/// The workload, as `profundo bench models` runs it.
pub fn workload() -> BenchWorkload {
    BenchWorkload {
        name: "signs-cnn",
        batch: SPEC.batch,
        flops,
        prepare,
    }
}

fn flops(measure: Measure) -> Option<f64> {
    let forward = network().forward_flops(SPEC.shape[1], SPEC.classes) as f64;
    Some(BenchWorkload::flops_from_forward(
        forward, measure, SPEC.batch,
    ))
}

fn prepare(device: &Device) -> Vec<Prepared> {
    let train = seeded_devices(device);
    let cfg = network();
    let net = cfg.init(SPEC.shape[1], SPEC.classes, device);
    let model = cfg.init(SPEC.shape[1], SPEC.classes, &train);
    SPEC.prepare(model, move |x| net.logits(x), device, &train)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_match_a_hand_count() {
        // Two 3x3 convolutions per stage at 32, 16 and 8 pixels, then the head on 4x4x128.
        let convs = 32 * 32 * (32 * 3 * 9 + 32 * 32 * 9)
            + 16 * 16 * (64 * 32 * 9 + 64 * 64 * 9)
            + 8 * 8 * (128 * 64 * 9 + 128 * 128 * 9);
        let one = 2 * (convs + 4 * 4 * 128 * 43);
        let w = workload();
        assert_eq!((w.flops)(Measure::InferOne), Some(one as f64));
        assert_eq!((w.flops)(Measure::TrainStep), Some(3.0 * 64.0 * one as f64));
    }

    #[test]
    fn the_timed_network_is_the_shipped_pipelines() {
        let text = include_str!("../../../pipelines/perception-gtsrb.toml");
        let doc: toml::Table = toml::from_str(text).unwrap();
        let model = &doc["stages"]["train"]["model"];
        let shipped: SignNetConfig = model.clone().try_into().unwrap();
        assert_eq!(shipped, network());
    }
}
