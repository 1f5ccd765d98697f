//! A TCP proxy in front of the database that tests can cut and restore.
//!
//! - `cut`: existing connections are closed and new ones are accepted then closed at once
//!   (the server went away);
//! - `blackhole`: new and existing connections stay open but nothing passes (a network
//!   partition: only deadlines notice);
//! - `restore`: forwarding resumes for new connections.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Forward,
    Cut,
    Blackhole,
}

pub struct TcpProxy {
    pub addr: SocketAddr,
    mode: Arc<watch::Sender<Mode>>,
    task: tokio::task::JoinHandle<()>,
}

impl TcpProxy {
    pub async fn start(target: SocketAddr) -> TcpProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr");
        let (tx, rx) = watch::channel(Mode::Forward);
        let task = tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                let rx = rx.clone();
                tokio::spawn(handle(client, target, rx));
            }
        });
        TcpProxy {
            addr,
            mode: Arc::new(tx),
            task,
        }
    }

    pub fn cut(&self) {
        self.mode.send_replace(Mode::Cut);
    }

    pub fn blackhole(&self) {
        self.mode.send_replace(Mode::Blackhole);
    }

    pub fn restore(&self) {
        self.mode.send_replace(Mode::Forward);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn handle(mut client: TcpStream, target: SocketAddr, mut mode: watch::Receiver<Mode>) {
    let initial = *mode.borrow_and_update();
    match initial {
        Mode::Cut => {
            let _ = client.shutdown().await;
            return;
        }
        Mode::Blackhole => {
            // Hold the connection silently until the mode changes, then drop it.
            let _ = mode.changed().await;
            return;
        }
        Mode::Forward => {}
    }
    let Ok(mut server) = TcpStream::connect(target).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let pump = async {
        tokio::select! {
            _ = tokio::io::copy(&mut cr, &mut sw) => {}
            _ = tokio::io::copy(&mut sr, &mut cw) => {}
        }
    };
    let stopped = tokio::select! {
        _ = pump => None,
        m = until_not_forwarding(&mut mode) => Some(m),
    };
    if stopped == Some(Mode::Blackhole) {
        // Nothing passes any more, but the sockets stay open until the next change.
        let _ = mode.changed().await;
    }
}

async fn until_not_forwarding(mode: &mut watch::Receiver<Mode>) -> Mode {
    loop {
        if mode.changed().await.is_err() {
            return Mode::Cut;
        }
        let m = *mode.borrow();
        if m != Mode::Forward {
            return m;
        }
    }
}
