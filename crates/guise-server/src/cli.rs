//! The `guise` command line: serve, migrate, init, users, clients, keys, audit.

use crate::config::Config;
use crate::error::ApiError;
use crate::startup::{Application, StartupError, build_state};
use crate::state::AppState;
use crate::tenant::init_tenant;
use clap::{Parser, Subcommand};
use guise_core::SystemClock;
use guise_core::audit::{Actor, AuditEvent, event_type};
use guise_core::client::{AppType, Client};
use guise_core::ids::{new_client_id, new_user_id};
use guise_core::store::{AuditStore, UserStore};
use guise_core::user::{NewUser, validate_email};
use guise_store::password::hash_password;
use serde_json::json;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "guise", version, about = "guise identity provider")]
pub struct Cli {
    /// Configuration file (TOML); GUISE_* environment variables override it.
    #[arg(long, global = true, env = "GUISE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (creates the schema and the first signing key if needed).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Ask the running server on `listen` whether it is ready (`GET /readyz`); exits 0
    /// when it answers 200. For container healthchecks: the image has no curl.
    Ready,
    /// Create the first administrator and a management client (idempotent); prints JSON.
    Init {
        #[arg(long, env = "GUISE_ADMIN_EMAIL")]
        admin_email: String,
        #[arg(long, env = "GUISE_ADMIN_PASSWORD")]
        admin_password: String,
    },
    /// Manage users.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Manage clients (applications).
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Mint an impersonation URL (for support staff at a shell); prints the URL.
    Impersonate {
        /// The user to become.
        #[arg(long)]
        user: String,
        /// The person responsible (must hold impersonate:users).
        #[arg(long)]
        impersonator: String,
        #[arg(long)]
        client: String,
        #[arg(long, default_value = "oauth2")]
        protocol: String,
        /// Why (a ticket reference or a sentence, at most 500 characters), recorded in the
        /// session and every event; required unless impersonation_require_reason is off.
        #[arg(long)]
        reason: Option<String>,
        /// URL lifetime in seconds.
        #[arg(long)]
        ttl: Option<i64>,
        #[arg(long)]
        callback_url: Option<String>,
    },
    /// Inspect the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, env = "GUISE_USER_PASSWORD")]
        password: Option<String>,
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientsCommand {
    Create {
        #[arg(long)]
        name: String,
        /// regular_web, spa, native or non_interactive.
        #[arg(long, default_value = "regular_web")]
        app_type: String,
        /// A registered callback URL (repeatable).
        #[arg(long = "callback")]
        callbacks: Vec<String>,
        /// Grant this (machine) client every Management API scope.
        #[arg(long)]
        management: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Publish a new signing key; the old one verifies until its tokens expire.
    Rotate,
    /// A new bewit key for impersonation URLs; URLs already minted stay valid until they expire.
    RotateBewit,
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Verify the hash chain; exits non-zero naming the first bad row.
    Verify,
}

fn offline_state(config: Config) -> Result<AppState, StartupError> {
    let issuer = match &config.issuer {
        Some(issuer) => issuer.clone(),
        None => format!("http://{}/", config.listen),
    };
    build_state(config, &issuer, Arc::new(SystemClock))
}

fn print_json(value: &impl serde::Serialize) {
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("guise: {message}");
    ExitCode::FAILURE
}

pub async fn run(cli: Cli) -> ExitCode {
    let config = match Config::load(cli.config.as_deref()) {
        Ok(config) => config,
        Err(e) => return fail(e),
    };
    crate::telemetry::init(config.log_format == "json");
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Ready => {
            match tokio::task::spawn_blocking(move || crate::readiness_probe::probe(&config.listen)).await {
                Ok(Ok(())) => ExitCode::SUCCESS,
                Ok(Err(e)) => fail(e),
                Err(e) => fail(e),
            }
        }
        command => match tokio::task::spawn_blocking(move || offline(config, command)).await {
            Ok(code) => code,
            Err(e) => fail(e),
        },
    }
}

async fn serve(config: Config) -> ExitCode {
    let app = match Application::build(config).await {
        Ok(app) => app,
        Err(e) => return fail(e),
    };
    tracing::info!(port = app.port(), issuer = %app.state().settings.issuer, "guise listening");
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e),
    }
}

fn offline(config: Config, command: Command) -> ExitCode {
    let state = match offline_state(config) {
        Ok(state) => state,
        Err(e) => return fail(e),
    };
    let result = match command {
        Command::Serve | Command::Ready => Ok(()),
        Command::Migrate => {
            println!("migrations applied");
            Ok(())
        }
        Command::Init { admin_email, admin_password } => init_tenant(&state, &admin_email, &admin_password)
            .map(|outcome| print_json(&serde_json::to_value(outcome).unwrap_or_default())),
        Command::Users { command: UsersCommand::Create { email, password, name } } => {
            create_user(&state, &email, password.as_deref(), name)
        }
        Command::Clients { command: ClientsCommand::Create { name, app_type, callbacks, management } } => {
            create_client(&state, name, &app_type, callbacks, management)
        }
        Command::Keys { command: KeysCommand::Rotate } => {
            // Old keys stay published for the longest lifetime of a token they signed.
            let overlap = state.settings.access_token_lifetime.max(state.settings.id_token_lifetime);
            crate::keyring::rotate(&state.db, state.clock.now(), overlap)
                .map(|keys| {
                    let active: Vec<_> = keys.iter().map(|k| json!({ "kid": k.kid, "alg": k.alg })).collect();
                    print_json(&json!({ "active": active }))
                })
                .map_err(|e| ApiError::internal(&e))
        }
        Command::Keys { command: KeysCommand::RotateBewit } => {
            guise_flow::bewit_keys::rotate(&state.db, state.clock.now())
                .map(|kid| print_json(&json!({ "bewit_key_id": kid })))
                .map_err(ApiError::from)
        }
        Command::Impersonate { user, impersonator, client, protocol, reason, ttl, callback_url } => {
            let request = guise_flow::impersonation::MintRequest {
                target_user_id: user,
                impersonator_id: Some(impersonator),
                client_id: client,
                protocol,
                callback_url,
                reason,
                ttl,
                ..Default::default()
            };
            let minter = guise_flow::impersonation::Minter::Operator;
            match guise_flow::impersonation::mint(&state.flow(), minter, true, request, None, None) {
                Ok(url) => {
                    println!("{url}");
                    Ok(())
                }
                Err(guise_flow::FlowError::Refused { message, .. }) => Err(ApiError::bad_request(message)),
                Err(e) => Err(e.into()),
            }
        }
        Command::Audit { command: AuditCommand::Verify } => return verify_audit(&state),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(e.message),
    }
}

fn cli_event(state: &AppState, description: &str) -> AuditEvent {
    AuditEvent::new(event_type::API_OPERATION, state.clock.now(), Actor::System, description)
        .details(json!({ "request": { "method": "CLI" } }))
}

fn create_user(state: &AppState, email: &str, password: Option<&str>, name: Option<String>) -> Result<(), ApiError> {
    let email = validate_email(email)?;
    let password_hash = password.map(hash_password).transpose().map_err(|e| ApiError::bad_request(e.to_string()))?;
    let named = NewUser::named_after_email(new_user_id(), &email, state.clock.now());
    let new = NewUser { name: name.or(named.name.clone()), password_hash, ..named };
    let user_id = new.user_id.clone();
    let user = state.db.create_user(new, cli_event(state, "Create a user").subject(user_id))?;
    print_json(&crate::management::UserView::from(user));
    Ok(())
}

fn create_client(
    state: &AppState,
    name: String,
    app_type: &str,
    callbacks: Vec<String>,
    management: bool,
) -> Result<(), ApiError> {
    let app_type = AppType::parse(app_type).ok_or_else(|| ApiError::bad_request("unknown app type"))?;
    let policy = guise_core::client::UrlPolicy::redirect(state.config.allow_insecure_http_urls);
    guise_core::client::validate_urls("callbacks", &callbacks, policy)?;
    let now = state.clock.now();
    let client = Client { callbacks, ..Client::new(new_client_id(), name, app_type, now) };
    let (client, secret) = crate::management::create_client(&state.db, client, cli_event(state, "Create a client"))?;
    if management {
        let audience = state.settings.management_audience();
        crate::management_client::ensure_management_grant(
            state,
            &client.client_id,
            &audience,
            cli_event(state, "Grant every Management API scope"),
        )?;
    }
    print_json(&crate::management::ClientView::new(client, secret));
    Ok(())
}

fn verify_audit(state: &AppState) -> ExitCode {
    match state.db.verify_chain() {
        Ok(Ok(rows)) => {
            println!("audit chain intact: {rows} rows verified");
            ExitCode::SUCCESS
        }
        Ok(Err(broken)) => fail(format!("audit chain broken: {broken}")),
        Err(e) => fail(e),
    }
}
