//! `payment-emulator`: runs the Crypto Pay and YooKassa emulators as a process.
//!
//! Why this exists: besides in-process use from tests, a person can click through payments by
//! hand, and other processes (a bot under test, a benchmark) can use the emulator over HTTP. It
//! prints the API URLs and credentials, and stops cleanly on SIGINT or SIGTERM.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use payment_emulator::config::{
    DEFAULT_CRYPTOPAY_TOKEN, DEFAULT_YOOKASSA_SECRET_KEY, DEFAULT_YOOKASSA_SHOP_ID,
};
use payment_emulator::{Network, PaymentEmulator, PaymentEmulatorConfig, RunningPaymentEmulator};

/// Local emulators of the Crypto Pay and YooKassa APIs.
#[derive(Debug, Parser)]
#[command(name = "payment-emulator", version)]
struct Args {
    /// Address to listen on.
    #[arg(
        long,
        default_value = "127.0.0.1:8082",
        env = "PAYMENT_EMULATOR_LISTEN"
    )]
    listen: SocketAddr,

    /// Base URL written into payment links (default: http://<listen>).
    #[arg(long)]
    public_url: Option<String>,

    /// Crypto Pay app token.
    #[arg(long, default_value = DEFAULT_CRYPTOPAY_TOKEN)]
    cryptopay_token: String,

    /// Emulate Crypto Pay's mainnet instead of its testnet.
    #[arg(long)]
    mainnet: bool,

    /// Where Crypto Pay webhooks are POSTed.
    #[arg(long)]
    cryptopay_webhook: Option<String>,

    /// YooKassa shop id.
    #[arg(long, default_value = DEFAULT_YOOKASSA_SHOP_ID)]
    yookassa_shop_id: String,

    /// YooKassa secret key.
    #[arg(long, default_value = DEFAULT_YOOKASSA_SECRET_KEY)]
    yookassa_secret_key: String,

    /// Where YooKassa notifications are POSTed.
    #[arg(long)]
    yookassa_webhook: Option<String>,

    /// Require a 54-FZ receipt on every YooKassa payment.
    #[arg(long)]
    fiscalization: bool,

    /// Log filter (RUST_LOG syntax).
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    log: String,
}

impl Args {
    fn into_config(self) -> PaymentEmulatorConfig {
        let mut config = PaymentEmulatorConfig {
            listen: self.listen,
            public_url: self.public_url,
            ..PaymentEmulatorConfig::default()
        };
        config.cryptopay.token = self.cryptopay_token;
        config.cryptopay.network = if self.mainnet {
            Network::Mainnet
        } else {
            Network::Testnet
        };
        config.cryptopay.webhook_url = self.cryptopay_webhook;
        config.yookassa.shop_id = self.yookassa_shop_id;
        config.yookassa.secret_key = self.yookassa_secret_key;
        config.yookassa.webhook_url = self.yookassa_webhook;
        config.yookassa.fiscalization_enabled = self.fiscalization;
        config
    }
}

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

/// Prints a line to stdout, ignoring a closed pipe.
fn say(line: &str) {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    let _ = writeln!(stdout, "{line}");
    let _ = stdout.flush();
}

fn announce(emulator: &RunningPaymentEmulator) {
    say(&format!(
        "payment-emulator listening on {}",
        emulator.addr()
    ));
    say(&format!(
        "  Crypto Pay: {}  (token {})",
        emulator.cryptopay_api_url(),
        emulator.cryptopay_token()
    ));
    say(&format!(
        "  YooKassa:   {}  (shop {}, key {})",
        emulator.yookassa_api_url(),
        emulator.yookassa_shop_id(),
        emulator.yookassa_secret_key()
    ));
    say(&format!(
        "  Control:    {}/control/...",
        emulator.base_url()
    ));
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
    let emulator = match PaymentEmulator::start(args.into_config()).await {
        Ok(emulator) => emulator,
        Err(error) => {
            eprintln!("payment-emulator: {error}");
            return ExitCode::FAILURE;
        }
    };
    let signal = match shutdown_signal() {
        Ok(signal) => signal,
        Err(error) => {
            eprintln!("payment-emulator: cannot install signal handlers: {error}");
            emulator.shutdown().await;
            return ExitCode::FAILURE;
        }
    };
    announce(&emulator);
    signal.await;
    say("payment-emulator: shutting down");
    emulator.shutdown().await;
    ExitCode::SUCCESS
}
