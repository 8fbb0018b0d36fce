//! The limits and telemetry around every route: access logs (tower-http trace), metrics,
//! JSON error bodies, panics caught (500), a time limit (504), load shedding over the
//! concurrency limit (503 with `Retry-After`) and a body size limit (413).

use std::time::Duration;

use axum::error_handling::HandleErrorLayer;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{Next, from_fn, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use tower::ServiceBuilder;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::load_shed::LoadShedLayer;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};

use crate::error::ApiError;

/// The server's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest request body, bytes.
    pub max_body_bytes: usize,
    /// The longest a request may take.
    pub timeout: Duration,
    /// The most requests in progress at once.
    pub concurrency: usize,
}

/// `router` with every layer of this module.
pub fn apply(router: axum::Router, limits: Limits) -> axum::Router {
    let stack = ServiceBuilder::new()
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(tracing::Level::INFO))
                .on_response(DefaultOnResponse::new().level(tracing::Level::INFO)),
        )
        .layer(from_fn(crate::telemetry::track))
        .layer(from_fn_with_state(limits, json_errors))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            limits.timeout,
        ))
        .layer(HandleErrorLayer::new(overloaded))
        .layer(LoadShedLayer::new())
        .layer(GlobalConcurrencyLimitLayer::new(limits.concurrency.max(1)))
        .layer(RequestBodyLimitLayer::new(limits.max_body_bytes))
        .layer(DefaultBodyLimit::disable());
    router.layer(stack)
}

async fn overloaded(e: tower::BoxError) -> ApiError {
    if e.is::<tower::load_shed::error::Overloaded>() {
        ApiError::busy("the server is at its --concurrency limit; retry shortly")
    } else {
        ApiError::internal(format!("unhandled error: {e}"))
    }
}

fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = crate::batcher::panic_message(&*panic);
    tracing::error!("a request handler panicked: {what}");
    ApiError::internal(format!("the server failed on this request: {what}")).into_response()
}

/// Gives every error answer a JSON body `{"error": "..."}`: the ones made by the layers
/// (413, 504), axum's own rejections and unmatched routes come as plain text or empty.
async fn json_errors(State(limits): State<Limits>, req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let uri = req.uri().clone();
    let response = next.run(req).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let message = match status {
        StatusCode::PAYLOAD_TOO_LARGE => format!(
            "the request body is larger than the server's limit of {} bytes (--max-body-mb)",
            limits.max_body_bytes
        ),
        StatusCode::GATEWAY_TIMEOUT => format!(
            "the request took longer than the server's limit of {} ms (--timeout-ms)",
            limits.timeout.as_millis()
        ),
        StatusCode::NOT_FOUND => format!("no route {method} {}; see /openapi.json", uri.path()),
        StatusCode::METHOD_NOT_ALLOWED => {
            format!(
                "{method} is not allowed on {}; see /openapi.json",
                uri.path()
            )
        }
        _ => {
            let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
                .await
                .unwrap_or_default();
            let text = String::from_utf8_lossy(&body).trim().to_string();
            let reason = status.canonical_reason().unwrap_or("error");
            if text.is_empty() {
                reason.to_string()
            } else {
                format!("{reason}: {text}")
            }
        }
    };
    ApiError::new(status, message).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::{get, post};
    use tower::ServiceExt;

    fn limits() -> Limits {
        Limits {
            max_body_bytes: 16,
            timeout: Duration::from_millis(100),
            concurrency: 4,
        }
    }

    async fn boom() -> &'static str {
        panic!("kaboom")
    }

    fn app() -> axum::Router {
        let router = axum::Router::new()
            .route("/boom", get(boom))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    "late"
                }),
            )
            .route("/echo", post(|body: axum::body::Bytes| async move { body }));
        apply(router, limits())
    }

    async fn call(req: Request<Body>) -> (StatusCode, serde_json::Value) {
        let r = app().oneshot(req).await.unwrap();
        let status = r.status();
        let body = axum::body::to_bytes(r.into_body(), 1 << 20).await.unwrap();
        (status, serde_json::from_slice(&body).unwrap_or_default())
    }

    fn get_req(uri: &str) -> Request<Body> {
        Request::get(uri).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn a_panic_is_a_json_500_and_the_next_request_is_served() {
        let (status, body) = call(get_req("/boom")).await;
        assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(body["error"].as_str().unwrap().contains("kaboom"), "{body}");
        let ok = Request::post("/echo").body(Body::from("hi")).unwrap();
        assert_eq!(call(ok).await.0, StatusCode::OK);
    }

    #[tokio::test]
    async fn limits_answer_413_and_504_with_json_naming_the_option() {
        let big = Request::post("/echo")
            .body(Body::from(vec![b'x'; 100]))
            .unwrap();
        let (status, body) = call(big).await;
        assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(
            body["error"].as_str().unwrap().contains("--max-body-mb"),
            "{body}"
        );
        let (status, body) = call(get_req("/slow")).await;
        assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
        assert!(
            body["error"].as_str().unwrap().contains("--timeout-ms"),
            "{body}"
        );
        let (status, body) = call(get_req("/nowhere")).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(
            body["error"].as_str().unwrap().contains("/nowhere"),
            "{body}"
        );
    }
}
