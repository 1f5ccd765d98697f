//! Configuration: command-line flags with environment fallbacks, checked before anything starts.
//!
//! Why so strict: the agent holds the keys to every user's access on its server. No secret
//! has a default: the token comes from `TOLLGATE_NODE_TOKEN` or a file, never from the command
//! line (visible in `ps`) and never appears in logs or errors. Every bad value is reported with
//! the flag and environment variable to fix.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use xray_api::DialectChoice;

use crate::auth::Token;
use crate::pin::CertFingerprint;
use crate::tls::{TlsFiles, TlsSetting};

/// Environment variable holding the token (alternative: `--token-file`).
pub const TOKEN_ENV: &str = "TOLLGATE_NODE_TOKEN";

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The command line of `tollgate-node`.
#[derive(Debug, Parser)]
#[command(
    name = "tollgate-node",
    version,
    about = "Tollgate node agent: provisions VLESS users on the local Xray/V2Ray core through an authenticated REST API",
    after_help = "The bearer token comes from TOLLGATE_NODE_TOKEN or --token-file (at least 32 characters; `openssl rand -hex 32`).\nWithout --tls-cert/--tls-key the agent serves HTTPS with a self-signed certificate it creates next to --state-file on first start; `tollgate-node fingerprint` prints the agent_cert_sha256 line for the service's catalog."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Address the REST API listens on.
    #[arg(long, env = "TOLLGATE_NODE_LISTEN", default_value = "127.0.0.1:9090")]
    pub listen: SocketAddr,
    /// The core's API address (host:port of its dokodemo-door `api` inbound).
    #[arg(
        long,
        env = "TOLLGATE_NODE_CORE_API",
        default_value = "127.0.0.1:10085"
    )]
    pub core_api: String,
    /// Tag of the VLESS inbound whose users the agent manages.
    #[arg(long, env = "TOLLGATE_NODE_INBOUND_TAG", default_value = "vless-in")]
    pub inbound_tag: String,
    /// The core's API dialect: auto, xray or v2ray.
    #[arg(long, env = "TOLLGATE_NODE_DIALECT", default_value = "auto")]
    pub dialect: DialectChoice,
    /// File holding the bearer token (instead of TOLLGATE_NODE_TOKEN).
    #[arg(long, env = "TOLLGATE_NODE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// SQLite file with the agent's users and traffic totals; the self-signed certificate
    /// is kept in the same directory.
    #[arg(
        long,
        global = true,
        env = "TOLLGATE_NODE_STATE_FILE",
        default_value = "/var/lib/tollgate-node/state.db"
    )]
    pub state_file: PathBuf,
    /// PEM certificate chain to serve instead of the self-signed one (needs --tls-key).
    #[arg(long, global = true, env = "TOLLGATE_NODE_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, global = true, env = "TOLLGATE_NODE_TLS_KEY")]
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP: only on loopback or behind a tunnel (the token would cross the
    /// network in clear text).
    #[arg(long, global = true, env = "TOLLGATE_NODE_PLAINTEXT")]
    pub plaintext: bool,
    /// Log format.
    #[arg(
        long,
        env = "TOLLGATE_NODE_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    pub log_format: LogFormat,
    /// Log filter (tracing-subscriber syntax, e.g. `info` or `tollgate_node=debug`).
    #[arg(long, env = "TOLLGATE_NODE_LOG", default_value = "info")]
    pub log: String,
    /// Deadline of each core API call, in milliseconds.
    #[arg(long, env = "TOLLGATE_NODE_CORE_TIMEOUT_MS", default_value_t = 5000)]
    pub core_timeout_ms: u64,
    /// How often the core is checked (uptime, inbound, restart sentinel), in milliseconds.
    #[arg(long, env = "TOLLGATE_NODE_CHECK_INTERVAL_MS", default_value_t = 5000)]
    pub check_interval_ms: u64,
    /// How often traffic counters are collected, in milliseconds (also on every list).
    #[arg(
        long,
        env = "TOLLGATE_NODE_TRAFFIC_INTERVAL_MS",
        default_value_t = 60000
    )]
    pub traffic_interval_ms: u64,
    /// Most core API calls in flight during bulk operations.
    #[arg(long, env = "TOLLGATE_NODE_CORE_CONCURRENCY", default_value_t = 32)]
    pub core_concurrency: usize,
}

/// What to do instead of serving.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print the SHA-256 fingerprint of the certificate the agent serves, as the line to put
    /// into the node's entry of the service's catalog (`agent_cert_sha256 = "…"`).
    Fingerprint,
}

/// A configuration problem, worded for the operator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Everything the agent needs to run (built from [`Cli`], or directly by tests).
#[derive(Clone, Debug)]
pub struct AgentConfig {
    pub listen: SocketAddr,
    pub core_api: String,
    pub inbound_tag: String,
    pub dialect: DialectChoice,
    pub token: Token,
    pub state_file: PathBuf,
    pub tls: TlsSetting,
    pub core_call_timeout: Duration,
    pub core_connect_timeout: Duration,
    pub check_interval: Duration,
    pub traffic_interval: Duration,
    pub core_concurrency: usize,
    /// How long shutdown waits for requests in flight.
    pub shutdown_grace: Duration,
}

impl AgentConfig {
    /// A configuration with the defaults of the command line, except TLS: plain HTTP on
    /// loopback, for an agent in the same process or host as its caller (tests, sandbox).
    pub fn new(
        core_api: impl Into<String>,
        inbound_tag: impl Into<String>,
        token: Token,
        state_file: PathBuf,
    ) -> Self {
        AgentConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 9090)),
            core_api: core_api.into(),
            inbound_tag: inbound_tag.into(),
            dialect: DialectChoice::Auto,
            token,
            state_file,
            tls: TlsSetting::Off,
            core_call_timeout: Duration::from_secs(5),
            core_connect_timeout: Duration::from_secs(3),
            check_interval: Duration::from_secs(5),
            traffic_interval: Duration::from_secs(60),
            core_concurrency: 32,
            shutdown_grace: Duration::from_secs(10),
        }
    }

    /// Checks the command line and loads the token. `token_env` is the value of
    /// `TOLLGATE_NODE_TOKEN` (passed in so tests need not touch the environment).
    pub fn from_cli(cli: &Cli, token_env: Option<String>) -> Result<AgentConfig, ConfigError> {
        let token = load_token(token_env, cli.token_file.as_ref())?;
        if cli.inbound_tag.trim().is_empty() {
            return Err(ConfigError(
                "--inbound-tag / TOLLGATE_NODE_INBOUND_TAG is empty: give the tag of the core's VLESS inbound".into(),
            ));
        }
        check_core_api(&cli.core_api)?;
        let tls = tls_setting(cli)?;
        let millis = |value: u64, min: u64, max: u64, name: &str| {
            if (min..=max).contains(&value) {
                Ok(Duration::from_millis(value))
            } else {
                Err(ConfigError(format!(
                    "{name} is {value}: use a value from {min} to {max} (milliseconds)"
                )))
            }
        };
        let core_call_timeout = millis(
            cli.core_timeout_ms,
            100,
            120_000,
            "--core-timeout-ms / TOLLGATE_NODE_CORE_TIMEOUT_MS",
        )?;
        let check_interval = millis(
            cli.check_interval_ms,
            100,
            3_600_000,
            "--check-interval-ms / TOLLGATE_NODE_CHECK_INTERVAL_MS",
        )?;
        let traffic_interval = millis(
            cli.traffic_interval_ms,
            100,
            86_400_000,
            "--traffic-interval-ms / TOLLGATE_NODE_TRAFFIC_INTERVAL_MS",
        )?;
        if !(1..=1024).contains(&cli.core_concurrency) {
            return Err(ConfigError(format!(
                "--core-concurrency / TOLLGATE_NODE_CORE_CONCURRENCY is {}: use 1 to 1024",
                cli.core_concurrency
            )));
        }
        Ok(AgentConfig {
            listen: cli.listen,
            core_api: cli.core_api.trim().to_owned(),
            inbound_tag: cli.inbound_tag.trim().to_owned(),
            dialect: cli.dialect,
            token,
            state_file: cli.state_file.clone(),
            tls,
            core_call_timeout,
            core_connect_timeout: core_call_timeout.min(Duration::from_secs(3)),
            check_interval,
            traffic_interval,
            core_concurrency: cli.core_concurrency,
            shutdown_grace: Duration::from_secs(10),
        })
    }
}

/// How the command line asks the API to be served.
pub fn tls_setting(cli: &Cli) -> Result<TlsSetting, ConfigError> {
    match (&cli.tls_cert, &cli.tls_key, cli.plaintext) {
        (Some(_), Some(_), true) => Err(ConfigError(
            "--plaintext (TOLLGATE_NODE_PLAINTEXT) and --tls-cert/--tls-key are both set: keep only one".into(),
        )),
        (Some(cert), Some(key), false) => Ok(TlsSetting::Files(TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        })),
        (None, None, true) => Ok(TlsSetting::Off),
        (None, None, false) => Ok(TlsSetting::SelfSigned {
            dir: state_dir(&cli.state_file),
        }),
        _ => Err(ConfigError(
            "TLS needs both --tls-cert (TOLLGATE_NODE_TLS_CERT) and --tls-key (TOLLGATE_NODE_TLS_KEY), or neither (then the agent uses its own self-signed certificate)".into(),
        )),
    }
}

/// The directory of the state file (where the self-signed certificate is kept).
fn state_dir(state_file: &std::path::Path) -> PathBuf {
    match state_file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// `tollgate-node fingerprint`: the fingerprint of the certificate the agent serves (it does
/// not create one: the agent does that on its first start, as the user it runs as).
pub fn served_fingerprint(cli: &Cli) -> Result<CertFingerprint, ConfigError> {
    let cert = match tls_setting(cli)? {
        TlsSetting::Off => {
            return Err(ConfigError(
                "the agent serves plain HTTP (--plaintext / TOLLGATE_NODE_PLAINTEXT): it has no certificate".into(),
            ));
        }
        TlsSetting::Files(files) => files.cert,
        TlsSetting::SelfSigned { dir } => {
            let files = crate::tls::generated_files(&dir);
            if !files.cert.exists() {
                return Err(ConfigError(format!(
                    "no certificate at {} yet: start the agent once (it creates its self-signed certificate there), or pass the --state-file / TOLLGATE_NODE_STATE_FILE it runs with",
                    files.cert.display()
                )));
            }
            files.cert
        }
    };
    crate::tls::fingerprint_of(&cert).map_err(ConfigError)
}

fn load_token(from_env: Option<String>, file: Option<&PathBuf>) -> Result<Token, ConfigError> {
    let from_env = from_env.filter(|v| !v.is_empty());
    let (secret, source) = match (from_env, file) {
        (Some(_), Some(_)) => {
            return Err(ConfigError(format!(
                "both {TOKEN_ENV} and --token-file (TOLLGATE_NODE_TOKEN_FILE) are set: keep only one"
            )));
        }
        (None, None) => {
            return Err(ConfigError(format!(
                "no token: set {TOKEN_ENV} or --token-file (TOLLGATE_NODE_TOKEN_FILE); create one with `openssl rand -hex 32`"
            )));
        }
        (Some(secret), None) => (secret, TOKEN_ENV.to_owned()),
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                ConfigError(format!(
                    "cannot read the token file {} (--token-file / TOLLGATE_NODE_TOKEN_FILE): {e}",
                    path.display()
                ))
            })?;
            warn_if_world_readable(path);
            (
                text.trim_end_matches(['\n', '\r']).to_owned(),
                format!("the token file {}", path.display()),
            )
        }
    };
    Token::new(secret).map_err(|why| ConfigError(format!("{source}: {why}")))
}

#[cfg(unix)]
fn warn_if_world_readable(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o004 != 0
    {
        eprintln!(
            "tollgate-node: warning: the token file {} is readable by every local user; chmod 600 it",
            path.display()
        );
    }
}

#[cfg(not(unix))]
fn warn_if_world_readable(_path: &std::path::Path) {}

fn check_core_api(address: &str) -> Result<(), ConfigError> {
    let bare = address
        .trim()
        .strip_prefix("http://")
        .unwrap_or(address.trim());
    let port_ok = bare
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if bare.contains("://") || !port_ok {
        return Err(ConfigError(format!(
            "--core-api / TOLLGATE_NODE_CORE_API is {address:?}: give host:port of the core's API inbound, e.g. 127.0.0.1:10085"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["tollgate-node"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    fn token() -> Option<String> {
        Some("t".repeat(40))
    }

    #[test]
    fn defaults_are_local_and_safe() {
        let config = AgentConfig::from_cli(&cli(&[]), token()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:9090");
        assert_eq!(config.core_api, "127.0.0.1:10085");
        assert_eq!(config.inbound_tag, "vless-in");
        assert_eq!(config.dialect, DialectChoice::Auto);
        assert_eq!(
            config.tls,
            TlsSetting::SelfSigned {
                dir: PathBuf::from("/var/lib/tollgate-node")
            }
        );
    }

    #[test]
    fn tls_is_on_unless_plaintext_is_asked_for() {
        let config = AgentConfig::from_cli(&cli(&["--plaintext"]), token()).unwrap();
        assert_eq!(config.tls, TlsSetting::Off);
        let config = AgentConfig::from_cli(
            &cli(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem"]),
            token(),
        )
        .unwrap();
        assert!(matches!(config.tls, TlsSetting::Files(_)));
        let err = AgentConfig::from_cli(
            &cli(&["--tls-cert", "/c.pem", "--tls-key", "/k.pem", "--plaintext"]),
            token(),
        )
        .unwrap_err();
        assert!(err.0.contains("keep only one"), "{err}");
        let config = AgentConfig::from_cli(&cli(&["--state-file", "state.db"]), token()).unwrap();
        assert_eq!(
            config.tls,
            TlsSetting::SelfSigned {
                dir: PathBuf::from(".")
            }
        );
        let parsed = cli(&["fingerprint", "--state-file", "/srv/n/state.db"]);
        assert_eq!(parsed.command, Some(Command::Fingerprint));
        assert_eq!(parsed.state_file, PathBuf::from("/srv/n/state.db"));
    }

    #[test]
    fn the_token_is_required_checked_and_never_echoed() {
        let err = AgentConfig::from_cli(&cli(&[]), None).unwrap_err();
        assert!(
            err.0.contains("TOLLGATE_NODE_TOKEN") && err.0.contains("--token-file"),
            "{err}"
        );
        let err = AgentConfig::from_cli(&cli(&[]), Some("hunter2".into())).unwrap_err();
        assert!(
            err.0.contains("at least 32") && !err.0.contains("hunter2"),
            "{err}"
        );
        let err = AgentConfig::from_cli(&cli(&["--token-file", "/x"]), token()).unwrap_err();
        assert!(err.0.contains("keep only one"), "{err}");
        let err =
            AgentConfig::from_cli(&cli(&["--token-file", "/nonexistent/token"]), None).unwrap_err();
        assert!(
            err.0
                .contains("cannot read the token file /nonexistent/token"),
            "{err}"
        );
    }

    #[test]
    fn a_token_file_loses_its_trailing_newline() {
        let path =
            std::env::temp_dir().join(format!("tollgate-token-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&path, format!("{}\n", "k".repeat(48))).unwrap();
        let config =
            AgentConfig::from_cli(&cli(&["--token-file", path.to_str().unwrap()]), None).unwrap();
        assert_eq!(config.token.expose(), "k".repeat(48));
        std::fs::remove_file(path).ok();
    }

    #[test]
    fn bad_values_name_the_flag_and_the_fix() {
        let err = AgentConfig::from_cli(&cli(&["--tls-cert", "/c.pem"]), token()).unwrap_err();
        assert!(err.0.contains("--tls-key"), "{err}");
        let err = AgentConfig::from_cli(&cli(&["--core-api", "localhost"]), token()).unwrap_err();
        assert!(
            err.0.contains("--core-api / TOLLGATE_NODE_CORE_API") && err.0.contains("host:port"),
            "{err}"
        );
        let err = AgentConfig::from_cli(&cli(&["--inbound-tag", " "]), token()).unwrap_err();
        assert!(err.0.contains("--inbound-tag"), "{err}");
        let err = AgentConfig::from_cli(&cli(&["--core-timeout-ms", "5"]), token()).unwrap_err();
        assert!(
            err.0.contains("--core-timeout-ms") && err.0.contains("100 to 120000"),
            "{err}"
        );
        let err = AgentConfig::from_cli(&cli(&["--core-concurrency", "0"]), token()).unwrap_err();
        assert!(err.0.contains("1 to 1024"), "{err}");
        let err = Cli::try_parse_from(["tollgate-node", "--dialect", "sing-box"]).unwrap_err();
        assert!(err.to_string().contains("auto, xray, v2ray"), "{err}");
        let err = Cli::try_parse_from(["tollgate-node", "--listen", "nowhere"]).unwrap_err();
        assert!(err.to_string().contains("--listen"), "{err}");
    }
}
