//! The `tollgate-node` binary: parse the configuration, start the agent, stop on SIGTERM/SIGINT;
//! or, with `fingerprint`, print the served certificate's fingerprint and exit.

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tollgate_node::{AgentConfig, Cli, Command, LogFormat, config::TOKEN_ENV};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if cli.command == Some(Command::Fingerprint) {
        // stdout holds only the catalog line, so scripts can append it as it is.
        return match tollgate_node::config::served_fingerprint(&cli) {
            Ok(fingerprint) => {
                println!("agent_cert_sha256 = \"{fingerprint}\"");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("tollgate-node: {e}");
                ExitCode::from(2)
            }
        };
    }
    let config = match AgentConfig::from_cli(&cli, std::env::var(TOKEN_ENV).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("tollgate-node: {e}");
            return ExitCode::from(2);
        }
    };
    let filter = match EnvFilter::try_new(&cli.log) {
        Ok(filter) => filter,
        Err(e) => {
            eprintln!(
                "tollgate-node: --log / TOLLGATE_NODE_LOG {:?} is not a valid filter: {e} (e.g. info, tollgate_node=debug)",
                cli.log
            );
            return ExitCode::from(2);
        }
    };
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }

    let running = match tollgate_node::start(config).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("cannot start: {e}");
            return ExitCode::from(1);
        }
    };
    let signal = shutdown_signal().await;
    tracing::info!(signal, "shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

/// Waits for SIGTERM or SIGINT and names it.
async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        },
        _ => {
            let _ = tokio::signal::ctrl_c().await;
            "SIGINT"
        }
    }
}
