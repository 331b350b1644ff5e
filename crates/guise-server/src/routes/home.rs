//! `GET /`: who is signed in at guise — with the impersonation banner when the session
//! is an impersonation, so the person behind it always sees so — and, for the user
//! themselves, who recently impersonated them or acted on their behalf.

use crate::error::ApiError;
use crate::flow::{page, session_cookie};
use crate::state::AppState;
use crate::web::pages::{self, Reply};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, web};
use guise_core::audit::{AuditRecord, event_type};
use guise_core::page::PageRequest;
use guise_core::store::{AuditFilter, AuditStore, ClientStore, UserStore};
use guise_flow::authorization::current_session;
use minijinja::{Value, context};

/// How many of each kind the page shows.
const RECENT: u32 = 10;

pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> Reply {
    let cookie = session_cookie(&req);
    page(state, move |s| {
        let ctx = s.flow();
        let now = ctx.now;
        let end_token = cookie.as_deref().map(crate::console::session::end_impersonation_token);
        let Some(session) = current_session(&ctx, cookie.as_deref())? else {
            return Ok(pages::render(StatusCode::OK, "home.html", context! {}));
        };
        let user = s.db.user_by_id(&session.user_id)?;
        let (impersonation, history) = match &session.impersonator_id {
            Some(id) => {
                let impersonator = s.db.user_by_id(id).map(|u| u.email).unwrap_or_else(|_| id.clone());
                let banner = context! {
                    impersonator => impersonator,
                    user => user.email.clone(),
                    reason => session.impersonation_reason.clone(),
                    ends_at => session.absolute_expires_at.to_rfc3339(),
                    minutes_left => (session.absolute_expires_at - now).num_minutes().max(0),
                    end_token => end_token,
                };
                // The user's own record of who acted as them is theirs, not the
                // impersonator's: it is not shown inside an impersonation.
                (Some(banner), None)
            }
            None => (None, Some(history(s, &user.user_id)?)),
        };
        Ok(pages::render(
            StatusCode::OK,
            "home.html",
            context! { user_email => user.email, impersonation => impersonation, history => history },
        ))
    })
    .await
}

/// The recent impersonations of `user_id` (sessions opened as them) and the recent API
/// calls made on their behalf, newest first, from the audit log.
fn history(s: &AppState, user_id: &str) -> Result<Value, ApiError> {
    let recent = PageRequest::new(Some(0), Some(RECENT));
    let opened = AuditFilter {
        event_type: Some(event_type::IMPERSONATION_REDEEMED.to_owned()),
        user_id: Some(user_id.to_owned()),
        ..AuditFilter::default()
    };
    let impersonations: Vec<Value> =
        s.db.audit_records(&opened, recent, false)?
            .items
            .into_iter()
            // `user_id` also matches the sessions this user opened as someone else.
            .filter(|r| r.event.subject.as_deref() == Some(user_id))
            .map(|r| {
                let e = &r.event;
                context! {
                    when => when(&r),
                    by => e.actor.id().map(|id| name_of(s, id)),
                    application => e.client_id.as_deref().map(|id| application_name(s, id)),
                    reason => e.details["reason"].as_str(),
                }
            })
            .collect();
    let acted = AuditFilter {
        event_type: Some(event_type::ACT_AS.to_owned()),
        on_behalf_of: Some(user_id.to_owned()),
        ..AuditFilter::default()
    };
    let act_as: Vec<Value> = s
        .db
        .audit_records(&acted, recent, false)?
        .items
        .iter()
        .map(|r| {
            let e = &r.event;
            let request = &e.details["request"];
            context! {
                when => when(r),
                by => e.actor.id().map(|id| name_of(s, id)),
                route => format!("{} {}", request["method"].as_str().unwrap_or(""), request["path"].as_str().unwrap_or("")),
            }
        })
        .collect();
    Ok(context! { impersonations => impersonations, act_as => act_as })
}

fn when(r: &AuditRecord) -> String {
    r.event.occurred_at.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// A user's email, or an application's name, or the id itself when it is gone.
fn name_of(s: &AppState, id: &str) -> String {
    match s.db.user_by_id(id) {
        Ok(user) => user.email,
        Err(_) => application_name(s, id),
    }
}

fn application_name(s: &AppState, client_id: &str) -> String {
    s.db.client_by_id(client_id).map(|c| c.name).unwrap_or_else(|_| client_id.to_owned())
}
