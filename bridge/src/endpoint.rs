//! Where the MQTT broker is and how to reach it: `mqtt.url` parsed into a
//! transport, host, port and (for WebSocket) path, and the rumqttc options
//! that connect there.
//!
//! Four transports, one URL form each:
//!
//! | URL | transport | default port |
//! |---|---|---|
//! | `mqtts://host[:port]` (alias `ssl://`) | MQTT over TLS | 8883 |
//! | `wss://host[:port][/path]` | MQTT over WebSocket over TLS, path default `/mqtt` | 443 |
//! | `mqtt://host[:port]` (alias `tcp://`) | MQTT over TCP, plaintext | 1883 |
//! | `ws://host[:port][/path]` | MQTT over WebSocket, plaintext, path default `/mqtt` | 80 |
//!
//! Both TLS transports verify the server with the same rustls config (ring,
//! the given CA file or the system roots): rumqttc hands our config to
//! async-tungstenite for `wss://`, so there is one TLS stack whatever the
//! transport. URLs carry no credentials, query or fragment: they are logged,
//! and credentials belong in `username`/`password` (secrets).

use std::fmt;
use std::net::{IpAddr, Ipv6Addr};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};

/// The path a `ws://` / `wss://` URL without one connects to: what MQTT
/// brokers serving WebSockets (mosquitto, EMQX, HiveMQ, rumqttd) and the
/// provider's public client examples use.
pub const DEFAULT_WS_PATH: &str = "/mqtt";

/// How the bytes travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// `mqtt://`: MQTT over plain TCP.
    Mqtt,
    /// `mqtts://`: MQTT over TLS.
    Mqtts,
    /// `ws://`: MQTT over a plain WebSocket.
    Ws,
    /// `wss://`: MQTT over a WebSocket over TLS.
    Wss,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Mqtt => "mqtt",
            Scheme::Mqtts => "mqtts",
            Scheme::Ws => "ws",
            Scheme::Wss => "wss",
        }
    }

    pub fn is_tls(self) -> bool {
        matches!(self, Scheme::Mqtts | Scheme::Wss)
    }

    pub fn is_websocket(self) -> bool {
        matches!(self, Scheme::Ws | Scheme::Wss)
    }

    fn default_port(self) -> u16 {
        match self {
            Scheme::Mqtt => 1883,
            Scheme::Mqtts => 8883,
            Scheme::Ws => 80,
            Scheme::Wss => 443,
        }
    }
}

/// A parsed `mqtt.url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub scheme: Scheme,
    /// Host name or IP address (an IPv6 address without brackets).
    pub host: String,
    pub port: u16,
    /// The WebSocket request path (starts with `/`); empty for TCP transports.
    pub path: String,
}

impl Endpoint {
    /// Parses `scheme://host[:port][/path]`. A path is accepted only for the
    /// WebSocket schemes; `ws[s]://host` means path `/mqtt`, `ws[s]://host/`
    /// means `/`.
    pub fn parse(url: &str) -> Result<Endpoint> {
        let (scheme, rest) = url
            .split_once("://")
            .with_context(|| format!("mqtt url {url:?}: expected scheme://host[:port]"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "mqtts" | "ssl" => Scheme::Mqtts,
            "mqtt" | "tcp" => Scheme::Mqtt,
            "wss" => Scheme::Wss,
            "ws" => Scheme::Ws,
            _ => bail!(
                "mqtt url {url:?}: scheme must be mqtts:// or wss:// (TLS), or mqtt:// or ws:// (plaintext)"
            ),
        };
        if rest.contains(['?', '#']) {
            bail!("mqtt url {url:?}: no query or fragment allowed (the URL is logged; credentials go in username/password)");
        }
        let (authority, path) = match rest.find('/') {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        if authority.contains('@') {
            bail!("mqtt url {url:?}: no user info allowed (credentials go in username/password)");
        }
        let path = if scheme.is_websocket() {
            if path.is_empty() {
                DEFAULT_WS_PATH.to_owned()
            } else {
                check_path(path).with_context(|| format!("mqtt url {url:?}"))?;
                path.to_owned()
            }
        } else if path.is_empty() || path == "/" {
            String::new()
        } else {
            bail!("mqtt url {url:?}: a path is only meaningful for ws:// and wss://; expected {}://host[:port]", scheme.as_str());
        };
        let (host, port) = split_host_port(authority, scheme.default_port())
            .with_context(|| format!("mqtt url {url:?}"))?;
        Ok(Endpoint {
            scheme,
            host,
            port,
            path,
        })
    }

    /// True when the host is a loopback address or `localhost`: the only
    /// place plaintext WebSocket is allowed to go. Names are not resolved
    /// (a name could resolve anywhere).
    pub fn is_loopback(&self) -> bool {
        if self.host.eq_ignore_ascii_case("localhost") {
            return true;
        }
        self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }

    /// The host as it appears in a URL (IPv6 in brackets).
    fn url_host(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }

    /// rumqttc options for a connection to this endpoint: host, port and the
    /// transport. TLS transports verify with [`crate::tls::mqtt_client_config`]
    /// (`ca_file`, else the system roots); `ca_file` is ignored otherwise.
    /// For WebSocket, rumqttc takes the whole URL as the broker address and
    /// asks for the `mqtt` subprotocol, refusing a server that does not agree.
    pub fn mqtt_options(&self, client_id: &str, ca_file: Option<&Path>) -> Result<MqttOptions> {
        let address = if self.scheme.is_websocket() {
            self.to_string()
        } else {
            self.host.clone()
        };
        let mut options = MqttOptions::new(client_id, address, self.port);
        let tls = || -> Result<TlsConfiguration> {
            Ok(TlsConfiguration::Rustls(crate::tls::mqtt_client_config(
                ca_file,
            )?))
        };
        let transport = match self.scheme {
            Scheme::Mqtt => Transport::Tcp,
            Scheme::Mqtts => Transport::tls_with_config(tls()?),
            Scheme::Ws => Transport::Ws,
            Scheme::Wss => Transport::wss_with_config(tls()?),
        };
        options.set_transport(transport);
        Ok(options)
    }
}

/// The canonical URL: scheme, host, port always, path for WebSocket.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}://{}:{}{}",
            self.scheme.as_str(),
            self.url_host(),
            self.port,
            self.path
        )
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
fn split_host_port(authority: &str, default_port: u16) -> Result<(String, u16)> {
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (v6, after) = bracketed
            .split_once(']')
            .context("unclosed [ in the host")?;
        v6.parse::<Ipv6Addr>()
            .with_context(|| format!("{v6:?} is not an IPv6 address"))?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').context("junk after ]")?),
        };
        (v6, port)
    } else if authority.parse::<Ipv6Addr>().is_ok() {
        (authority, None)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        bail!("no host");
    }
    let is_v6 = host.contains(':');
    if !is_v6
        && !host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
    {
        bail!("bad host name {host:?}");
    }
    let port = match port {
        None => default_port,
        Some(p) => match p.parse::<u16>() {
            Ok(n) if n > 0 => n,
            _ => bail!("bad port {p:?}"),
        },
    };
    Ok((host.to_owned(), port))
}

/// RFC 3986 path characters only (unreserved, sub-delims, `:`, `@`, `/` and
/// `%XX` escapes): the path goes verbatim into the HTTP request line.
fn check_path(path: &str) -> Result<()> {
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            let escape = bytes.get(i + 1..i + 3);
            if !escape.is_some_and(|e| e.iter().all(u8::is_ascii_hexdigit)) {
                bail!("bad %-escape in the path {path:?}");
            }
            i += 3;
            continue;
        }
        let ok = b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&b);
        if !ok {
            bail!(
                "character {:?} is not allowed in the path {path:?}",
                b as char
            );
        }
        i += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(url: &str) -> (Scheme, String, u16, String) {
        let e = Endpoint::parse(url).unwrap_or_else(|e| panic!("{url}: {e:#}"));
        (e.scheme, e.host, e.port, e.path)
    }

    #[test]
    fn tcp_schemes_as_before() {
        use Scheme::*;
        assert_eq!(
            ep("mqtts://h.example:8884"),
            (Mqtts, "h.example".into(), 8884, "".into())
        );
        assert_eq!(
            ep("mqtts://h.example"),
            (Mqtts, "h.example".into(), 8883, "".into())
        );
        assert_eq!(ep("ssl://h"), (Mqtts, "h".into(), 8883, "".into()));
        assert_eq!(
            ep("mqtt://127.0.0.1:1883/"),
            (Mqtt, "127.0.0.1".into(), 1883, "".into())
        );
        assert_eq!(ep("tcp://h"), (Mqtt, "h".into(), 1883, "".into()));
        assert_eq!(
            ep("mqtt://[::1]:1884"),
            (Mqtt, "::1".into(), 1884, "".into())
        );
        assert_eq!(ep("mqtt://::1"), (Mqtt, "::1".into(), 1883, "".into()));
    }

    #[test]
    fn websocket_schemes() {
        use Scheme::*;
        assert_eq!(
            ep("wss://mqtt.example.com"),
            (Wss, "mqtt.example.com".into(), 443, "/mqtt".into())
        );
        assert_eq!(
            ep("wss://mqtt.example.com:443/mqtt"),
            (Wss, "mqtt.example.com".into(), 443, "/mqtt".into())
        );
        assert_eq!(
            ep("WSS://h:8084/feeds/v1%2Dlive"),
            (Wss, "h".into(), 8084, "/feeds/v1%2Dlive".into())
        );
        assert_eq!(ep("wss://h/"), (Wss, "h".into(), 443, "/".into()));
        assert_eq!(
            ep("ws://localhost:8080"),
            (Ws, "localhost".into(), 8080, "/mqtt".into())
        );
        assert_eq!(ep("ws://[::1]/ws"), (Ws, "::1".into(), 80, "/ws".into()));
    }

    #[test]
    fn canonical_url_is_what_rumqttc_dials() {
        let e = Endpoint::parse("wss://h.example").unwrap();
        assert_eq!(e.to_string(), "wss://h.example:443/mqtt");
        let e = Endpoint::parse("ws://[::1]:9001/x").unwrap();
        assert_eq!(e.to_string(), "ws://[::1]:9001/x");
        let e = Endpoint::parse("ssl://h").unwrap();
        assert_eq!(e.to_string(), "mqtts://h:8883");
        let o = e.mqtt_options("c", None);
        // System roots may be missing in a build sandbox; the address is what matters.
        if let Ok(o) = o {
            assert_eq!(o.broker_address(), ("h".into(), 8883));
        }
        let o = Endpoint::parse("ws://127.0.0.1:9001/m")
            .unwrap()
            .mqtt_options("c", None)
            .unwrap();
        assert_eq!(o.broker_address(), ("ws://127.0.0.1:9001/m".into(), 9001));
        assert!(matches!(o.transport(), Transport::Ws));
    }

    #[test]
    fn wss_uses_our_verifying_config() {
        let dir = tempfile::tempdir().unwrap();
        let ca = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let path = dir.path().join("ca.pem");
        std::fs::write(&path, ca.cert.pem()).unwrap();
        let o = Endpoint::parse("wss://localhost:8443/mqtt")
            .unwrap()
            .mqtt_options("c", Some(&path))
            .unwrap();
        assert!(matches!(
            o.transport(),
            Transport::Wss(TlsConfiguration::Rustls(_))
        ));
        let bad = dir.path().join("missing.pem");
        assert!(Endpoint::parse("wss://h")
            .unwrap()
            .mqtt_options("c", Some(&bad))
            .is_err());
    }

    /// What goes on the wire for `ws://`: an HTTP upgrade for the URL's path,
    /// asking for the `mqtt` subprotocol.
    #[tokio::test]
    async fn websocket_request_uses_the_path_and_the_mqtt_subprotocol() {
        use tokio::io::AsyncReadExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                let n = s.read(&mut buf).await.unwrap();
                assert!(n > 0, "client closed before the end of the request");
                req.extend_from_slice(&buf[..n]);
            }
            String::from_utf8(req).unwrap()
        });
        let url = format!("ws://127.0.0.1:{port}/feeds/live");
        let opts = Endpoint::parse(&url)
            .unwrap()
            .mqtt_options("c", None)
            .unwrap();
        let (_client, mut events) = rumqttc::AsyncClient::new(opts, 10);
        // The server answers nothing and closes: the poll fails, the request is in.
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), events.poll()).await;
        let req = server.await.unwrap().to_ascii_lowercase();
        assert!(req.starts_with("get /feeds/live http/1.1\r\n"), "{req}");
        assert!(
            req.contains("\r\nsec-websocket-protocol: mqtt\r\n"),
            "{req}"
        );
        assert!(req.contains("\r\nupgrade: websocket\r\n"), "{req}");
    }

    #[test]
    fn loopback() {
        for url in [
            "ws://localhost",
            "ws://LOCALHOST:1",
            "ws://127.0.0.1",
            "ws://127.8.9.10:80/x",
            "ws://[::1]:9001",
        ] {
            assert!(Endpoint::parse(url).unwrap().is_loopback(), "{url}");
        }
        for url in [
            "ws://mqtt.example.com",
            "ws://localhost.example.com",
            "ws://10.0.0.1",
            "ws://[::2]",
            "ws://0.0.0.0",
        ] {
            assert!(!Endpoint::parse(url).unwrap().is_loopback(), "{url}");
        }
    }

    #[test]
    fn rejects() {
        for bad in [
            "http://x",
            "mqtts://",
            "wss://",
            "wss:///mqtt",
            "mqtts://u:p@h",
            "wss://u:p@h/mqtt",
            "mqtt://h:port",
            "mqtt://h:0",
            "mqtt://h:65536",
            "mqtt://h/topic",
            "mqtts://h/mqtt",
            "wss://h/mqtt?token=x",
            "wss://h/mqtt#frag",
            "wss://h/a b",
            "wss://h/%zz",
            "wss://h/%4",
            "wss://[::1",
            "wss://[nothost]:1",
            "wss://[::1]x",
            "wss://h h",
            "mqtt.example.com:8883",
        ] {
            assert!(Endpoint::parse(bad).is_err(), "{bad}");
        }
    }
}
