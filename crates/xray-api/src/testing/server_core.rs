//! A V2Ray server core: API (dokodemo-door tagged `api` + routing rule), per-user counters on
//! level 0, and a VLESS inbound over plain TCP, all on free 127.0.0.1 ports.
//!
//! The config is the one verified live in the reference notes; the VLESS inbound starts with
//! no clients so every user comes through the API, exactly as in production.

use std::io;
use std::net::SocketAddr;

use serde_json::{Value, json};
use tempfile::TempDir;

use super::V2Ray;
use super::client_core::VlessOutbound;
use super::process::{CoreProcess, free_port, is_port_clash, log_path, read_log};

/// An extra inbound next to the VLESS one, e.g. to see how the API treats other protocols.
#[derive(Clone, Debug)]
pub struct ExtraInbound {
    pub tag: String,
    /// `"vmess"`, `"socks"`, `"dokodemo-door"`...
    pub protocol: String,
    /// The inbound's `settings` object.
    pub settings: Value,
}

impl ExtraInbound {
    /// A VMess inbound with no clients.
    pub fn vmess(tag: &str) -> Self {
        ExtraInbound {
            tag: tag.to_owned(),
            protocol: "vmess".to_owned(),
            settings: json!({ "clients": [] }),
        }
    }

    /// A SOCKS inbound (not a user manager).
    pub fn socks(tag: &str) -> Self {
        ExtraInbound {
            tag: tag.to_owned(),
            protocol: "socks".to_owned(),
            settings: json!({ "auth": "noauth", "udp": false }),
        }
    }
}

/// How to build the server core.
#[derive(Clone, Debug)]
pub struct ServerCoreConfig {
    /// Tag of the VLESS inbound (default `vless-in`).
    pub vless_tag: String,
    /// More inbounds on their own free ports.
    pub extra_inbounds: Vec<ExtraInbound>,
    /// v2ray `log.loglevel` (default `warning`; `info` shows rejected connections).
    pub log_level: String,
    /// List `StatsService` in `api.services` (default true); false reproduces a core whose
    /// operator forgot it.
    pub stats_service: bool,
}

impl Default for ServerCoreConfig {
    fn default() -> Self {
        ServerCoreConfig {
            vless_tag: "vless-in".to_owned(),
            extra_inbounds: Vec::new(),
            log_level: "warning".to_owned(),
            stats_service: true,
        }
    }
}

/// A running (or stopped, restartable) server core.
#[derive(Debug)]
pub struct ServerCore {
    v2ray: V2Ray,
    config: ServerCoreConfig,
    config_json: String,
    api_port: u16,
    vless_port: u16,
    extra_ports: Vec<u16>,
    dir: TempDir,
    process: Option<CoreProcess>,
    starts: u32,
}

impl ServerCore {
    /// Starts a server core with the default config.
    pub async fn start(v2ray: &V2Ray) -> io::Result<ServerCore> {
        Self::start_with(v2ray, ServerCoreConfig::default()).await
    }

    /// Starts a server core; retries with new ports if another process grabbed one.
    pub async fn start_with(v2ray: &V2Ray, config: ServerCoreConfig) -> io::Result<ServerCore> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut core = ServerCore::prepare(v2ray, config.clone())?;
            match core.start_again().await {
                Ok(()) => return Ok(core),
                Err(e) if attempt < 3 && is_port_clash(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    fn prepare(v2ray: &V2Ray, config: ServerCoreConfig) -> io::Result<ServerCore> {
        let api_port = free_port()?;
        let vless_port = free_port()?;
        let extra_ports = config
            .extra_inbounds
            .iter()
            .map(|_| free_port())
            .collect::<io::Result<Vec<_>>>()?;
        let config_json = server_config(&config, api_port, vless_port, &extra_ports).to_string();
        Ok(ServerCore {
            v2ray: v2ray.clone(),
            config,
            config_json,
            api_port,
            vless_port,
            extra_ports,
            dir: tempfile::Builder::new()
                .prefix("tollgate-v2ray-")
                .tempdir()?,
            process: None,
            starts: 0,
        })
    }

    /// Starts the core again with the same config and ports (after [`ServerCore::stop`]).
    /// Users added through the API before are gone, as after any real restart.
    pub async fn start_again(&mut self) -> io::Result<()> {
        if self.process.is_some() {
            return Err(io::Error::other(
                "the server core is already running; stop it first",
            ));
        }
        self.starts += 1;
        let log = log_path(self.dir.path(), &format!("server-{}", self.starts));
        let mut ports = vec![self.api_port, self.vless_port];
        ports.extend(&self.extra_ports);
        self.process =
            Some(CoreProcess::start(&self.v2ray, &self.config_json, &log, &ports).await?);
        Ok(())
    }

    /// Kills the core (SIGKILL) and waits for it to exit. The ports are free afterwards.
    pub fn stop(&mut self) {
        if let Some(mut process) = self.process.take() {
            process.kill();
        }
    }

    /// [`ServerCore::stop`] then [`ServerCore::start_again`] on the same ports.
    pub async fn restart(&mut self) -> io::Result<()> {
        self.stop();
        self.start_again().await
    }

    /// True while the core process runs.
    pub fn is_running(&mut self) -> bool {
        self.process.as_mut().is_some_and(CoreProcess::is_running)
    }

    /// The core's process id, if running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(CoreProcess::pid)
    }

    /// The API address, `127.0.0.1:PORT`.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.api_port))
    }

    /// The API address as a string for `XrayClient::connect`.
    pub fn api_endpoint(&self) -> String {
        self.api_addr().to_string()
    }

    /// The VLESS inbound's address.
    pub fn vless_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.vless_port))
    }

    /// The VLESS inbound's tag.
    pub fn vless_tag(&self) -> &str {
        &self.config.vless_tag
    }

    /// The address of the extra inbound with this tag.
    pub fn extra_inbound_addr(&self, tag: &str) -> Option<SocketAddr> {
        let index = self
            .config
            .extra_inbounds
            .iter()
            .position(|i| i.tag == tag)?;
        let port = *self.extra_ports.get(index)?;
        Some(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// The client side of a user with VLESS id `id` on this core (plain TCP, no TLS).
    pub fn vless_outbound(&self, id: &str) -> VlessOutbound {
        VlessOutbound::tcp("127.0.0.1", self.vless_port, id)
    }

    /// The current run's log (all runs when stopped, newest last).
    pub fn log(&self) -> String {
        (1..=self.starts)
            .map(|n| read_log(&log_path(self.dir.path(), &format!("server-{n}"))))
            .collect::<Vec<_>>()
            .join("\n---- restart ----\n")
    }
}

fn server_config(
    config: &ServerCoreConfig,
    api_port: u16,
    vless_port: u16,
    extra_ports: &[u16],
) -> Value {
    let mut inbounds = vec![
        json!({
            "tag": "api", "listen": "127.0.0.1", "port": api_port, "protocol": "dokodemo-door",
            "settings": { "address": "127.0.0.1" }
        }),
        json!({
            "tag": config.vless_tag, "listen": "127.0.0.1", "port": vless_port, "protocol": "vless",
            "settings": { "clients": [], "decryption": "none" },
            "streamSettings": { "network": "tcp", "security": "none" }
        }),
    ];
    for (extra, port) in config.extra_inbounds.iter().zip(extra_ports) {
        inbounds.push(json!({
            "tag": extra.tag, "listen": "127.0.0.1", "port": port, "protocol": extra.protocol,
            "settings": extra.settings
        }));
    }
    let services: &[&str] = if config.stats_service {
        &["HandlerService", "StatsService"]
    } else {
        &["HandlerService"]
    };
    json!({
        "log": { "loglevel": config.log_level },
        "api": { "tag": "api", "services": services },
        "stats": {},
        "policy": {
            "levels": { "0": { "statsUserUplink": true, "statsUserDownlink": true } },
            "system": {
                "statsInboundUplink": true, "statsInboundDownlink": true,
                "statsOutboundUplink": true, "statsOutboundDownlink": true
            }
        },
        "inbounds": inbounds,
        "outbounds": [
            { "tag": "direct", "protocol": "freedom", "settings": {} },
            { "tag": "blocked", "protocol": "blackhole", "settings": {} }
        ],
        "routing": { "rules": [ { "type": "field", "inboundTag": ["api"], "outboundTag": "api" } ] }
    })
}
