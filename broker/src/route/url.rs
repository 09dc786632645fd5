//! Route URLs: `nats-route://[user:pass@]host:port[/]`, also accepted with
//! the `nats://` or `tls://` schemes or as a bare `host:port`.

use anyhow::{anyhow, bail, Result};
use parking_lot::Mutex;

/// A route to dial, and (once learned) the id of the server behind it.
#[derive(Debug)]
pub struct RouteUrl {
    /// As configured or gossiped, used to recognise the same route again.
    pub text: String,
    pub host: String,
    pub port: u16,
    pub user: Option<String>,
    pub pass: Option<String>,
    /// The server id seen on the other end the last time we connected.
    pub peer_id: Mutex<Option<String>>,
}

impl RouteUrl {
    pub fn parse(text: &str) -> Result<RouteUrl> {
        // Errors end up in logs: they name the URL without its password.
        let shown = crate::redact::url(text);
        let rest = match text.split_once("://") {
            Some((scheme, rest)) => {
                if !matches!(scheme, "nats-route" | "nats" | "tls" | "route") {
                    bail!("unsupported route scheme {scheme:?}");
                }
                rest
            }
            None => text,
        };
        let rest = rest.trim_end_matches('/');
        let (creds, hostport) = match rest.rsplit_once('@') {
            Some((c, h)) => (Some(c), h),
            None => (None, rest),
        };
        let (user, pass) = match creds {
            Some(c) => match c.split_once(':') {
                Some((u, p)) => (Some(u.to_string()), Some(p.to_string())),
                None => (Some(c.to_string()), None),
            },
            None => (None, None),
        };
        let (host, port) = hostport
            .rsplit_once(':')
            .ok_or_else(|| anyhow!("route URL {shown:?} has no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| anyhow!("route URL {shown:?} has a bad port"))?;
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        if host.is_empty() {
            bail!("route URL {shown:?} has no host");
        }
        Ok(RouteUrl {
            text: text.to_string(),
            host,
            port,
            user,
            pass,
            peer_id: Mutex::new(None),
        })
    }

    /// The URL without its password, for logs: as configured, with the
    /// password shown as `xxxxx` (see [`crate::redact::url`]).
    pub fn redacted(&self) -> String {
        crate::redact::url(&self.text).into_owned()
    }

    pub fn host_port(&self) -> String {
        crate::server::join_host_port(&self.host, self.port)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        let u = RouteUrl::parse("nats-route://ruser:T0pS3cr3t@10.0.1.5:6222/").unwrap();
        assert_eq!(
            (
                u.host.as_str(),
                u.port,
                u.user.as_deref(),
                u.pass.as_deref()
            ),
            ("10.0.1.5", 6222, Some("ruser"), Some("T0pS3cr3t"))
        );
        assert_eq!(u.redacted(), "nats-route://ruser:xxxxx@10.0.1.5:6222/");
        let err = RouteUrl::parse("nats-route://ruser:T0pS3cr3t@10.0.1.5").unwrap_err();
        assert!(!err.to_string().contains("T0pS3cr3t"), "{err}");
        let u = RouteUrl::parse("nats://127.0.0.2:6222").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.2", 6222));
        let u = RouteUrl::parse("[::1]:6222").unwrap();
        assert_eq!(u.host_port(), "[::1]:6222");
        for bad in [
            "nats-route://host",
            "http://a:1",
            "nats://:6222",
            "nats://a:99999",
        ] {
            assert!(RouteUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
