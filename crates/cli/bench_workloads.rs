//! The models `profundo bench models` times: each domain describes its workload (its
//! network at its shipped pipeline's size and batch, synthetic inputs, the FLOPs of each
//! measure from the model configuration) in its own `bench` module; this file only lists
//! them and hands them to the runner.
//!
//! `bench_models.py` builds the same networks in PyTorch; the two change together.

use burn::tensor::Device;
pub use profundo_core::bench::{BenchWorkload, Measure, Prepared};

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
    /// The GTSRB pipeline's sign CNN (32x32 RGB, 43 classes).
    SignsCnn,
}

/// Every workload, in table order.
pub const ALL: [Workload; 5] = [
    Workload::SpeechCnn,
    Workload::FacesResnet,
    Workload::TranslateTransformer,
    Workload::RecommendMf,
    Workload::SignsCnn,
];

impl Workload {
    /// The domain's description of the workload.
    pub fn spec(self) -> BenchWorkload {
        match self {
            Self::SpeechCnn => profundo_speech::bench::workload(),
            Self::FacesResnet => profundo_faces::bench::workload(),
            Self::TranslateTransformer => profundo_translate::bench::workload(),
            Self::RecommendMf => profundo_recommend::bench::workload(),
            Self::SignsCnn => profundo_perception::bench::workload(),
        }
    }

    /// The name used on the command line, in the table and by the PyTorch script.
    pub fn name(self) -> &'static str {
        self.spec().name
    }

    /// Parses a workload name.
    pub fn parse(name: &str) -> Option<Self> {
        ALL.into_iter().find(|w| w.name() == name)
    }

    /// Floating-point operations of one call of `measure` (multiply-adds count two; a
    /// training step counts three forward passes); `None` where the count is not meaningful.
    pub fn flops(self, measure: Measure) -> Option<f64> {
        (self.spec().flops)(measure)
    }
}

/// Builds every measure of `w` on `device` (an inference device; training runs on its
/// autodiff twin), in [`Measure::ALL`] order, seeded so that every worker times the same
/// weights and inputs.
pub fn prepare(w: Workload, device: &Device) -> Vec<Prepared> {
    (w.spec().prepare)(device)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for w in ALL {
            assert_eq!(Workload::parse(w.name()), Some(w));
        }
        assert_eq!(Workload::parse("bert"), None);
    }

    #[test]
    fn every_network_but_the_factorisation_counts_its_flops() {
        for w in ALL {
            for m in Measure::ALL {
                let f = w.flops(m);
                match w {
                    Workload::RecommendMf => assert_eq!(f, None),
                    _ => assert!(f.is_some_and(|f| f > 0.0), "{} {}", w.name(), m.name()),
                }
            }
            let one = w.flops(Measure::InferOne).unwrap_or(0.0);
            let batch = w.flops(Measure::InferBatch).unwrap_or(0.0);
            assert_eq!(batch, one * w.spec().batch as f64, "{}", w.name());
        }
    }
}
