//! guise's API tests: every test starts the real server on port 0 over a fresh database
//! and drives it over HTTP with real clients, once on SQLite and once on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, dead_code)]

mod helpers;

mod act_as;
mod auth;
mod auth0_clients;
mod auth0_lists;
mod authority;
mod authority_inputs;
mod authority_protocols;
mod browser;
mod cli;
mod clients;
mod console;
mod console_browser;
mod impersonation;
mod logs;
mod metrics;
mod notices;
mod oidc;
mod oidc_checks;
mod openapi;
mod ops;
mod proxy;
mod receivers;
mod reliability;
mod roles;
mod saml;
mod saml_samael;
mod saml_sp;
mod token;
mod token_exchange;
mod users;
mod wsfed;
