//! The OpenAPI document of the server, derived from the handlers' annotations and the
//! request and answer types (never written by hand).

use utoipa::OpenApi;

use crate::routes;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "profundo serve",
        description = "Every trained profundo model behind one HTTP server: the Open Inference \
                       Protocol v2 for all models, plain routes per domain that answer what the \
                       CLI's --json prints, health probes and Prometheus metrics."
    ),
    paths(
        routes::server_metadata,
        routes::live,
        routes::ready,
        routes::model_metadata,
        routes::model_ready,
        routes::infer,
        routes::recognize,
        routes::identify,
        routes::embed,
        routes::translate,
        routes::recommend,
        routes::similar,
        routes::classify_sign,
        routes::prometheus_metrics,
        routes::openapi_document,
    )
)]
struct ApiDoc;

/// The document served at `/openapi.json`.
pub fn document() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    doc.info.version = crate::VERSION.to_string();
    doc
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_route_of_the_router_is_in_the_document() {
        let doc = super::document();
        let json = serde_json::to_value(&doc).unwrap();
        let paths = json["paths"].as_object().unwrap();
        for p in [
            "/v2",
            "/v2/health/live",
            "/v2/health/ready",
            "/v2/models/{name}",
            "/v2/models/{name}/ready",
            "/v2/models/{name}/infer",
            "/v1/speech/{name}/recognize",
            "/v1/faces/{name}/identify",
            "/v1/faces/{name}/embed",
            "/v1/translate/{name}",
            "/v1/recommend/{name}",
            "/v1/recommend/{name}/similar",
            "/v1/signs/{name}/classify",
            "/metrics",
            "/openapi.json",
        ] {
            assert!(
                paths.contains_key(p),
                "{p} missing from the OpenAPI document"
            );
        }
        let schemas = json["components"]["schemas"].as_object().unwrap();
        for s in [
            "InferRequest",
            "InferResponse",
            "Recognition",
            "TranslatedLine",
            "Recommendations",
            "SignAnswer",
        ] {
            assert!(schemas.contains_key(s), "schema {s} missing");
        }
    }
}
