//! The `guise` binary.

use clap::Parser;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    guise_server::cli::run(guise_server::cli::Cli::parse()).await
}
