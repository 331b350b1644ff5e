//! Structured logs with `tracing`: human-readable by default, JSON with
//! `log_format = "json"`; the level comes from `GUISE_LOG` (or `RUST_LOG`).

use tracing_subscriber::EnvFilter;

pub fn init(json: bool) {
    let filter = std::env::var("GUISE_LOG")
        .ok()
        .and_then(|v| EnvFilter::try_new(v).ok())
        .or_else(|| EnvFilter::try_from_default_env().ok())
        .unwrap_or_else(|| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second initialisation (tests) is harmless: keep the first.
    let _ = if json { builder.json().try_init() } else { builder.try_init() };
}
