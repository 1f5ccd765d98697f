//! A V2Ray client core: a SOCKS5 inbound on 127.0.0.1 and one VLESS outbound.
//!
//! Why a second core instead of a Rust VLESS client: the point of the data-plane tests is that
//! a real client, configured from what we hand out, gets through the real server.
//! V2Ray 4.34 has no XTLS/REALITY; only `security=none` over TCP is supported here.

use std::io;
use std::net::SocketAddr;

use serde_json::json;
use tempfile::TempDir;

use super::V2Ray;
use super::process::{CoreProcess, free_port, is_port_clash, log_path, read_log};

/// The client side of a VLESS user: where to connect and with which id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VlessOutbound {
    pub address: String,
    pub port: u16,
    /// The VLESS id as text (tests may pass anything, e.g. a random UUID).
    pub id: String,
    /// `""` for V2Ray (no XTLS).
    pub flow: String,
}

impl VlessOutbound {
    /// Plain TCP, no TLS, no flow.
    pub fn tcp(address: &str, port: u16, id: &str) -> Self {
        VlessOutbound {
            address: address.to_owned(),
            port,
            id: id.to_owned(),
            flow: String::new(),
        }
    }
}

/// A running client core.
#[derive(Debug)]
pub struct ClientCore {
    socks_port: u16,
    dir: TempDir,
    _process: CoreProcess,
}

impl ClientCore {
    /// Starts a client core for `outbound` and waits for its SOCKS5 port.
    pub async fn start(v2ray: &V2Ray, outbound: &VlessOutbound) -> io::Result<ClientCore> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let socks_port = free_port()?;
            let dir = tempfile::Builder::new()
                .prefix("tollgate-v2ray-client-")
                .tempdir()?;
            let config = client_config(outbound, socks_port).to_string();
            match CoreProcess::start(
                v2ray,
                &config,
                &log_path(dir.path(), "client"),
                &[socks_port],
            )
            .await
            {
                Ok(process) => {
                    return Ok(ClientCore {
                        socks_port,
                        dir,
                        _process: process,
                    });
                }
                Err(e) if attempt < 3 && is_port_clash(&e) => continue,
                Err(e) => return Err(e),
            }
        }
    }

    /// The SOCKS5 address to fetch through.
    pub fn socks_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.socks_port))
    }

    /// The client core's log.
    pub fn log(&self) -> String {
        read_log(&log_path(self.dir.path(), "client"))
    }
}

fn client_config(outbound: &VlessOutbound, socks_port: u16) -> serde_json::Value {
    let mut user = json!({ "id": outbound.id, "encryption": "none", "level": 0 });
    if !outbound.flow.is_empty() {
        user["flow"] = json!(outbound.flow);
    }
    json!({
        "log": { "loglevel": "warning" },
        "inbounds": [ {
            "tag": "socks-in", "listen": "127.0.0.1", "port": socks_port, "protocol": "socks",
            "settings": { "auth": "noauth", "udp": false }
        } ],
        "outbounds": [ {
            "tag": "vless-out", "protocol": "vless",
            "settings": { "vnext": [ { "address": outbound.address, "port": outbound.port, "users": [user] } ] },
            "streamSettings": { "network": "tcp", "security": "none" }
        } ]
    })
}
