//! `profundo recommend --user ID` and `profundo recommend similar --item ID`.

use anyhow::Context;
use profundo_recommend::app::{RecommendedItem, Recommender, SimilarItems};

use crate::args::{RecommendArgs, RecommendCommand, SimilarArgs};

pub fn recommend(a: RecommendArgs) -> anyhow::Result<()> {
    if let Some(RecommendCommand::Similar(s)) = a.command {
        return similar(s);
    }
    let model = a
        .model
        .context("--model is required (a model directory or a run directory)")?;
    let user = a
        .user
        .context("--user is required (or use `profundo recommend similar --item ID`)")?;
    let rec = Recommender::load(&model)?;
    let answer = rec.recommend(&user, a.k)?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    if answer.cold_start {
        println!("user `{user}` has no history in this model: most popular items (cold start)");
    }
    print_items(&answer.items);
    Ok(())
}

fn similar(a: SimilarArgs) -> anyhow::Result<()> {
    let rec = Recommender::load(&a.model)?;
    let items = rec.similar(&a.item, a.k)?;
    if a.json {
        let answer = SimilarItems {
            item: a.item,
            similar: items,
        };
        println!("{}", serde_json::to_string_pretty(&answer)?);
        return Ok(());
    }
    print_items(&items);
    Ok(())
}

fn print_items(items: &[RecommendedItem]) {
    for it in items {
        let title = if it.title.is_empty() {
            String::new()
        } else {
            format!("\t{}", it.title)
        };
        println!("{}\t{}\t{:.3}{title}", it.rank, it.item, it.score);
    }
}
