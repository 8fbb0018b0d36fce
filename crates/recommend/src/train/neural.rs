//! Biased matrix factorisation, SVD++ and BPR as Burn modules: their epoch loop with validation, early stopping and negative sampling.

use super::*;

/// User and item factors with biases, as a Burn module.
#[derive(Module, Debug)]
pub struct FactorNet {
    user: Param<Tensor<2>>,
    item: Param<Tensor<2>>,
    user_bias: Param<Tensor<1>>,
    item_bias: Param<Tensor<1>>,
    /// SVD++: the items' implicit factors `y_j` (none for MF and BPR).
    implicit: Option<Param<Tensor<2>>>,
}

/// The most users x items cells SVD++'s dense implicit-feedback matrix may hold (200 MB).
pub const MAX_IMPLICIT_CELLS: usize = 50_000_000;

/// SVD++'s normalised implicit-feedback matrix, users x items: row `u` holds
/// `|N(u)|^-1/2` at the items `N(u)` that `u` rated in `rows`, zeros elsewhere.
pub fn implicit_matrix(d: &Interactions, rows: &[u32], device: &Device) -> Result<Tensor<2>> {
    let (nu, ni) = (d.users.len(), d.items.len());
    if nu.saturating_mul(ni) > MAX_IMPLICIT_CELLS {
        return Err(RecommendError::Config(format!(
            "svdpp keeps a dense users x items matrix: {nu} x {ni} is more than {MAX_IMPLICIT_CELLS} cells; use `mf`"
        )));
    }
    let mut m = vec![0f32; nu * ni];
    for (u, items) in items_by_user(d, rows).iter().enumerate() {
        let w = 1.0 / (items.len().max(1) as f32).sqrt();
        for &i in items {
            m[u * ni + i as usize] = w;
        }
    }
    Ok(Tensor::from_data(TensorData::new(m, [nu, ni]), device))
}

impl FactorNet {
    /// Random factors (normal, `std`) and zero biases.
    pub fn new(users: usize, items: usize, dim: usize, std: f32, device: &Device) -> Self {
        let normal = Distribution::Normal(0.0, std as f64);
        Self {
            user: Param::from_tensor(Tensor::random([users, dim], normal, device)),
            item: Param::from_tensor(Tensor::random([items, dim], normal, device)),
            user_bias: Param::from_tensor(Tensor::zeros([users], device)),
            item_bias: Param::from_tensor(Tensor::zeros([items], device)),
            implicit: None,
        }
    }

    /// Adds SVD++'s implicit item factors (normal, `std`).
    pub fn with_implicit(mut self, std: f32, device: &Device) -> Self {
        let [items, dim] = self.item.val().dims();
        let normal = Distribution::Normal(0.0, std as f64);
        self.implicit = Some(Param::from_tensor(Tensor::random(
            [items, dim],
            normal,
            device,
        )));
        self
    }

    /// The implicit part of the users' vectors, `|N(u)|^-1/2 sum_j y_j`, for the users whose
    /// rows of the normalised implicit matrix `n` are given (none without SVD++).
    fn implicit_part(&self, n: Option<Tensor<2>>) -> Option<Tensor<2>> {
        match (&self.implicit, n) {
            (Some(y), Some(n)) => Some(n.matmul(y.val())),
            _ => None,
        }
    }

    /// The plain arrays of the module.
    pub fn export(&self, global: f32, kind: ModelKind) -> FactorModel {
        self.export_with(global, kind, None)
    }

    /// The plain arrays of the module; with SVD++, each user's vector has the implicit
    /// part of the normalised implicit matrix `n` (all users' rows) folded in.
    pub fn export_with(&self, global: f32, kind: ModelKind, n: Option<&Tensor<2>>) -> FactorModel {
        let vec1 = |t: Tensor<1>| -> Vec<f32> { t.into_data().try_to_vec().unwrap_or_default() };
        let vec2 = |t: Tensor<2>| -> Vec<f32> { t.into_data().try_to_vec().unwrap_or_default() };
        let dim = self.user.val().dims()[1];
        let users = match self.implicit_part(n.cloned()) {
            Some(imp) => self.user.val() + imp,
            None => self.user.val(),
        };
        FactorModel {
            global,
            user_bias: if kind.rates() {
                vec1(self.user_bias.val())
            } else {
                Vec::new()
            },
            item_bias: vec1(self.item_bias.val()),
            dim,
            user_factors: vec2(users),
            item_factors: vec2(self.item.val()),
            predicts_ratings: kind.rates(),
        }
    }

    /// Rating predictions for the pairs `(u[k], i[k])` and the per-example L2 terms
    /// (factors, biases).
    pub fn predict(
        &self,
        u: Tensor<1, Int>,
        i: Tensor<1, Int>,
        global: f32,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        self.predict_with(u, i, global, None)
    }

    /// [`Self::predict`] with SVD++'s implicit part from the normalised implicit matrix
    /// `n` (all users' rows); its L2 term counts the implicit part as a third vector.
    pub fn predict_with(
        &self,
        u: Tensor<1, Int>,
        i: Tensor<1, Int>,
        global: f32,
        n: Option<&Tensor<2>>,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let pu = self.user.val().select(0, u.clone());
        let imp = self.implicit_part(n.map(|n| n.clone().select(0, u.clone())));
        let qi = self.item.val().select(0, i.clone());
        let bu = self.user_bias.val().select(0, u);
        let bi = self.item_bias.val().select(0, i);
        let user = match &imp {
            Some(imp) => pu.clone() + imp.clone(),
            None => pu.clone(),
        };
        let dot = (user * qi.clone()).sum_dim(1).squeeze_dim::<1>(1);
        let pred = dot + bu.clone() + bi.clone() + global;
        let squares = match imp {
            Some(imp) => pu.powi_scalar(2) + qi.powi_scalar(2) + imp.powi_scalar(2),
            None => pu.powi_scalar(2) + qi.powi_scalar(2),
        };
        let reg_f = squares.sum_dim(1).squeeze_dim::<1>(1);
        let reg_b = bu.powi_scalar(2) + bi.powi_scalar(2);
        (pred, reg_f, reg_b)
    }

    /// Sampled softmax: `-log softmax` of the positive item `i[b]` among it and the
    /// negatives `j[b, ..]` (`[batch, k]`), per example, and the per-example L2 terms (the
    /// negatives' averaged over `k`).
    fn sampled_softmax(
        &self,
        u: Tensor<1, Int>,
        i: Tensor<1, Int>,
        j: Tensor<2, Int>,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let [batch, k] = j.dims();
        let dim = self.item.val().dims()[1];
        let flat = j.reshape([batch * k]);
        let pu = self.user.val().select(0, u);
        let qi = self.item.val().select(0, i.clone());
        let bi = self.item_bias.val().select(0, i);
        let qj = self
            .item
            .val()
            .select(0, flat.clone())
            .reshape([batch, k, dim]);
        let bj = self.item_bias.val().select(0, flat).reshape([batch, k]);
        let pos = (pu.clone() * qi.clone()).sum_dim(1) + bi.clone().unsqueeze_dim::<2>(1);
        let neg = (pu.clone().unsqueeze_dim::<3>(1) * qj.clone())
            .sum_dim(2)
            .squeeze_dim::<2>(2)
            + bj.clone();
        let logits = Tensor::cat(vec![pos, neg], 1);
        let nll = log_softmax(logits, 1)
            .slice([0..batch, 0..1])
            .squeeze_dim::<1>(1)
            .neg();
        let reg_f = (pu.powi_scalar(2) + qi.powi_scalar(2))
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            + qj.powi_scalar(2)
                .sum_dim(2)
                .squeeze_dim::<2>(2)
                .mean_dim(1)
                .squeeze_dim::<1>(1);
        let reg_b = bi.powi_scalar(2) + bj.powi_scalar(2).mean_dim(1).squeeze_dim::<1>(1);
        (nll, reg_f, reg_b)
    }

    /// BPR: `x_uij = p_u . (q_i - q_j) + b_i - b_j` and the per-example L2 terms.
    fn pairwise(
        &self,
        u: Tensor<1, Int>,
        i: Tensor<1, Int>,
        j: Tensor<1, Int>,
    ) -> (Tensor<1>, Tensor<1>, Tensor<1>) {
        let pu = self.user.val().select(0, u);
        let qi = self.item.val().select(0, i.clone());
        let qj = self.item.val().select(0, j.clone());
        let bi = self.item_bias.val().select(0, i);
        let bj = self.item_bias.val().select(0, j);
        let x = (pu.clone() * (qi.clone() - qj.clone()))
            .sum_dim(1)
            .squeeze_dim::<1>(1)
            + bi.clone()
            - bj.clone();
        let reg_f = (pu.powi_scalar(2) + qi.powi_scalar(2) + qj.powi_scalar(2))
            .sum_dim(1)
            .squeeze_dim::<1>(1);
        let reg_b = bi.powi_scalar(2) + bj.powi_scalar(2);
        (x, reg_f, reg_b)
    }
}

pub(super) fn ints(v: impl Iterator<Item = u32>, device: &Device) -> Tensor<1, Int> {
    let data: Vec<i64> = v.map(i64::from).collect();
    let n = data.len();
    Tensor::from_data(TensorData::new(data, [n]), device)
}

/// Validation RMSE of a rating model.
pub(super) fn valid_rmse(m: &FactorModel, d: &Interactions, valid: &[u32]) -> f64 {
    let (lo, hi) = d.scale;
    let pairs: Vec<(f32, f32)> = valid
        .iter()
        .map(|&r| {
            let r = r as usize;
            (m.score(d.user[r], d.item[r]).clamp(lo, hi), d.rating[r])
        })
        .collect();
    crate::metrics::rmse_mae(&pairs).0
}

/// Validation NDCG@10 of a ranking model: each validation user's held-out items ranked
/// among all items minus their fitted items.
pub(super) fn valid_ndcg(
    m: &FactorModel,
    d: &Interactions,
    fit_items: &[Vec<u32>],
    valid: &[u32],
) -> f64 {
    let valid_items = items_by_user(d, valid);
    let users: Vec<usize> = (0..valid_items.len())
        .filter(|&u| !valid_items[u].is_empty() && !fit_items[u].is_empty())
        .collect();
    let ranked = crate::evaluation::rank_users(m, &users, fit_items, 10, &[]);
    let mut acc = RankingAccumulator::new(&[10], m.n_items());
    for (k, &u) in users.iter().enumerate() {
        let rel: HashSet<u32> = valid_items[u].iter().copied().collect();
        acc.add(&ranked[k], &rel);
    }
    acc.summary()[0].ndcg
}

pub(super) fn neural(
    d: &Interactions,
    train: &[u32],
    kind: ModelKind,
    cfg: &FitConfig,
    seed: u64,
    device: &Device,
    label: &str,
) -> Result<Fitted> {
    let t0 = Instant::now();
    let (fit_rows, valid) = crate::split::cut_validation(train, cfg.valid_fraction, seed);
    let run = Epochs {
        d,
        kind,
        cfg,
        seed,
        device,
        label,
    };
    let mut out = run.run(&fit_rows, &valid, cfg.epochs)?;
    let mut fitted_on = fit_rows.len();
    if cfg.refit && !valid.is_empty() {
        // The number of epochs was chosen on the validation cut; fit again on all the
        // training interactions for that many epochs.
        let again = run.run(train, &[], out.best_epoch)?;
        out.model = again.model;
        out.stop = format!("{}, refitted on all training data", out.stop);
        fitted_on = train.len();
    }
    Ok(Fitted {
        model: out.model,
        history: out.history,
        best_epoch: out.best_epoch,
        stop: out.stop,
        fit_rows: fitted_on,
        valid_rows: valid.len(),
        seconds: t0.elapsed().as_secs_f64(),
    })
}

/// What one training run of a factor network returns.
pub(super) struct EpochsOutcome {
    model: FactorModel,
    history: Vec<EpochLog>,
    best_epoch: usize,
    stop: String,
}

/// One training run of a factor network: its data and settings.
pub(super) struct Epochs<'a> {
    d: &'a Interactions,
    kind: ModelKind,
    cfg: &'a FitConfig,
    seed: u64,
    device: &'a Device,
    label: &'a str,
}

impl Epochs<'_> {
    /// Trains on `fit_rows` for up to `epochs`, keeping the epoch that scores best on
    /// `valid` (the last one without validation rows).
    fn run(&self, fit_rows: &[u32], valid: &[u32], epochs: usize) -> Result<EpochsOutcome> {
        let (d, kind, cfg, seed, device, label) = (
            self.d,
            self.kind,
            self.cfg,
            self.seed,
            self.device,
            self.label,
        );
        let global = if kind.rates() {
            mean_rating(d, fit_rows)
        } else {
            0.0
        };
        let implicit = match kind {
            ModelKind::Svdpp => Some(implicit_matrix(d, fit_rows, device)?),
            _ => None,
        };
        let fit_items = items_by_user(d, fit_rows);
        let n_items = d.items.len() as u32;
        device.seed(seed);
        let mut net = FactorNet::new(
            d.users.len(),
            d.items.len(),
            cfg.factors,
            cfg.init_std,
            device,
        );
        if implicit.is_some() {
            net = net.with_implicit(cfg.init_std, device);
        }
        let mut optim = match cfg.optimizer {
            OptimizerKind::Adam => AdamConfig::new().init(),
            OptimizerKind::Sgd => SgdConfig::new().init(),
        };
        let t0 = Instant::now();
        let mut history = Vec::new();
        let (mut best, mut best_epoch, mut best_score) = (None, 0usize, f64::NEG_INFINITY);
        let mut stop = "completed".to_string();
        let mut order = fit_rows.to_vec();
        for epoch in 1..=epochs {
            let te = Instant::now();
            let mut rng =
                StdRng::seed_from_u64(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ epoch as u64);
            order.copy_from_slice(fit_rows);
            order.shuffle(&mut rng);
            let mut loss_sum = 0.0f64;
            let lr = cfg.lr * cfg.lr_decay.powi(epoch as i32 - 1);
            for (b, batch) in order.chunks(cfg.batch_size).enumerate() {
                let u = ints(batch.iter().map(|&r| d.user[r as usize]), device);
                let i = ints(batch.iter().map(|&r| d.item[r as usize]), device);
                let (data_loss, reg_f, reg_b) = if kind.rates() {
                    let target: Vec<f32> = batch.iter().map(|&r| d.rating[r as usize]).collect();
                    let y = Tensor::<1>::from_data(TensorData::new(target, [batch.len()]), device);
                    let (pred, reg_f, reg_b) = net.predict_with(u, i, global, implicit.as_ref());
                    ((pred - y).powi_scalar(2).mean(), reg_f, reg_b)
                } else {
                    let k = match cfg.loss {
                        RankingLoss::Bpr => 1,
                        RankingLoss::Softmax => cfg.negatives.max(1),
                    };
                    let mut negatives = Vec::with_capacity(batch.len() * k);
                    for &r in batch {
                        // Negatives come from the items not fitted on, so a held-out
                        // validation item is drawn as a negative like a test item is
                        // (were it never drawn, early stopping would favour it).
                        let seen = &fit_items[d.user[r as usize] as usize];
                        for _ in 0..k {
                            negatives.push(sample_negative(&mut rng, n_items, seen));
                        }
                    }
                    let j = ints(negatives.into_iter(), device);
                    match cfg.loss {
                        RankingLoss::Bpr => {
                            let (x, reg_f, reg_b) = net.pairwise(u, i, j);
                            (log_sigmoid(x).mean().neg(), reg_f, reg_b)
                        }
                        RankingLoss::Softmax => {
                            let (nll, reg_f, reg_b) =
                                net.sampled_softmax(u, i, j.reshape([batch.len(), k]));
                            (nll.mean(), reg_f, reg_b)
                        }
                    }
                };
                let value = data_loss.clone().into_scalar::<f32>();
                if !value.is_finite() {
                    return Err(RecommendError::Training(format!(
                        "{label}: loss {value} at epoch {epoch}, batch {}; lower `lr`",
                        b + 1
                    )));
                }
                loss_sum += value as f64 * batch.len() as f64;
                let loss = data_loss + reg_f.mean() * cfg.reg + reg_b.mean() * cfg.reg_bias;
                let loss = match cfg.optimizer {
                    OptimizerKind::Adam => loss,
                    OptimizerKind::Sgd => loss * batch.len() as f32,
                };
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(lr, net, grads);
            }
            let snapshot = net.valid().export_with(global, kind, implicit.as_ref());
            let (valid_score, score) = if valid.is_empty() {
                (None, epoch as f64)
            } else if kind.rates() {
                let v = valid_rmse(&snapshot, d, valid);
                (Some(v), -v)
            } else {
                let v = valid_ndcg(&snapshot, d, &fit_items, valid);
                (Some(v), v)
            };
            let rec = EpochLog {
                epoch,
                train_loss: loss_sum / fit_rows.len().max(1) as f64,
                valid: valid_score,
                seconds: te.elapsed().as_secs_f64(),
            };
            tracing::info!(
                "{label}: epoch {epoch:>3} loss {:.4}{} ({:.1}s)",
                rec.train_loss,
                valid_score.map_or(String::new(), |v| format!(
                    " | valid {} {v:.4}",
                    if kind.rates() { "rmse" } else { "ndcg@10" }
                )),
                rec.seconds
            );
            history.push(rec);
            if score > best_score {
                best_score = score;
                best_epoch = epoch;
                best = Some(snapshot);
            }
            if cfg.patience > 0 && !valid.is_empty() && epoch - best_epoch >= cfg.patience {
                stop = "early stopping".into();
                break;
            }
            if cfg
                .budget_s
                .is_some_and(|b| t0.elapsed().as_secs_f64() >= b)
            {
                stop = "budget".into();
                break;
            }
        }
        let model =
            best.ok_or_else(|| RecommendError::Training(format!("{label}: no epoch ran")))?;
        Ok(EpochsOutcome {
            model,
            history,
            best_epoch,
            stop,
        })
    }
}

/// An item drawn uniformly among those not in `seen` (sorted). When the user has seen
/// every item there is no valid negative; the draw then repeats a random item, which the
/// loss treats as a tie.
pub fn sample_negative(rng: &mut StdRng, n_items: u32, seen: &[u32]) -> u32 {
    let free = n_items as usize - seen.len().min(n_items as usize);
    if free == 0 {
        return rng.random_range(0..n_items);
    }
    if seen.len() * 2 < n_items as usize {
        // Rejection sampling: fast while most items are unseen.
        loop {
            let j = rng.random_range(0..n_items);
            if seen.binary_search(&j).is_err() {
                return j;
            }
        }
    }
    // Dense histories: pick the k-th unseen item directly.
    let mut k = rng.random_range(0..free as u32);
    let mut j = 0u32;
    for &s in seen {
        if j + k < s {
            break;
        }
        k -= s - j;
        j = s + 1;
    }
    j + k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ratings() -> Interactions {
        // u1 rated a and b, u2 rated a, u3 rated c.
        let rows = [
            ("u1", "a", 4.0),
            ("u1", "b", 2.0),
            ("u2", "a", 5.0),
            ("u3", "c", 3.0),
        ];
        Interactions::from_raw(
            &crate::table::RawTable {
                path: "t".into(),
                users: rows.iter().map(|r| r.0).collect::<Vec<_>>().into(),
                items: rows.iter().map(|r| r.1).collect::<Vec<_>>().into(),
                ratings: rows.iter().map(|r| r.2).collect(),
                times: vec![0; rows.len()],
                explicit: true,
            },
            None,
        )
    }

    #[test]
    fn svdpp_folds_each_users_implicit_part_into_its_saved_vector() {
        let d = ratings();
        let device =
            profundo_core::backend::train_device(profundo_core::backend::BackendKind::Flex, "cpu")
                .unwrap();
        let rows: Vec<u32> = (0..d.len() as u32).collect();
        let n = implicit_matrix(&d, &rows, &device).unwrap();
        let n_rows: Vec<f32> = n.clone().into_data().try_to_vec().unwrap();
        let w = 1.0 / 2f32.sqrt();
        // Users u1, u2, u3 by items a, b, c (dense ids in order of appearance).
        assert_eq!(n_rows, vec![w, w, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0]);
        let net = FactorNet::new(3, 3, 2, 0.5, &device).with_implicit(0.5, &device);
        let y: Vec<f32> = net
            .implicit
            .as_ref()
            .unwrap()
            .val()
            .into_data()
            .try_to_vec()
            .unwrap();
        let plain = net.export(0.0, ModelKind::Mf).user_factors;
        let folded = net.export_with(0.0, ModelKind::Svdpp, Some(&n));
        let expected: Vec<f32> = (0..3)
            .flat_map(|u| {
                let (y, plain, n_rows) = (&y, &plain, &n_rows);
                (0..2).map(move |k| {
                    let imp: f32 = (0..3).map(|i| n_rows[u * 3 + i] * y[i * 2 + k]).sum();
                    plain[u * 2 + k] + imp
                })
            })
            .collect();
        for (a, b) in folded.user_factors.iter().zip(&expected) {
            assert!(
                (a - b).abs() < 1e-5,
                "{:?} vs {expected:?}",
                folded.user_factors
            );
        }
        assert!(folded.predicts_ratings && folded.user_bias.len() == 3);
        // Trained end to end, it predicts ratings.
        let cfg = FitConfig {
            epochs: 2,
            valid_fraction: 0.0,
            ..FitConfig::default()
        };
        let svd = super::super::fit(&d, &rows, ModelKind::Svdpp, &cfg, 1, &device, "t").unwrap();
        assert!(svd.model.predicts_ratings && svd.model.score(0, 0).is_finite());
    }

    #[test]
    fn the_sampled_softmax_loss_is_the_positives_cross_entropy_among_its_negatives() {
        let device =
            profundo_core::backend::train_device(profundo_core::backend::BackendKind::Flex, "cpu")
                .unwrap();
        let net = FactorNet::new(2, 4, 3, 0.5, &device);
        let m = net.export(0.0, ModelKind::Bpr);
        let u = ints([1u32].into_iter(), &device);
        let i = ints([2u32].into_iter(), &device);
        let j: Tensor<2, Int> = ints([0u32, 3].into_iter(), &device).reshape([1, 2]);
        let (nll, _, _) = net.sampled_softmax(u, i, j);
        let nll: f32 = nll.into_scalar();
        // By hand: scores of items 2 (positive), 0 and 3 for user 1.
        let s = |item: u32| m.score(1, item);
        let (p, a, b) = (s(2), s(0), s(3));
        let expected = -(p.exp() / (p.exp() + a.exp() + b.exp())).ln();
        assert!((nll - expected).abs() < 1e-5, "{nll} vs {expected}");
    }
}
