//! LibTorch parity (`--features tch`): every domain model gives the same outputs on flex and
//! tch from the same weights, a few seeded training steps follow the same path, and the
//! quickstart pipeline trains, evaluates and serves with `--set backend=tch`.
//!
//! Run inside the torch environment: `scripts/with-torch.sh cargo test --features tch --test tch`.

#[allow(dead_code)]
mod util;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, AdamWConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use profundo_core::backend::{self, BackendKind};
use profundo_core::manifest::{load_weights, save_weights};
use profundo_core::model::Classifier;
use profundo_faces::model::EmbeddingNetConfig;
use profundo_recommend::train::FactorNet;
use profundo_speech::model::ConvClassifierConfig;
use profundo_translate::model::{ModelConfig, Padded};
use util::*;

/// Forward outputs may differ by this much, relative to the largest output magnitude
/// (the 1e-4; the two backends sum in different orders).
const FORWARD_RTOL: f64 = 1e-4;
/// After a few optimiser steps rounding differences have gone through the backward pass
/// and Adam's normalisation; the losses and outputs must still agree this closely.
const TRAIN_RTOL: f64 = 1e-4;

fn flex() -> Device {
    backend::device(BackendKind::Flex, "cpu").unwrap()
}

fn tch() -> Device {
    backend::device(BackendKind::Tch, "cpu").unwrap()
}

/// max |a - b| / max |b|: the largest deviation relative to the output's scale.
fn rel_diff<const D: usize>(a: Tensor<D>, b: Tensor<D>) -> f64 {
    let a = a.into_data().try_to_vec::<f32>().unwrap();
    let b = b.into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(0f64, |m, v| m.max(v.abs() as f64));
    let diff = a
        .iter()
        .zip(&b)
        .fold(0f64, |m, (x, y)| m.max((*x as f64 - *y as f64).abs()));
    diff / scale.max(1e-12)
}

fn assert_close<const D: usize>(what: &str, a: Tensor<D>, b: Tensor<D>, rtol: f64) {
    let r = rel_diff(a, b);
    eprintln!("{what}: relative difference {r:.2e}");
    assert!(
        r <= rtol,
        "{what}: flex and tch differ by {r:.2e} > {rtol:.0e}"
    );
}

/// `fresh` (a module built on the target device) with the weights of `start`, through a
/// safetensors file as a model directory carries them.
fn with_weights_of<M: Module>(start: &M, fresh: M) -> M {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("w.safetensors");
    save_weights(&path, start).unwrap();
    load_weights(&path, fresh).unwrap()
}

fn normal<const D: usize>(shape: [usize; D], device: &Device) -> Tensor<D> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

fn ints(values: Vec<i64>, device: &Device) -> Tensor<1, Int> {
    let n = values.len();
    Tensor::from_data(TensorData::new(values, [n]), device)
}

#[test]
fn tch_is_compiled_in_and_rejects_missing_cuda_devices() {
    assert!(backend::available().contains(&BackendKind::Tch));
    let err = backend::device(BackendKind::Tch, "cuda:99")
        .unwrap_err()
        .to_string();
    assert!(err.contains("CUDA device"), "{err}");
}

#[test]
fn every_domain_model_gives_the_same_outputs_on_flex_and_tch() {
    let (f, t) = (flex(), tch());
    f.seed(3);

    let speech = ConvClassifierConfig {
        channels: vec![32, 64, 128],
        kernel: 5,
        dropout: 0.3,
        temporal: true,
    }
    .init([1, 13, 48], 10, &f);
    let x = normal([8, 1, 13, 48], &f);
    assert_close(
        "speech CNN logits",
        speech.clone().to_device(&t).logits(x.clone().to_device(&t)),
        speech.logits(x),
        FORWARD_RTOL,
    );

    let faces = EmbeddingNetConfig::default().init([1, 56, 46], &f);
    let x = normal([4, 1, 56, 46], &f);
    assert_close(
        "faces embeddings",
        faces
            .clone()
            .to_device(&t)
            .embed_eval(x.clone().to_device(&t)),
        faces.embed_eval(x),
        FORWARD_RTOL,
    );

    let mt = ModelConfig::default().init(8000, &f);
    let src: Vec<Vec<u32>> = vec![vec![10, 57, 300, 7999, 12], vec![42, 43, 44]];
    let tgt: Vec<Vec<u32>> = vec![vec![1, 99, 100], vec![1, 2000, 3000, 4000]];
    let logits = |net: &profundo_translate::model::Seq2Seq, d: &Device| {
        let memory = net.encode(&Padded::new(&src, 0, d));
        net.forward(&memory, Padded::new(&tgt, 0, d).ids)
    };
    assert_close(
        "Transformer logits",
        logits(&mt.clone().to_device(&t), &t),
        logits(&mt, &f),
        FORWARD_RTOL,
    );

    let mf = FactorNet::new(943, 1682, 64, 0.1, &f);
    let (u, i) = (vec![0, 5, 942, 17], vec![1681, 3, 0, 17]);
    let on =
        |net: &FactorNet, d: &Device| net.predict(ints(u.clone(), d), ints(i.clone(), d), 3.5).0;
    assert_close(
        "MF predictions",
        on(&mf.clone().to_device(&t), &t),
        on(&mf, &f),
        FORWARD_RTOL,
    );
}

/// On tch, profundo's own paths for convolution and batch norm (LibTorch's operations with
/// LibTorch's autograd inside Burn's backward pass) and ReLU (LibTorch's gradient) give what
/// Burn's layers give: outputs, the input's and the parameters' gradients, and the running
/// statistics batch norm updates.
#[test]
fn own_conv_batch_norm_and_relu_paths_match_burns_on_tch() {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNormConfig, PaddingConfig2d};
    use profundo_core::{conv, norm};
    let ad = tch().autodiff();
    ad.seed(5);
    let flat = |t: Tensor<4>| -> Tensor<1> { t.flatten(0, 3) };
    // Convolutions as the speech CNN ([1, 5] over frames) and the faces network (3x3) use them.
    for (shape, kernel, pad) in [
        ([4, 13, 1, 48], [1, 5], (0, 2)),
        ([3, 4, 12, 10], [3, 3], (1, 1)),
    ] {
        let layer = Conv2dConfig::new([shape[1], 6], kernel)
            .with_padding(PaddingConfig2d::Explicit(pad.0, pad.1, pad.0, pad.1))
            .with_bias(false)
            .init(&ad);
        let x = normal(shape, &ad);
        let w = normal([shape[0], 6, shape[2], shape[3]], &ad);
        let run = |own: bool| {
            let x = x.clone().detach().require_grad();
            let y = if own {
                conv::conv2d(&layer, x.clone())
            } else {
                layer.forward(x.clone())
            };
            let g = (y.clone() * w.clone()).sum().backward();
            let dw = layer.weight.grad(&g).expect("weight gradient");
            [
                flat(y.detach()),
                flat(x.grad(&g).expect("input gradient")),
                flat(dw),
            ]
        };
        let (own, burns) = (run(true), run(false));
        for (what, a, b) in [
            ("output", 0, 0),
            ("input gradient", 1, 1),
            ("weight gradient", 2, 2),
        ] {
            let what = format!("conv {kernel:?} {what}");
            assert_close(&what, own[a].clone(), burns[b].clone(), FORWARD_RTOL);
        }
    }
    // Batch norm in training, then in inference with the running statistics it updated.
    let layer = || BatchNormConfig::new(5).init(&ad);
    let (mine, burns) = (layer(), layer());
    let x = normal([6, 5, 3, 4], &ad).mul_scalar(3.0).add_scalar(2.0);
    let w = normal([6, 5, 3, 4], &ad);
    let run = |l: &burn::nn::BatchNorm, own: bool| {
        let x = x.clone().detach().require_grad();
        let y = if own {
            norm::batch_norm(l, x.clone())
        } else {
            l.forward(x.clone())
        };
        let g = (y.clone() * w.clone()).sum().backward();
        [
            flat(y.detach()),
            flat(x.grad(&g).expect("input gradient")),
            l.gamma.grad(&g).expect("gamma gradient"),
            l.beta.grad(&g).expect("beta gradient"),
        ]
    };
    let (a, b) = (run(&mine, true), run(&burns, false));
    for (i, what) in [
        "output",
        "input gradient",
        "gamma gradient",
        "beta gradient",
    ]
    .iter()
    .enumerate()
    {
        let what = format!("batch norm {what}");
        assert_close(&what, a[i].clone(), b[i].clone(), FORWARD_RTOL);
    }
    assert_close(
        "running mean",
        mine.running_mean.value(),
        burns.running_mean.value(),
        FORWARD_RTOL,
    );
    assert_close(
        "running variance",
        mine.running_var.value(),
        burns.running_var.value(),
        FORWARD_RTOL,
    );
    // ReLU with LibTorch's threshold_backward against Burn's relu and its default gradient.
    let run = |own: bool| {
        let x = x.clone().detach().require_grad();
        let y = if own {
            profundo_core::activation::relu(x.clone())
        } else {
            burn::tensor::activation::relu(x.clone())
        };
        let g = (y.clone() * w.clone()).sum().backward();
        [flat(y.detach()), flat(x.grad(&g).expect("input gradient"))]
    };
    let (a, b) = (run(true), run(false));
    assert_close("relu output", a[0].clone(), b[0].clone(), 0.0);
    assert_close("relu gradient", a[1].clone(), b[1].clone(), 0.0);
    let x = x.inner();
    let (mine, burns) = (mine.valid(), burns.valid());
    assert_close(
        "batch norm inference",
        norm::batch_norm(&mine, x.clone()),
        burns.forward(x),
        FORWARD_RTOL,
    );
}

/// On tch, the fused training block (convolution, batch norm and ReLU recorded as one
/// LibTorch autograd operation) gives what the three layers give one by one: output, the
/// gradients of the input, the weight, gamma and beta, and the running statistics.
#[test]
fn fused_conv_norm_relu_block_matches_the_layers_on_tch() {
    use burn::nn::conv::Conv2dConfig;
    use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
    use profundo_core::block::conv_norm_relu;
    let ad = tch().autodiff();
    ad.seed(9);
    let flat = |t: Tensor<4>| -> Tensor<1> { t.flatten(0, 3) };
    for relu in [true, false] {
        let conv = Conv2dConfig::new([3, 5], [3, 3])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .with_bias(false)
            .init(&ad);
        let layer = || BatchNormConfig::new(5).init(&ad);
        let (fused_norm, plain_norm) = (layer(), layer());
        let x = normal([4, 3, 7, 6], &ad);
        let w = normal([4, 5, 7, 6], &ad);
        let run = |norm: &BatchNorm, fused: bool| {
            let x = x.clone().detach().require_grad();
            let y = if fused {
                conv_norm_relu(&conv, norm, x.clone(), relu)
            } else {
                let y = norm.forward(conv.forward(x.clone()));
                if relu {
                    burn::tensor::activation::relu(y)
                } else {
                    y
                }
            };
            let g = (y.clone() * w.clone()).sum().backward();
            [
                flat(y.detach()),
                flat(x.grad(&g).expect("input gradient")),
                flat(conv.weight.grad(&g).expect("weight gradient")),
                norm.gamma
                    .grad(&g)
                    .expect("gamma gradient")
                    .reshape([1, 1, 1, 5])
                    .flatten(0, 3),
                norm.beta
                    .grad(&g)
                    .expect("beta gradient")
                    .reshape([1, 1, 1, 5])
                    .flatten(0, 3),
            ]
        };
        let (a, b) = (run(&fused_norm, true), run(&plain_norm, false));
        let names = [
            "output",
            "input gradient",
            "weight gradient",
            "gamma gradient",
            "beta gradient",
        ];
        for (i, what) in names.iter().enumerate() {
            let what = format!("fused block (relu {relu}) {what}");
            assert_close(&what, a[i].clone(), b[i].clone(), FORWARD_RTOL);
        }
        let stats = [
            (
                fused_norm.running_mean.value(),
                plain_norm.running_mean.value(),
            ),
            (
                fused_norm.running_var.value(),
                plain_norm.running_var.value(),
            ),
        ];
        for (f, p) in stats {
            assert_close("fused block running statistics", f, p, FORWARD_RTOL);
        }
    }
}

/// Five AdamW steps of the speech CNN (no dropout, so nothing random) from the same weights
/// on the same batch: the losses and the trained model's outputs agree.
#[test]
fn seeded_training_steps_follow_the_same_path_on_flex_and_tch() {
    let (f, t) = (flex(), tch());
    f.seed(11);
    let cfg = ConvClassifierConfig {
        channels: vec![16, 32],
        kernel: 5,
        dropout: 0.0,
        temporal: true,
    };
    let start = cfg.init([1, 13, 48], 10, &f);
    let x = normal([32, 1, 13, 48], &f);
    let y: Vec<i64> = (0..32).map(|i| i % 10).collect();
    let train = |d: &Device| {
        let ad = d.clone().autodiff();
        let mut model = with_weights_of(&start, cfg.init([1, 13, 48], 10, &ad));
        let (x, y) = (x.clone().to_device(&ad), ints(y.clone(), &ad));
        let loss_fn = CrossEntropyLossConfig::new().init(&ad);
        let mut optim = AdamWConfig::new().with_weight_decay(1e-4).init();
        let mut losses = Vec::new();
        for _ in 0..5 {
            let loss = loss_fn.forward(model.logits(x.clone()), y.clone());
            losses.push(loss.clone().into_scalar::<f32>());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optim.step(3e-3, model, grads);
        }
        let out = model.valid().logits(x.clone().to_device(d)).to_device(&f);
        (losses, out)
    };
    let (flex_losses, flex_out) = train(&f);
    let (tch_losses, tch_out) = train(&t);
    eprintln!("losses flex {flex_losses:?}\nlosses tch  {tch_losses:?}");
    assert!(flex_losses[4] < flex_losses[0], "training lowers the loss");
    for (a, b) in tch_losses.iter().zip(&flex_losses) {
        let r = ((a - b).abs() / b.abs()) as f64;
        assert!(r <= TRAIN_RTOL, "losses differ: tch {a} vs flex {b}");
    }
    assert_close("speech CNN after 5 steps", tch_out, flex_out, TRAIN_RTOL);

    // The MF step: squared error with per-example L2, Adam.
    let mf = FactorNet::new(50, 80, 16, 0.1, &f);
    let (u, i) = (vec![0, 1, 2, 49, 7, 7], vec![0, 79, 5, 5, 6, 60]);
    let r = Tensor::<1>::from_data(TensorData::new(vec![5f32, 1., 3., 4., 2., 5.], [6]), &f);
    let fit = |d: &Device| {
        let ad = d.clone().autodiff();
        let mut net = with_weights_of(&mf, FactorNet::new(50, 80, 16, 0.1, &ad));
        let mut optim = AdamConfig::new().init();
        for _ in 0..5 {
            let (pred, reg_f, reg_b) = net.predict(ints(u.clone(), &ad), ints(i.clone(), &ad), 3.5);
            let loss = (pred - r.clone().to_device(&ad)).powi_scalar(2).mean()
                + reg_f.mean() * 0.1
                + reg_b.mean() * 0.01;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(1e-2, net, grads);
        }
        net.valid()
            .predict(ints(u.clone(), d), ints(i.clone(), d), 3.5)
            .0
            .to_device(&f)
    };
    assert_close("MF after 5 steps", fit(&t), fit(&f), TRAIN_RTOL);
}

/// The quickstart pipeline on tch, shortened to 3 epochs per model, next to the same run on
/// flex: both learn (well above the 10% chance level) and land within 10 points of each
/// other on the held-out speaker (dropout masks and augmentation noise come from each
/// backend's own random generator, so the runs are not bit-identical). The tch model then
/// serves through the app.
#[test]
fn quickstart_trains_and_serves_with_backend_tch() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = repo();
    let short = ["--set", "train.training.epochs=3"];
    let accuracy = |backend: &str| {
        let runs = tmp.path().join(backend);
        let mut extra = short.to_vec();
        let set = format!("backend={backend}");
        extra.extend(["--set", set.as_str()]);
        let run = run_shipped_in("pipelines/quickstart.toml", &extra, &runs);
        let acc = metrics(&run)["eval"]["accuracy"].as_f64().unwrap();
        eprintln!("quickstart, 3 epochs, {backend}: held-out accuracy {acc:.4}");
        (run, acc)
    };
    let (run, tch_acc) = accuracy("tch");
    let (_, flex_acc) = accuracy("flex");
    assert!(tch_acc >= 0.5, "tch quickstart accuracy {tch_acc}");
    assert!(
        (tch_acc - flex_acc).abs() <= 0.10,
        "tch {tch_acc} vs flex {flex_acc}"
    );
    let resolved = std::fs::read_to_string(run.join("pipeline.toml")).unwrap();
    assert!(resolved.contains("backend = \"tch\""), "{resolved}");

    let model = run.join("model");
    let out = ok(
        &repo,
        &[
            "speech",
            "recognize",
            "--model",
            model.to_str().unwrap(),
            "--backend",
            "tch",
            "--json",
            "datasets/fsdd/recordings/7_george_3.wav",
        ],
    );
    let line: serde_json::Value = serde_json::from_str(out.stdout.trim()).unwrap();
    assert!(line["label"].is_string(), "{}", out.stdout);
}
