//! The recommendation library API end to end: read ratings, hold out each user's latest
//! rating, fit biased matrix factorisation with Burn, measure RMSE and NDCG@10 against
//! popularity, then answer "what should this user see next?".
//!
//! ```sh
//! cargo run --release -p profundo-recommend --example top_k -- datasets/movietweetings-10k
//! ```

use std::path::PathBuf;

use profundo_core::backend::{BackendKind, train_device};
use profundo_recommend::dataset::load;
use profundo_recommend::evaluation::{CUTOFFS, evaluate_fold};
use profundo_recommend::factors::top_k;
use profundo_recommend::split::{SplitMethod, split};
use profundo_recommend::table::TableSpec;
use profundo_recommend::train::{FitConfig, ModelKind, fit, popularity};

fn main() -> anyhow::Result<()> {
    let path = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| "datasets/movietweetings-10k".into());
    let (data, _) = load(&path, &TableSpec::default())?;
    println!(
        "{} ratings, {} users, {} items",
        data.len(),
        data.users.len(),
        data.items.len()
    );

    let fold = split(&data, &SplitMethod::LeaveLast { k: 1 }, 42)?.remove(0);
    let device = train_device(BackendKind::Flex, "cpu")?;
    let cfg = FitConfig {
        factors: 16,
        reg: 0.5,
        init_std: 0.01,
        refit: true,
        ..FitConfig::default()
    };
    let mf = fit(&data, &fold.train, ModelKind::Mf, &cfg, 42, &device, "mf")?;
    let e = evaluate_fold(&mf.model, &data, &fold.train, &fold.test, &CUTOFFS);
    let p = evaluate_fold(
        &popularity(&data, &fold.train),
        &data,
        &fold.train,
        &fold.test,
        &CUTOFFS,
    );
    println!(
        "MF: RMSE {:.3}, NDCG@10 {:.3} (popularity {:.3})",
        e.rmse.unwrap_or(f64::NAN),
        e.at(10).map_or(f64::NAN, |r| r.ndcg),
        p.at(10).map_or(f64::NAN, |r| r.ndcg)
    );

    // Top 5 for the first user, never an item they rated in training.
    let u = 0u32;
    let mut seen: Vec<u32> = fold
        .train
        .iter()
        .filter(|&&r| data.user[r as usize] == u)
        .map(|&r| data.item[r as usize])
        .collect();
    seen.sort_unstable();
    let mut scores = vec![0.0; data.items.len()];
    mf.model.score_all(u, &mut scores);
    println!("for user {}:", data.users.raw[u as usize]);
    for (i, s) in top_k(&scores, 5, &seen) {
        println!("  {s:.2}  {}", data.item_name(i));
    }
    Ok(())
}
