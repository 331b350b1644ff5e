//! guise's HTTP server: actix-web routes, the Management API, configuration, and the
//! pieces of the `guise` command line. The only crate that knows HTTP.

pub mod auth;
pub mod cli;
pub mod config;
pub mod console;
pub mod cors;
pub mod edge;
pub mod error;
pub mod flow;
pub mod keyring;
pub mod management;
pub mod management_client;
pub mod metrics;
pub mod outbox;
pub mod readiness_probe;
pub mod routes;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod tenant;
pub mod web;

pub use config::Config;
pub use startup::Application;
