//! A recommender on the server: the top K items for users, and the items nearest an item.
//! A user the model has no history for gets the most popular items, marked
//! `cold_start: true`, as the CLI answers; an unknown item is a 404.

use std::path::PathBuf;

use profundo_recommend::RecommendError;
use profundo_recommend::app::{Recommendations, Recommender, SimilarItems};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::batcher::{BatchConfig, Batcher, Reply};
use crate::error::ApiError;
use crate::oip::{
    InferRequest, InferResponse, ModelMetadata, OutputData, ResponseOutput, TensorMetadata,
};

/// The number of items when a request names none (the CLI's default).
pub const DEFAULT_K: usize = 10;
/// The most items one answer may hold.
pub const MAX_K: usize = 1000;

/// One request.
pub enum Query {
    /// The top `k` items for each user.
    Users {
        /// Raw user ids.
        users: Vec<String>,
        /// Items per user.
        k: usize,
    },
    /// The `k` items nearest `item`.
    Similar {
        /// A raw item id.
        item: String,
        /// Items.
        k: usize,
    },
}

/// The answer to a [`Query`].
pub enum Answer {
    /// One list per user.
    Users(Vec<Recommendations>),
    /// The nearest items.
    Similar(SimilarItems),
}

/// `GET /v1/recommend/{name}`'s query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// The user's raw id.
    pub user: String,
    /// Items to return (default 10).
    pub k: Option<usize>,
}

/// `GET /v1/recommend/{name}/similar`'s query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ItemQuery {
    /// The item's raw id.
    pub item: String,
    /// Items to return (default 10).
    pub k: Option<usize>,
}

/// A loaded (or loading) recommender.
pub struct RecommendModel {
    batcher: Batcher<Query, Answer>,
}

/// The OIP input: user ids.
pub const INPUT: &str = "USER";

fn check_k(k: usize) -> Reply<usize> {
    if (1..=MAX_K).contains(&k) {
        Ok(k)
    } else {
        Err(ApiError::bad_request(format!(
            "k must be between 1 and {MAX_K}, not {k}"
        )))
    }
}

impl RecommendModel {
    /// Starts loading the model at `dir` on its worker thread.
    pub fn start(name: &str, dir: PathBuf, batch: BatchConfig) -> Self {
        let load = move || Recommender::load(&dir).map_err(|e| e.to_string());
        Self {
            batcher: Batcher::spawn(name, batch, load, run),
        }
    }

    /// Whether it has loaded.
    pub fn loaded(&self) -> Option<&Result<(), String>> {
        self.batcher.loaded()
    }

    /// The top `k` items for each of `users`.
    pub async fn recommend(&self, users: Vec<String>, k: usize) -> Reply<Vec<Recommendations>> {
        let k = check_k(k)?;
        if users.is_empty() {
            return Err(ApiError::bad_request("no user id in the request"));
        }
        match self.batcher.call(Query::Users { users, k }).await? {
            Answer::Users(r) => Ok(r),
            Answer::Similar(_) => Err(ApiError::internal("a similar-items answer to users")),
        }
    }

    /// The `k` items nearest `item`.
    pub async fn similar(&self, item: String, k: usize) -> Reply<SimilarItems> {
        let k = check_k(k)?;
        match self.batcher.call(Query::Similar { item, k }).await? {
            Answer::Similar(s) => Ok(s),
            Answer::Users(_) => Err(ApiError::internal("a users answer to similar items")),
        }
    }

    /// The model's OIP metadata.
    pub fn metadata(name: &str) -> ModelMetadata {
        ModelMetadata {
            name: name.to_string(),
            versions: vec![crate::VERSION.to_string()],
            platform: "profundo-recommend".into(),
            inputs: vec![TensorMetadata::new(INPUT, "BYTES", &[-1])],
            outputs: vec![
                TensorMetadata::new("ITEM", "BYTES", &[-1, -1]),
                TensorMetadata::new("SCORE", "FP32", &[-1, -1]),
                TensorMetadata::new("COLD_START", "INT64", &[-1]),
            ],
            parameters: [
                (
                    INPUT.to_string(),
                    "raw user ids, BYTES (strings) or INT64".to_string(),
                ),
                (
                    "parameters".to_string(),
                    format!("k: items per user, 1 to {MAX_K}, default {DEFAULT_K}"),
                ),
                (
                    "outputs".to_string(),
                    "ITEM and SCORE are [users, k], best first; a row with fewer than k \
                     items (a tiny catalogue) is padded with \"\" and 0; COLD_START is 1 \
                     for a user without history (the most popular items), else 0"
                        .to_string(),
                ),
            ]
            .into(),
        }
    }

    /// `POST /v2/models/{name}/infer`.
    pub async fn infer(&self, name: &str, req: InferRequest) -> Reply<InferResponse> {
        let users = req.input(INPUT, &[INPUT])?.ids()?;
        let k = req.int_parameter("k", DEFAULT_K as i64)?;
        let k = usize::try_from(k).unwrap_or(0);
        let answers = self.recommend(users, k).await?;
        let n = answers.len();
        let mut items = Vec::with_capacity(n * k);
        let mut scores = Vec::with_capacity(n * k);
        for a in &answers {
            for slot in 0..k {
                let it = a.items.get(slot);
                items.push(it.map(|i| i.item.clone()).unwrap_or_default());
                scores.push(it.map_or(0.0, |i| i.score));
            }
        }
        let cold = answers.iter().map(|a| i64::from(a.cold_start)).collect();
        let mut outputs = Vec::new();
        let mut add = |name: &str, shape: Vec<usize>, data: OutputData| {
            if req.wants(name) {
                outputs.push(ResponseOutput::new(name, shape, data));
            }
        };
        add("ITEM", vec![n, k], OutputData::Bytes(items));
        add("SCORE", vec![n, k], OutputData::Fp32(scores));
        add("COLD_START", vec![n], OutputData::Int64(cold));
        Ok(InferResponse {
            model_name: name.to_string(),
            id: req.id,
            outputs,
        })
    }
}

fn recommend_error(e: RecommendError) -> ApiError {
    match e {
        RecommendError::UnknownItem { .. } => ApiError::not_found(e.to_string()),
        RecommendError::Config(_) => ApiError::bad_request(e.to_string()),
        other => ApiError::internal(other.to_string()),
    }
}

/// One batch: each query answered in turn (a top-K is a fraction of a millisecond).
fn run(r: &Recommender, queries: Vec<Query>) -> Vec<Reply<Answer>> {
    queries
        .into_iter()
        .map(|q| match q {
            Query::Users { users, k } => users
                .iter()
                .map(|u| r.recommend(u, k))
                .collect::<Result<Vec<_>, _>>()
                .map(Answer::Users)
                .map_err(recommend_error),
            Query::Similar { item, k } => r
                .similar(&item, k)
                .map(|similar| Answer::Similar(SimilarItems { item, similar }))
                .map_err(recommend_error),
        })
        .collect()
}
