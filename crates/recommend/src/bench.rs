//! The recommendation workload of `profundo bench models`: the MovieLens-100K matrix
//! factorisation (64 factors, 943 users, 1,682 items), batches of 512 ratings.

use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use profundo_core::bench::{BenchWorkload, Measure, Prepared, seeded_devices};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use crate::factors::top_k;
use crate::train::{FactorNet, ModelKind};

/// Users (shared with `bench_models.py`).
pub const USERS: usize = 943;
/// Items.
pub const ITEMS: usize = 1682;
/// Latent factors.
pub const FACTORS: usize = 64;
/// Ratings per training step and per batch of predictions.
pub const BATCH: usize = 512;

/// The workload, as `profundo bench models` runs it. Its FLOPs are not counted: the rows are
/// memory-bound gathers.
pub fn workload() -> BenchWorkload {
    BenchWorkload {
        name: "recommend-mf",
        batch: BATCH,
        flops: |_| None,
        prepare,
    }
}

/// The rating-model step of [`crate::train`] (squared error plus per-example L2, Adam);
/// inference is the app's top-10 for one user over the catalogue, and rating predictions
/// for a batch of (user, item) pairs.
fn prepare(device: &Device) -> Vec<Prepared> {
    let train = seeded_devices(device);
    let mut rng = StdRng::seed_from_u64(7);
    let ids = |n: usize, max: usize, rng: &mut StdRng, d: &Device| {
        let v: Vec<i64> = (0..n).map(|_| rng.random_range(0..max as i64)).collect();
        Tensor::<1, Int>::from_data(TensorData::new(v, [n]), d)
    };
    let (u, i) = (
        ids(BATCH, USERS, &mut rng, &train),
        ids(BATCH, ITEMS, &mut rng, &train),
    );
    let ratings: Vec<f32> = (0..BATCH).map(|_| rng.random_range(1..=5) as f32).collect();
    let y = Tensor::<1>::from_data(TensorData::new(ratings, [BATCH]), &train);
    let (global, reg, reg_bias) = (3.5, 0.1, 0.01);
    let mut optim = AdamConfig::new().init();
    let mut net = Some(FactorNet::new(USERS, ITEMS, FACTORS, 0.01, &train));
    let step = Prepared::new(Measure::TrainStep, BATCH, &train, move || {
        let Some(m) = net.take() else { return };
        let (pred, reg_f, reg_b) = m.predict(u.clone(), i.clone(), global);
        let data_loss = (pred - y.clone()).powi_scalar(2).mean();
        std::hint::black_box(data_loss.clone().into_scalar::<f32>());
        let loss = data_loss + reg_f.mean() * reg + reg_b.mean() * reg_bias;
        let grads = GradientsParams::from_grads(loss.backward(), &m);
        net = Some(optim.step(3e-3, m, grads));
    });
    let module = FactorNet::new(USERS, ITEMS, FACTORS, 0.01, device);
    let served = module.export(global, ModelKind::Mf);
    let mut scores = vec![0f32; ITEMS];
    let one = Prepared::new(Measure::InferOne, 1, device, move || {
        served.score_all(17, &mut scores);
        std::hint::black_box(top_k(&scores, 10, &[]));
    });
    let (u, i) = (
        ids(BATCH, USERS, &mut rng, device),
        ids(BATCH, ITEMS, &mut rng, device),
    );
    let many = Prepared::new(Measure::InferBatch, BATCH, device, move || {
        let (pred, _, _) = module.predict(u.clone(), i.clone(), global);
        std::hint::black_box(pred.into_data());
    });
    vec![step, one, many]
}
