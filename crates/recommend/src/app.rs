//! Serving a trained recommender: top-K for a user (never an item they already interacted
//! with in training; popular items for a user the model has no history for, marked as a
//! cold-start answer) and the items nearest to an item by embedding.

use std::path::{Path, PathBuf};

use profundo_core::manifest::resolve_model_dir;
use serde::Serialize;

use crate::error::{RecommendError, Result};
use crate::factors::top_k_by_vector;
use crate::model_dir::RecommenderManifest;
use crate::serving::ServingModel;

/// One recommended item.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecommendedItem {
    /// Rank, from 1.
    pub rank: usize,
    /// Raw item id.
    pub item: String,
    /// Title (empty when unknown).
    pub title: String,
    /// Genres, `|`-separated.
    pub genres: String,
    /// The model's score (a predicted rating for rating models; for cold starts and
    /// popularity, the number of training interactions).
    pub score: f32,
}

/// The answer for one user.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Recommendations {
    /// The user asked about.
    pub user: String,
    /// True when the model has no history for the user and the list is the most popular
    /// items.
    pub cold_start: bool,
    /// Items, best first.
    pub items: Vec<RecommendedItem>,
}

/// The items nearest to one item, as `profundo recommend similar --json` prints them.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SimilarItems {
    /// The item asked about.
    pub item: String,
    /// Its nearest items, closest first.
    pub similar: Vec<RecommendedItem>,
}

/// A loaded recommender.
#[derive(Debug, Clone)]
pub struct Recommender {
    /// The model directory.
    pub dir: PathBuf,
    /// Its manifest.
    pub manifest: RecommenderManifest,
    /// The model.
    pub model: ServingModel,
}

impl Recommender {
    /// Loads a model directory, a run directory or a pipeline's runs folder.
    pub fn load(path: &Path) -> Result<Self> {
        let dir = resolve_model_dir(path)?;
        let manifest = RecommenderManifest::load(&dir)?;
        let model = ServingModel::load(&dir)?;
        Ok(Self {
            dir,
            manifest,
            model,
        })
    }

    fn check_k(k: usize) -> Result<()> {
        if k == 0 {
            return Err(RecommendError::Config("-k must be at least 1".into()));
        }
        Ok(())
    }

    fn item(&self, rank: usize, i: u32, score: f32) -> RecommendedItem {
        let m = &self.model;
        RecommendedItem {
            rank,
            item: m.items.raw[i as usize].clone(),
            title: m.titles[i as usize].clone(),
            genres: m.genres[i as usize].clone(),
            score,
        }
    }

    /// The top `k` items for `user`. A user the model has no training history for gets the
    /// most popular items with `cold_start = true`.
    pub fn recommend(&self, user: &str, k: usize) -> Result<Recommendations> {
        Self::check_k(k)?;
        if user.trim().is_empty() {
            return Err(RecommendError::Config("the user id is empty".into()));
        }
        let m = &self.model;
        let known = m
            .users
            .get(user.trim())
            .filter(|&u| !m.seen[u as usize].is_empty());
        let Some(u) = known else {
            let items = m
                .popular(k)
                .into_iter()
                .enumerate()
                .map(|(r, (i, count))| self.item(r + 1, i, count))
                .collect();
            return Ok(Recommendations {
                user: user.to_string(),
                cold_start: true,
                items,
            });
        };
        let bias = m.model.user_bias.get(u as usize).copied().unwrap_or(0.0);
        let top = top_k_by_vector(&m.model, m.model.user_vector(u), k, &m.seen[u as usize]);
        Ok(Recommendations {
            user: user.to_string(),
            cold_start: false,
            items: top
                .into_iter()
                .enumerate()
                .map(|(r, (i, s))| self.item(r + 1, i, s + bias))
                .collect(),
        })
    }

    /// The `k` items most similar to `item` by cosine similarity of item factors.
    pub fn similar(&self, item: &str, k: usize) -> Result<Vec<RecommendedItem>> {
        Self::check_k(k)?;
        let m = &self.model;
        let i = m
            .items
            .get(item.trim())
            .ok_or_else(|| RecommendError::UnknownItem {
                item: item.to_string(),
                hint: format!(
                    "not in this model's {} items (ids as in the rating data, e.g. `{}`)",
                    m.items.len(),
                    m.items.raw.first().map(String::as_str).unwrap_or("")
                ),
            })?;
        if m.model.dim == 0 {
            return Err(RecommendError::Config(format!(
                "a `{}` model has no item embeddings; similar items need an `mf` or `bpr` model",
                m.kind.name()
            )));
        }
        let norm = |v: &[f32]| v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        let q = m.model.item_vector(i);
        let qn = norm(q);
        let n = m.items.len() as u32;
        let scores: Vec<f32> = (0..n)
            .map(|j| {
                let v = m.model.item_vector(j);
                crate::factors::dot(q, v) / (qn * norm(v))
            })
            .collect();
        Ok(crate::factors::top_k(&scores, k, &[i])
            .into_iter()
            .enumerate()
            .map(|(r, (j, s))| self.item(r + 1, j, s))
            .collect())
    }
}
