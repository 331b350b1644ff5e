//! `/healthz` (the process answers) and `/readyz` (the database answers and takes writes).

use crate::state::AppState;
use actix_web::{HttpResponse, get, web};
use serde_json::json;

#[get("/healthz")]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

#[get("/readyz")]
pub async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let state = state.into_inner();
    let ready =
        state.blocking(|s| Ok::<_, crate::error::ApiError>(s.db.ready())).await.unwrap_or_else(|e| Err(e.to_string()));
    match ready {
        Ok(()) => HttpResponse::Ok().json(json!({ "status": "ready" })),
        Err(cause) => {
            tracing::warn!(%cause, "not ready");
            HttpResponse::ServiceUnavailable().json(json!({ "status": "unavailable", "reason": "database" }))
        }
    }
}
