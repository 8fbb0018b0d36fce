//! The faces workload of `profundo bench models`: the residual embedding network with its
//! CosFace head at the faces pipelines' input (56x46 grey), batch 32, 40 people (ORL).

use burn::tensor::Device;
use profundo_core::bench::{BenchWorkload, ClassifierBench, Measure, Prepared, seeded_devices};

use crate::model::{EmbeddingNetConfig, MarginLoss, MarginModel};

/// The input, batch, classes and label smoothing (shared with `bench_models.py`).
pub const SPEC: ClassifierBench = ClassifierBench {
    shape: [1, 56, 46],
    batch: 32,
    classes: 40,
    smoothing: 0.0,
};

/// The workload, as `profundo bench models` runs it.
pub fn workload() -> BenchWorkload {
    BenchWorkload {
        name: "faces-resnet",
        batch: SPEC.batch,
        flops,
        prepare,
    }
}

fn flops(measure: Measure) -> Option<f64> {
    let cfg = EmbeddingNetConfig::default();
    let net = cfg.forward_flops(SPEC.shape) as f64;
    let forward = match measure {
        // Training adds the cosine head; inference embeds the mirror image too.
        Measure::TrainStep => net + 2.0 * (cfg.embedding_dim * SPEC.classes) as f64,
        _ => 2.0 * net,
    };
    Some(BenchWorkload::flops_from_forward(
        forward, measure, SPEC.batch,
    ))
}

fn prepare(device: &Device) -> Vec<Prepared> {
    let train = seeded_devices(device);
    let cfg = EmbeddingNetConfig::default();
    let net = cfg.init(SPEC.shape, device);
    let model = MarginModel::new(
        cfg.init(SPEC.shape, &train),
        cfg.embedding_dim,
        SPEC.classes,
        &MarginLoss::default(),
        &train,
    );
    SPEC.prepare(model, move |x| net.embed_eval(x), device, &train)
}

#[cfg(test)]
mod tests {
    use crate::model::{EmbeddingNetConfig, Head};

    #[test]
    fn flops_match_a_hand_count() {
        // A one-stage net: two 3x3 convs 1->4 and 4->4 on 2x2, a 1x1 shortcut, the linear
        // layer.
        let cfg = EmbeddingNetConfig {
            channels: vec![4],
            embedding_dim: 3,
            ..Default::default()
        };
        let px = 4;
        assert_eq!(
            cfg.forward_flops([1, 2, 2]),
            2 * (px * 4 * 9 + px * 4 * 4 * 9 + px * 4 + 4 * 3)
        );
        // Flattened, the linear layer sees all 4 channels at all 4 pixels.
        let flat = EmbeddingNetConfig {
            head: Head::Flatten,
            ..cfg
        };
        assert_eq!(
            flat.forward_flops([1, 2, 2]),
            2 * (px * 4 * 9 + px * 4 * 4 * 9 + px * 4 + px * 4 * 3)
        );
    }
}
