//! The WebSocket listener: accept, TLS when configured, the HTTP upgrade,
//! then an ordinary client connection over the WebSocket transport. This
//! is composition: the transport (`crate::websocket`) and the connection
//! state machine (`crate::client`) know nothing of each other beyond
//! [`crate::client::TransportWriter`], and neither knows the server.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{timeout_at, Instant};
use tracing::{debug, error, info, warn};

use super::{join_host_port, Server};
use crate::client::{run_client, ClientConfig, ClientShared, ClientType};
use crate::options::Options;
use crate::protocol::{err_line, errors, Info, Parser};
use crate::websocket::handshake::{self, Endpoint, Upgrade};
use crate::websocket::origin::OriginPolicy;
use crate::websocket::{frame, Framing};

impl Server {
    /// Bind the WebSocket listener when `websocket {}` has a port.
    pub(super) async fn start_websocket(self: &Arc<Self>, opts: &Options) -> Result<()> {
        let ws = &opts.websocket;
        let Some(port) = ws.port else {
            return Ok(());
        };
        let host = ws.listen_host();
        let addr = join_host_port(host, port);
        let listener = crate::listener::bind(&addr)
            .await
            .with_context(|| format!("could not listen on {addr} for websocket clients"))?;
        let local = listener.local_addr()?;
        self.listeners.write().websocket = Some(local);
        info!(
            "Listening for websocket clients on {}://{}",
            ws.scheme(),
            join_host_port(host, local.port())
        );
        if ws.tls.is_none() {
            warn!("Websocket not configured with TLS. DO NOT USE IN PRODUCTION!");
        }
        let srv = self.clone();
        tokio::spawn(async move { srv.ws_accept_loop(listener).await });
        Ok(())
    }

    /// Accept until told to stop; each socket gets a task of its own.
    async fn ws_accept_loop(self: Arc<Self>, listener: TcpListener) {
        let mut stop = self.stop_accepting.subscribe();
        loop {
            tokio::select! {
                r = listener.accept() => match r {
                    Ok((stream, addr)) => {
                        tokio::spawn(self.clone().serve_websocket(stream, addr));
                    }
                    Err(e) => {
                        error!("Temporary Websocket Accept Error ({e}), sleeping 10ms");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
        debug!("Websocket accept loop exiting");
    }

    /// TLS (when configured) and the upgrade, within the handshake
    /// timeout; then the client connection.
    async fn serve_websocket(self: Arc<Self>, stream: TcpStream, addr: SocketAddr) {
        if self.is_lame_duck() || self.is_shutting_down() {
            return;
        }
        let _ = stream.set_nodelay(true);
        let deadline = Instant::now() + self.opts().websocket.handshake_deadline();
        match self.tls().websocket {
            None => {
                let mut stream = stream;
                let Some(up) = self.ws_upgrade(&mut stream, addr, deadline, false).await else {
                    return;
                };
                let (rd, wr) = stream.into_split();
                self.run_ws_client(rd, wr, addr, up).await;
            }
            // Boxed: the TLS stream lives inline in this future; unboxed,
            // it would size the task of every plain connection as well.
            Some(acceptor) => {
                Box::pin(self.serve_websocket_tls(stream, addr, deadline, acceptor)).await
            }
        }
    }

    /// [`Self::serve_websocket`] over TLS: the TLS handshake, then the
    /// upgrade, within the same deadline.
    async fn serve_websocket_tls(
        self: Arc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        deadline: Instant,
        acceptor: tokio_rustls::TlsAcceptor,
    ) {
        let mut stream = match timeout_at(deadline, acceptor.accept(stream)).await {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                error!("websocket: TLS handshake error from {addr}: {e}");
                return;
            }
            Err(_) => {
                debug!("websocket: TLS handshake error from {addr}: i/o timeout");
                return;
            }
        };
        let Some(up) = self.ws_upgrade(&mut stream, addr, deadline, true).await else {
            return;
        };
        let (rd, wr) = tokio::io::split(stream);
        self.run_ws_client(rd, wr, addr, up).await;
    }

    /// Read and check the upgrade request and answer it. `None` when the
    /// connection ends here (refused, timed out, or a leaf node).
    async fn ws_upgrade<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        addr: SocketAddr,
        deadline: Instant,
        tls: bool,
    ) -> Option<Upgrade> {
        let req = match timeout_at(deadline, handshake::read_request(stream)).await {
            Ok(Ok(req)) => req,
            Ok(Err(failure)) => {
                match &failure {
                    handshake::ReadFailure::Closed => {}
                    handshake::ReadFailure::Io(e) => {
                        debug!("{addr} - websocket handshake error: {e}")
                    }
                    other => {
                        error!("{addr} - websocket handshake error: {}", describe(other))
                    }
                }
                if let Some(resp) = handshake::unreadable_response(&failure) {
                    answer(stream, &resp, deadline).await;
                }
                return None;
            }
            Err(_) => {
                debug!("{addr} - websocket handshake error: i/o timeout");
                return None;
            }
        };
        let opts = self.opts();
        let ws = &opts.websocket;
        let origins = OriginPolicy::new(ws.same_origin, &ws.allowed_origins);
        let up = match handshake::upgrade(&req, ws, &origins, tls) {
            Ok(up) => up,
            Err(refusal) => {
                error!("{addr} - websocket handshake error: {}", refusal.reason);
                answer(stream, &refusal.response(), deadline).await;
                return None;
            }
        };
        match timeout_at(deadline, stream.write_all(&up.response)).await {
            Ok(Ok(())) => {}
            _ => {
                debug!("{addr} - websocket handshake error: could not send the upgrade response");
                return None;
            }
        }
        if up.endpoint == Endpoint::Leafnode {
            // nats-server completes the upgrade, then closes silently.
            error!("Not configured to accept leaf node connections");
            return None;
        }
        Some(up)
    }

    /// An upgraded connection: register it and run the client protocol
    /// over the WebSocket transport.
    async fn run_ws_client<R, W>(self: Arc<Self>, rd: R, mut wr: W, addr: SocketAddr, up: Upgrade)
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let opts = self.opts();
        let ws = &opts.websocket;
        let cid = self.next_cid();
        let shared = Arc::new(ClientShared::websocket(
            cid,
            addr,
            up.forwarded_for,
            opts.max_pending,
        ));
        let nonce = if opts.nonce_required() {
            crate::auth::new_nonce()
        } else {
            String::new()
        };
        let mut info = self.websocket_info(cid, &addr);
        info.nonce = nonce.clone();
        // Only the greeting says the block's own authorization applies
        // (later INFOs carry the server's flag, as nats-server's do).
        info.auth_required |= ws.auth_override();
        let info = info.to_line();
        if !self.register_client(&shared, opts.max_connections) {
            error!("{} - {}", shared.tag(), errors::MAX_CONNECTIONS);
            let mut bytes = Vec::new();
            for part in [info, err_line(errors::MAX_CONNECTIONS)] {
                let (h, n) = frame::header(true, true, false, frame::OP_BINARY, part.len());
                bytes.extend_from_slice(&h[..n]);
                bytes.extend_from_slice(&part);
            }
            bytes.extend(frame::close_frame_for(
                crate::client::ClosedState::MaxConnectionsExceeded,
            ));
            let _ = tokio::time::timeout(opts.write_deadline, wr.write_all(&bytes)).await;
            let _ = wr.shutdown().await;
            return;
        }
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        self.stats
            .total_websocket_connections
            .fetch_add(1, Ordering::Relaxed);
        debug!("{} - Client connection created", shared.tag());
        let or = |v: Duration, d: Duration| if v.is_zero() { d } else { v };
        let cfg = ClientConfig {
            auth_required: opts.auth_required() || ws.auth_override(),
            auth_timeout: or(ws.auth_timeout, opts.auth_timeout),
            ping_interval: or(ws.ping_interval, opts.ping_interval),
            ping_max: opts.ping_max,
            write_deadline: opts.write_deadline,
            max_subs: opts.max_subs,
            headers_supported: !opts.no_header_support,
            no_fast_producer_stall: opts.no_fast_producer_stall,
            nonce,
            client_type: ClientType::Websocket,
            cookies: (!up.cookies.is_empty()).then_some(up.cookies),
        };
        let parser = Parser::new(opts.max_control_line, Some(opts.max_payload));
        let framing = Framing {
            compress: up.compress,
            mask_required: !up.no_masking,
            browser: up.browser,
            no_compressed_fragments: up.no_compressed_fragments,
            max_payload: opts.max_payload,
        };
        let halves = crate::websocket::split(rd, wr, framing, shared.tag());
        run_client(self, shared, halves, info, cfg, parser).await;
    }

    /// The INFO a WebSocket client gets: the client INFO with the
    /// listener's host, port and TLS, and the cluster's WebSocket URLs as
    /// `connect_urls` (nats-server's `generateClientInfoJSON`).
    pub fn websocket_info(&self, cid: u64, addr: &SocketAddr) -> Info {
        let opts = self.opts();
        let ws = &opts.websocket;
        let mut info = self.client_info(cid, addr);
        info.host = ws.listen_host().to_string();
        info.port = self.ws_port(&opts);
        info.tls_required = ws.tls.is_some();
        info.tls_available = ws.tls.is_some();
        // nats-server does not relax this for a no_auth_user here, as it
        // does in the client port's greeting.
        info.auth_required = opts.auth_required();
        info.connect_urls = self.ws_connect_urls();
        info
    }

    /// The INFO for a client of either kind.
    pub fn info_for(&self, c: &ClientShared, addr: &SocketAddr) -> Info {
        match c.client_type {
            ClientType::Websocket => self.websocket_info(c.cid, addr),
            ClientType::Nats => self.client_info(c.cid, addr),
        }
    }

    fn ws_port(&self, opts: &Options) -> u16 {
        self.listeners()
            .websocket
            .map_or(opts.websocket.port.unwrap_or(0), |a| a.port())
    }

    /// This server's WebSocket URLs (`host:port`), as peers and WebSocket
    /// clients see them: `advertise`, or every address the listen host
    /// reaches. Empty without a listener.
    pub fn own_ws_urls(&self) -> Vec<String> {
        let opts = self.opts();
        let ws = &opts.websocket;
        if !ws.enabled() {
            return Vec::new();
        }
        let port = self.ws_port(&opts);
        if let Some(adv) = &ws.advertise {
            return vec![with_default_port(adv, port)];
        }
        crate::ports::reachable_hosts(ws.listen_host())
            .iter()
            .map(|h| join_host_port(h, port))
            .collect()
    }

    /// URLs WebSocket clients may fail over to: ours first, then each
    /// peer's. Empty while no peer has a WebSocket listener.
    pub fn ws_connect_urls(&self) -> Vec<String> {
        let peers = self.routes.peer_ws_urls();
        if peers.is_empty() || self.opts().cluster.no_advertise {
            return Vec::new();
        }
        let mut urls = self.own_ws_urls();
        for u in peers {
            if !urls.contains(&u) {
                urls.push(u);
            }
        }
        urls
    }

    /// Register a new client unless `max_connections` are open.
    pub(super) fn register_client(&self, c: &Arc<ClientShared>, max: usize) -> bool {
        let mut clients = self.clients.lock();
        let room = clients.len() < max;
        if room {
            clients.insert(c.cid, c.clone());
        }
        room
    }
}

/// An advertise address without a port takes the listener's (Go's
/// `parseHostPort` with a default).
fn with_default_port(adv: &str, port: u16) -> String {
    let has_port = match adv.rsplit_once(':') {
        Some((host, p)) => p.parse::<u16>().is_ok() && (!host.contains(':') || host.ends_with(']')),
        None => false,
    };
    if has_port {
        adv.to_string()
    } else {
        join_host_port(adv.trim_start_matches('[').trim_end_matches(']'), port)
    }
}

fn describe(f: &handshake::ReadFailure) -> String {
    match f {
        handshake::ReadFailure::Closed => "connection closed".into(),
        handshake::ReadFailure::Io(e) => e.to_string(),
        handshake::ReadFailure::TooLarge => "request header fields too large".into(),
        handshake::ReadFailure::Malformed(e) => format!("malformed HTTP request: {e}"),
        handshake::ReadFailure::EarlyData => "client sent data before handshake is complete".into(),
    }
}

/// Send an HTTP error response and close, within the handshake deadline.
async fn answer<S: AsyncWrite + Unpin>(stream: &mut S, response: &[u8], deadline: Instant) {
    let _ = timeout_at(deadline, async {
        stream.write_all(response).await?;
        stream.shutdown().await
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's task holds its whole future for as long as the
    /// connection lives, so its size is memory per idle connection. The
    /// login and TLS paths are boxed to keep them out of it; unboxed, these
    /// were 7.0 and 7.5 KiB (debug build), about half of what an idle
    /// connection cost.
    #[tokio::test]
    async fn connection_futures_stay_small() {
        let srv = Server::new(Options::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let plain = srv
            .clone()
            .serve_client(TcpStream::connect(addr).await.unwrap(), addr);
        let ws = srv
            .clone()
            .serve_websocket(TcpStream::connect(addr).await.unwrap(), addr);
        let (plain, ws) = (std::mem::size_of_val(&plain), std::mem::size_of_val(&ws));
        assert!(plain <= 5 * 1024, "serve_client future: {plain} bytes");
        assert!(ws <= 5 * 1024, "serve_websocket future: {ws} bytes");
    }

    #[test]
    fn advertise_ports() {
        assert_eq!(with_default_port("example.com", 443), "example.com:443");
        assert_eq!(
            with_default_port("example.com:8443", 443),
            "example.com:8443"
        );
        assert_eq!(with_default_port("::1", 80), "[::1]:80");
        assert_eq!(with_default_port("[::1]:81", 80), "[::1]:81");
    }
}
