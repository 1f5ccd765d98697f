//! `telegram-emulator`: runs the Telegram Bot API emulator as a process.
//!
//! Why this exists: besides in-process use from tests, the emulator serves `tollgate sandbox`,
//! benchmarks that want the load source in another process, and people who want to click through
//! the bot in the web page. It prints the Bot API URL and the web page URL, and stops cleanly on
//! SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use telegram_emulator::config::{BotConfig, DEFAULT_BOT_TOKEN, EmulatorConfig, RateLimitConfig};
use telegram_emulator::{Emulator, RunningEmulator};

/// A local Telegram Bot API emulator (test double, load source, sandbox back-end).
#[derive(Debug, Parser)]
#[command(name = "telegram-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:8081",
        env = "TELEGRAM_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,

    /// Bot token(s), `<bot id>:<secret>`; repeat for several bots. The first is the default bot.
    #[arg(long = "token", env = "TELEGRAM_EMULATOR_TOKEN", value_delimiter = ',')]
    tokens: Vec<String>,

    /// Username of the (first) bot.
    #[arg(long, default_value = "tollgate_test_bot")]
    bot_username: String,

    /// Display name of the (first) bot.
    #[arg(long, default_value = "Tollgate")]
    bot_name: String,

    /// Switch off Telegram's flood limits (pure throughput benchmarks).
    #[arg(long)]
    no_rate_limits: bool,

    /// Messages per second to one private chat.
    #[arg(long, default_value_t = 1.0)]
    per_chat_rate: f64,

    /// Messages a private chat accepts at once before the per-chat rate applies.
    #[arg(long, default_value_t = 3.0)]
    per_chat_burst: f64,

    /// Messages per second overall.
    #[arg(long, default_value_t = 30.0)]
    global_rate: f64,

    /// Messages per minute to one group.
    #[arg(long, default_value_t = 20.0)]
    group_per_minute: f64,

    /// Seconds a webhook may take to answer before the delivery counts as failed.
    #[arg(long, default_value_t = 60)]
    webhook_timeout_secs: u64,

    /// Backoff cap of webhook retries, `MIN,MAX` seconds (Telegram: 60,120).
    #[arg(long, value_delimiter = ',', num_args = 2, default_values_t = [60, 120])]
    webhook_backoff_cap_secs: Vec<u32>,

    /// Provider token(s) accepted for card (non-XTR) invoices.
    #[arg(long = "provider-token", value_delimiter = ',')]
    provider_tokens: Vec<String>,

    /// Messages kept per chat transcript.
    #[arg(long, default_value_t = 500)]
    transcript_limit: usize,

    /// Seed of the emulator's random numbers.
    #[arg(long)]
    seed: Option<u64>,

    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

impl Args {
    fn into_config(self) -> EmulatorConfig {
        let mut config = EmulatorConfig {
            listen: self.listen,
            ..EmulatorConfig::default()
        };
        let tokens = if self.tokens.is_empty() {
            vec![DEFAULT_BOT_TOKEN.to_owned()]
        } else {
            self.tokens
        };
        config.bots = tokens
            .into_iter()
            .enumerate()
            .map(|(i, token)| {
                let bot = BotConfig::new(token);
                if i == 0 {
                    bot.username(self.bot_username.clone())
                        .first_name(self.bot_name.clone())
                } else {
                    bot
                }
            })
            .collect();
        config.rate_limits = if self.no_rate_limits {
            RateLimitConfig::disabled()
        } else {
            RateLimitConfig {
                per_chat_per_sec: self.per_chat_rate,
                per_chat_burst: self.per_chat_burst,
                global_per_sec: self.global_rate,
                global_burst: self.global_rate,
                group_per_min: self.group_per_minute,
                group_burst: self.group_per_minute,
                ..RateLimitConfig::default()
            }
        };
        config.webhook.response_timeout = Duration::from_secs(self.webhook_timeout_secs);
        if let [lo, hi] = self.webhook_backoff_cap_secs[..] {
            config.webhook.max_backoff_secs = (lo, hi);
        }
        if !self.provider_tokens.is_empty() {
            config.payment_provider_tokens = self.provider_tokens;
        }
        config.limits.transcript_messages_per_chat = self.transcript_limit;
        if let Some(seed) = self.seed {
            config.seed = seed;
        }
        config
    }
}

/// Installs the SIGINT/SIGTERM handlers right away (before the URLs are printed, so a supervisor
/// that signals as soon as it reads them gets a clean shutdown) and returns a future that
/// completes on the first signal.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupt = signal(SignalKind::interrupt())?;
        let mut terminate = signal(SignalKind::terminate())?;
        Ok(async move {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Prints a line to stdout, ignoring a closed pipe (e.g. output piped to `head`).
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn announce(emulator: &RunningEmulator) {
    say(&format!(
        "telegram-emulator listening on {}",
        emulator.addr()
    ));
    say(&format!(
        "  Bot API:   {}  (token {})",
        emulator.api_url(),
        emulator.token()
    ));
    say(&format!("  Bot URL:   {}/getMe", emulator.bot_url()));
    say(&format!("  Web chat:  {}", emulator.web_url()));
    say(&format!("  Control:   {}/control/...", emulator.api_url()));
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let config = args.into_config();
    let emulator = match Emulator::start(config).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("telegram-emulator: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signal = match shutdown_signal() {
        Ok(signal) => signal,
        Err(error) => {
            eprintln!("telegram-emulator: cannot install signal handlers: {error}");
            emulator.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    announce(&emulator);
    signal.await;
    say("telegram-emulator: shutting down");
    emulator.shutdown().await;
    ExitCode::SUCCESS
}
