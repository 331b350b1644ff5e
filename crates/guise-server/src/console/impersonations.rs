//! Active impersonations: the list (`GET /api/v2/impersonations`), ending one
//! (`DELETE /api/v2/impersonations/{sid}`), and "End impersonation" from inside one.

use super::agent;
use super::api::segment;
use super::session::{self, CsrfForm};
use super::view;
use crate::error::ApiError;
use crate::flow::session_cookie;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::store::SessionStore;
use guise_flow::authorization::current_session;
use serde::Deserialize;
use serde_json::json;

#[derive(Debug, Deserialize)]
pub struct ListParams {
    /// `mine`: only the agent's own.
    show: Option<String>,
    page: Option<u32>,
}

/// `GET /console/impersonations`
pub async fn list(req: HttpRequest, state: web::Data<AppState>, params: web::Query<ListParams>) -> HttpResponse {
    let agent = agent::load_or_return!(&req, &state);
    let mine = params.show.as_deref() == Some("mine");
    let page = params.page.unwrap_or(0).min(10_000);
    let mut query =
        vec![("page", page.to_string()), ("per_page", "50".to_owned()), ("include_totals", "true".to_owned())];
    if mine {
        query.push(("impersonator_id", agent.user_id.clone()));
    }
    let (status, sessions, error) = match agent.api.get("/api/v2/impersonations", &query).await {
        Ok(body) => (StatusCode::OK, body["impersonations"].clone(), None),
        Err(failure) => (failure.status_code(), json!([]), Some(failure.message)),
    };
    let ended = req.query_string().contains("ended=1");
    view::page(
        status,
        "console/impersonations.html",
        minijinja::context! {
            agent => agent.context(),
            nav => "impersonations",
            sessions => view::data(&sessions),
            mine => mine,
            error => error,
            ended => ended,
        },
    )
}

/// `POST /console/impersonations/{sid}/end`: End now (the session and its tokens).
pub async fn end(
    req: HttpRequest,
    state: web::Data<AppState>,
    sid: web::Path<String>,
    form: web::Form<CsrfForm>,
) -> HttpResponse {
    let agent = agent::load_or_return!(&req, &state);
    if let Some(refused) = agent.csrf_refusal(&form.csrf) {
        return refused;
    }
    match agent.api.delete(&format!("/api/v2/impersonations/{}", segment(&sid))).await {
        Ok(()) => view::redirect("/console/impersonations?ended=1", vec![]),
        Err(failure) => view::message(
            failure.status_code(),
            "The impersonation was not ended",
            &format!("guise refused: {}", failure.message),
            Some(agent.context()),
        ),
    }
}

#[derive(Debug, Deserialize)]
pub struct EndForm {
    #[serde(default)]
    token: String,
}

/// `POST /console/end-impersonation`: from inside an impersonation (the banner on
/// guise's own pages), the person in it ends it — like logging out, it needs no
/// permission, only this browser's impersonation session and the form's token. The
/// session ends with its tokens, audited as an impersonation ended by the impersonator,
/// and the agent returns to the console.
pub async fn end_current(req: HttpRequest, state: web::Data<AppState>, form: web::Form<EndForm>) -> HttpResponse {
    let Some(cookie) = session_cookie(&req) else {
        return view::message(
            StatusCode::BAD_REQUEST,
            "No impersonation here",
            "This browser is in no impersonation session.",
            None,
        );
    };
    if !session::tokens_match(&session::end_impersonation_token(&cookie), &form.token) {
        return view::message(StatusCode::FORBIDDEN, "This form has expired", "Reload the page and try again.", None);
    }
    let meta = crate::auth::RequestMeta::from_request(&req, state.config.trust_forwarded_for);
    let ended = state
        .into_inner()
        .blocking(move |s| {
            let ctx = s.flow();
            let now = ctx.now;
            let Some(session) = current_session(&ctx, Some(&cookie))? else { return Ok::<_, ApiError>(false) };
            let Some(impersonator) = session.impersonator_id.clone() else { return Ok(false) };
            let event = AuditEvent::new(
                event_type::IMPERSONATION_ENDED,
                now,
                Actor::User(impersonator.clone()),
                "Impersonation session ended from inside it",
            )
            .source_ip(meta.source_ip.clone())
            .subject(session.user_id.clone())
            .details(json!({ "sid": session.sid, "reason": "ended_by_impersonator" }))
            .caused_by(&session);
            s.db.end_session(&session.sid, now, event)?;
            Ok(true)
        })
        .await;
    match ended {
        Ok(true) => view::redirect(
            "/console/impersonations?ended=1",
            vec![crate::web::cookies::removal(crate::web::cookies::SESSION_COOKIE, state_secure(&req))],
        ),
        Ok(false) => view::message(
            StatusCode::BAD_REQUEST,
            "No impersonation here",
            "This browser's session is not an impersonation (or it has ended).",
            None,
        ),
        Err(e) => {
            view::message(e.status, "The impersonation was not ended", "The request could not be completed", None)
        }
    }
}

fn state_secure(req: &HttpRequest) -> bool {
    req.app_data::<web::Data<AppState>>().is_some_and(|s| s.secure_cookies())
}
