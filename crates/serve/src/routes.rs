//! The routes: the Open Inference Protocol v2 for every model, plain routes per domain
//! whose answers are the CLI's `--json` output, `/metrics` and `/openapi.json`.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use metrics_exporter_prometheus::PrometheusHandle;
use profundo_core::manifest::Domain;
use profundo_faces::photo::IdentifiedFace;
use profundo_perception::app::SignAnswer;
use profundo_recommend::app::{Recommendations, SimilarItems};
use profundo_speech::app::Recognition;
use profundo_translate::translator::TranslatedLine;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::error::{ApiError, ErrorBody};
use crate::faces::EmbeddedPhoto;
use crate::models::{Models, Served};
use crate::oip::{InferRequest, InferResponse, ModelMetadata, ModelReady, ServerMetadata, Upload};
use crate::recommend::{DEFAULT_K, ItemQuery, UserQuery};
use crate::translate::{DEFAULT_BEAM, Sentences, Texts, TranslateBody};

/// What every handler shares.
pub struct AppState {
    /// The models.
    pub models: Models,
    /// Renders `/metrics`.
    pub metrics: PrometheusHandle,
}

type Shared = State<Arc<AppState>>;

/// The router, before the limits and telemetry of [`crate::layers`].
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/v2", get(server_metadata))
        .route("/v2/health/live", get(live))
        .route("/v2/health/ready", get(ready))
        .route("/v2/models/{name}", get(model_metadata))
        .route("/v2/models/{name}/ready", get(model_ready))
        .route("/v2/models/{name}/infer", post(infer))
        .route("/v1/speech/{name}/recognize", post(recognize))
        .route("/v1/faces/{name}/identify", post(identify))
        .route("/v1/faces/{name}/embed", post(embed))
        .route("/v1/translate/{name}", post(translate))
        .route("/v1/recommend/{name}", get(recommend))
        .route("/v1/recommend/{name}/similar", get(similar))
        .route("/v1/signs/{name}/classify", post(classify_sign))
        .route("/metrics", get(prometheus_metrics))
        .route("/openapi.json", get(openapi_document))
        .with_state(state)
}

/// The answer of the health probes.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Health {
    /// Live (`/v2/health/live`) or ready (`/v2/health/ready`).
    pub status: bool,
}

/// `?path=` of the upload routes: the name their answer echoes as `path`.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadName {
    /// Echoed back as the answer's `path` (default `-`).
    pub path: Option<String>,
}

fn query<T>(q: Result<Query<T>, QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(t)| t)
        .map_err(|e| ApiError::bad_request(format!("bad query string: {}", e.body_text())))
}

/// The uploaded body, named by `?path=` (default `-`).
fn upload(q: Result<Query<UploadName>, QueryRejection>, body: Bytes) -> Result<Upload, ApiError> {
    Ok(Upload {
        name: query(q)?.path.unwrap_or_else(|| "-".to_string()),
        bytes: body.to_vec(),
    })
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "Open Inference Protocol v2",
    responses((status = 200, body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "profundo".into(),
        version: crate::VERSION.into(),
        extensions: Vec::new(),
    })
}

/// Liveness: the server answers.
#[utoipa::path(get, path = "/v2/health/live", tag = "Open Inference Protocol v2",
    responses((status = 200, body = Health)))]
pub async fn live() -> Json<Health> {
    Json(Health { status: true })
}

/// Readiness: every model is loaded (503 until then).
#[utoipa::path(get, path = "/v2/health/ready", tag = "Open Inference Protocol v2",
    responses((status = 200, body = Health), (status = 503, body = Health)))]
pub async fn ready(State(s): Shared) -> Response {
    let ok = s.models.all_ready();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(Health { status: ok })).into_response()
}

/// A model's inputs, outputs and parameters.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "Open Inference Protocol v2",
    params(("name" = String, Path, description = "The model's name (--model NAME=...)")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = ErrorBody)))]
pub async fn model_metadata(
    State(s): Shared,
    Path(name): Path<String>,
) -> Result<Json<ModelMetadata>, ApiError> {
    Ok(Json(s.models.get(&name)?.metadata(&name)))
}

/// Whether a model is loaded.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "Open Inference Protocol v2",
    params(("name" = String, Path, description = "The model's name")),
    responses((status = 200, body = ModelReady), (status = 503, body = ModelReady),
        (status = 404, body = ErrorBody)))]
pub async fn model_ready(State(s): Shared, Path(name): Path<String>) -> Result<Response, ApiError> {
    let ready = s.models.get(&name)?.ready();
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    Ok((status, Json(ModelReady { name, ready })).into_response())
}

/// Inference: the protocol's input tensors in, output tensors out (see each model's
/// metadata for its tensors).
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "Open Inference Protocol v2",
    params(("name" = String, Path, description = "The model's name")),
    request_body = InferRequest,
    responses((status = 200, body = InferResponse), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 503, body = ErrorBody)))]
pub async fn infer(
    State(s): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Json<InferResponse>, ApiError> {
    let model = s.models.get(&name)?;
    let req: InferRequest = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("malformed inference request: {e}")))?;
    Ok(Json(model.infer(&name, req).await?))
}

/// Recognises one WAV file: the answer of `profundo speech recognize --json`.
#[utoipa::path(post, path = "/v1/speech/{name}/recognize", tag = "speech",
    params(("name" = String, Path, description = "A speech model's name"), UploadName),
    request_body(content = Vec<u8>, content_type = "audio/wav"),
    responses((status = 200, body = Recognition), (status = 400, body = ErrorBody)))]
pub async fn recognize(
    State(s): Shared,
    Path(name): Path<String>,
    q: Result<Query<UploadName>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Recognition>, ApiError> {
    let Served::Speech(m) = s.models.of_domain(&name, Domain::Speech)? else {
        return Err(ApiError::internal("domain mismatch"));
    };
    let mut found = m.recognize(vec![upload(q, body)?]).await?;
    found
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("no recognition"))
}

/// Classifies one sign image: the answer of `profundo signs classify --json`.
#[utoipa::path(post, path = "/v1/signs/{name}/classify", tag = "perception",
    params(("name" = String, Path, description = "A perception model's name"), UploadName),
    request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, body = SignAnswer), (status = 400, body = ErrorBody)))]
pub async fn classify_sign(
    State(s): Shared,
    Path(name): Path<String>,
    q: Result<Query<UploadName>, QueryRejection>,
    body: Bytes,
) -> Result<Json<SignAnswer>, ApiError> {
    let Served::Signs(m) = s.models.of_domain(&name, Domain::Perception)? else {
        return Err(ApiError::internal("domain mismatch"));
    };
    let mut found = m.classify(vec![upload(q, body)?]).await?;
    found
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("no answer"))
}

fn faces_model<'a>(s: &'a AppState, name: &str) -> Result<&'a crate::faces::FacesModel, ApiError> {
    match s.models.of_domain(name, Domain::Faces)? {
        Served::Faces(m) => Ok(m),
        _ => Err(ApiError::internal("domain mismatch")),
    }
}

/// Names every face of a photo from the model's gallery: the lines of
/// `profundo faces identify --json`, as a list.
#[utoipa::path(post, path = "/v1/faces/{name}/identify", tag = "faces",
    params(("name" = String, Path, description = "A faces model's name"), UploadName),
    request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, body = Vec<IdentifiedFace>), (status = 400, body = ErrorBody)))]
pub async fn identify(
    State(s): Shared,
    Path(name): Path<String>,
    q: Result<Query<UploadName>, QueryRejection>,
    body: Bytes,
) -> Result<Json<Vec<IdentifiedFace>>, ApiError> {
    let m = faces_model(&s, &name)?;
    Ok(Json(m.identify(&name, upload(q, body)?).await?))
}

/// Every face of a photo with its box, landmarks and embedding.
#[utoipa::path(post, path = "/v1/faces/{name}/embed", tag = "faces",
    params(("name" = String, Path, description = "A faces model's name"), UploadName),
    request_body(content = Vec<u8>, content_type = "image/png"),
    responses((status = 200, body = EmbeddedPhoto), (status = 400, body = ErrorBody)))]
pub async fn embed(
    State(s): Shared,
    Path(name): Path<String>,
    q: Result<Query<UploadName>, QueryRejection>,
    body: Bytes,
) -> Result<Json<EmbeddedPhoto>, ApiError> {
    let m = faces_model(&s, &name)?;
    Ok(Json(m.embed(upload(q, body)?).await?))
}

/// Translates a sentence (answer: one line of `profundo translate --json`) or a list of
/// them (answer: the list of lines).
#[utoipa::path(post, path = "/v1/translate/{name}", tag = "translate",
    params(("name" = String, Path, description = "A translation model's name")),
    request_body = TranslateBody,
    responses((status = 200, body = Vec<TranslatedLine>), (status = 400, body = ErrorBody)))]
pub async fn translate(
    State(s): Shared,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Served::Translate(m) = s.models.of_domain(&name, Domain::Translate)? else {
        return Err(ApiError::internal("domain mismatch"));
    };
    let b: TranslateBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(format!(
            "malformed translate request (expected {{\"text\": \"...\" or [...], \"from\": \
             \"es\", \"to\": \"en\"}}): {e}"
        ))
    })?;
    let (texts, one) = match b.text {
        Texts::One(t) => (vec![t], true),
        Texts::Many(ts) => (ts, false),
    };
    let lines = m
        .translate(Sentences {
            texts,
            from: b.from,
            to: b.to,
            beam: b.beam.unwrap_or(DEFAULT_BEAM),
        })
        .await?;
    Ok(match (one, lines.as_slice()) {
        (true, [line]) => Json(line.clone()).into_response(),
        _ => Json(lines).into_response(),
    })
}

fn recommend_model<'a>(
    s: &'a AppState,
    name: &str,
) -> Result<&'a crate::recommend::RecommendModel, ApiError> {
    match s.models.of_domain(name, Domain::Recommend)? {
        Served::Recommend(m) => Ok(m),
        _ => Err(ApiError::internal("domain mismatch")),
    }
}

/// The top K items for a user: the answer of `profundo recommend --json`.
#[utoipa::path(get, path = "/v1/recommend/{name}", tag = "recommend",
    params(("name" = String, Path, description = "A recommender's name"), UserQuery),
    responses((status = 200, body = Recommendations), (status = 400, body = ErrorBody)))]
pub async fn recommend(
    State(s): Shared,
    Path(name): Path<String>,
    q: Result<Query<UserQuery>, QueryRejection>,
) -> Result<Json<Recommendations>, ApiError> {
    let m = recommend_model(&s, &name)?;
    let q = query(q)?;
    let mut answers = m.recommend(vec![q.user], q.k.unwrap_or(DEFAULT_K)).await?;
    answers
        .pop()
        .map(Json)
        .ok_or_else(|| ApiError::internal("no recommendation"))
}

/// The items nearest an item: the answer of `profundo recommend similar --json`.
#[utoipa::path(get, path = "/v1/recommend/{name}/similar", tag = "recommend",
    params(("name" = String, Path, description = "A recommender's name"), ItemQuery),
    responses((status = 200, body = SimilarItems), (status = 404, body = ErrorBody)))]
pub async fn similar(
    State(s): Shared,
    Path(name): Path<String>,
    q: Result<Query<ItemQuery>, QueryRejection>,
) -> Result<Json<SimilarItems>, ApiError> {
    let m = recommend_model(&s, &name)?;
    let q = query(q)?;
    Ok(Json(m.similar(q.item, q.k.unwrap_or(DEFAULT_K)).await?))
}

/// Prometheus metrics (text format 0.0.4).
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, body = String, content_type = "text/plain")))]
pub async fn prometheus_metrics(State(s): Shared) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.render(),
    )
        .into_response()
}

/// This server's OpenAPI 3.1 document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations",
    responses((status = 200, body = Object)))]
pub async fn openapi_document() -> Json<utoipa::openapi::OpenApi> {
    Json(crate::openapi::document())
}
