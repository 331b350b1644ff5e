//! The support console at `/console`: server-rendered pages where support staff find a
//! user, impersonate them with a reason, watch and end impersonations, and read the
//! audit log.
//!
//! The console is a first-party OIDC client of guise itself (`client.rs`: authorization
//! code with PKCE against `/authorize` and `/oauth/token`). Its session (`session.rs`)
//! holds the agent's own Management API token, and every page and action is a
//! Management API call made with that token over loopback HTTP (`api.rs`): the API's
//! scopes, the authority ceiling and its audit apply to the console exactly as to any
//! other caller. The console decides nothing about permissions itself; it only hides
//! buttons the API would refuse.

pub mod api;
pub mod client;
pub mod session;
pub mod view;

mod agent;
mod impersonations;
mod logs;
mod sign_in;
mod users;

use actix_web::web;

/// The console's routes, all under `/console`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/console", web::get().to(users::search))
        .route("/console/", web::get().to(users::search))
        .route("/console/console.css", web::get().to(view::stylesheet))
        .route("/console/login", web::get().to(sign_in::login))
        .route("/console/callback", web::get().to(sign_in::callback))
        .route("/console/logout", web::post().to(sign_in::logout))
        .route("/console/users/{user_id}", web::get().to(users::show))
        .route("/console/users/{user_id}/impersonate", web::post().to(users::impersonate))
        .route("/console/impersonations", web::get().to(impersonations::list))
        .route("/console/impersonations/{sid}/end", web::post().to(impersonations::end))
        .route("/console/end-impersonation", web::post().to(impersonations::end_current))
        .route("/console/logs", web::get().to(logs::list));
}
