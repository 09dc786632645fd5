//! The `Origin` checks of `same_origin` and `allowed_origins`, as
//! nats-server makes them: an absent `Origin` is always accepted (a
//! non-browser client can send any origin it likes, so only browsers are
//! held to it); otherwise the scheme, host and port must match the request's
//! own (`same_origin`) and one of the allowed list (`allowed_origins`), the
//! port defaulting to 80 or 443 by scheme.

use std::collections::HashMap;

/// A parsed absolute URL, reduced to what origin checks compare.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Url {
    scheme: String,
    /// `host[:port]` as written.
    authority: String,
}

/// Go's `url.ParseRequestURI` reduced to scheme and authority: an absolute
/// URL (`scheme://authority/...`) or an absolute path. The error text is
/// Go's.
fn parse_request_uri(s: &str) -> Result<Url, String> {
    let invalid = || format!("parse {s:?}: invalid URI for request");
    if s.starts_with('/') {
        return Ok(Url {
            scheme: String::new(),
            authority: String::new(),
        });
    }
    let Some((scheme, rest)) = s.split_once(':') else {
        return Err(invalid());
    };
    let valid_scheme = scheme
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    if !valid_scheme {
        return Err(format!(
            "parse {s:?}: first path segment in URL cannot contain colon"
        ));
    }
    let authority = match rest.strip_prefix("//") {
        Some(after) => {
            let auth = after.split(['/', '?', '#']).next().unwrap_or_default();
            auth.rsplit_once('@').map_or(auth, |(_, h)| h).to_string()
        }
        // `scheme:opaque` is a URI, but not one a request may name.
        None if rest.starts_with('/') => String::new(),
        None => return Err(invalid()),
    };
    Ok(Url {
        scheme: scheme.to_ascii_lowercase(),
        authority,
    })
}

/// nats-server's `wsGetHostAndPort`: host lower-cased, and the port, or
/// the scheme's default when there is none.
fn host_and_port(tls: bool, authority: &str) -> Result<(String, String), String> {
    let default = || if tls { "443" } else { "80" }.to_string();
    if let Some(rest) = authority.strip_prefix('[') {
        let Some((host, after)) = rest.split_once(']') else {
            return Err(format!("address {authority}: missing ']' in address"));
        };
        return match after.strip_prefix(':') {
            Some(port) => Ok((host.to_ascii_lowercase(), port.to_string())),
            None if after.is_empty() => Ok((host.to_ascii_lowercase(), default())),
            None => Err(format!("address {authority}: missing port in address")),
        };
    }
    match authority.matches(':').count() {
        0 => Ok((authority.to_ascii_lowercase(), default())),
        1 => {
            let (h, p) = authority.split_once(':').unwrap_or((authority, ""));
            Ok((h.to_ascii_lowercase(), p.to_string()))
        }
        _ => Err(format!("address {authority}: too many colons in address")),
    }
}

/// Check one `allowed_origins` entry as nats-server does when it loads the
/// options; the error is its text.
pub fn validate_allowed(origin: &str) -> Result<(), String> {
    let u =
        parse_request_uri(origin).map_err(|e| format!("unable to parse allowed origin: {e}"))?;
    if u.scheme != "http" && u.scheme != "https" {
        return Err(format!(
            "unable to parse allowed origin {origin:?}: allowed origins must be absolute URLs with http or https scheme"
        ));
    }
    if u.authority.is_empty() {
        return Err(format!(
            "unable to parse allowed origin {origin:?}: host is required"
        ));
    }
    host_and_port(u.scheme == "https", &u.authority)
        .map(|_| ())
        .map_err(|e| format!("unable to parse allowed origin: {e}"))
}

/// The origin rules of a listener, prepared once per handshake.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    same_origin: bool,
    /// Host to the (scheme, port) pairs allowed for it.
    allowed: HashMap<String, Vec<(String, String)>>,
}

impl OriginPolicy {
    /// From `same_origin` and `allowed_origins` (entries that do not parse
    /// were refused when the options were loaded and are skipped).
    pub fn new(same_origin: bool, allowed_origins: &[String]) -> Self {
        let mut allowed: HashMap<String, Vec<(String, String)>> = HashMap::new();
        for o in allowed_origins {
            let Ok(u) = parse_request_uri(o) else {
                continue;
            };
            if let Ok((h, p)) = host_and_port(u.scheme == "https", &u.authority) {
                allowed.entry(h).or_default().push((u.scheme, p));
            }
        }
        OriginPolicy {
            same_origin,
            allowed,
        }
    }

    /// Accept or refuse a request's `origin` (the `Origin` header, else
    /// `Sec-WebSocket-Origin`), given its `Host` and whether it came over
    /// TLS. The error is what nats-server logs after "origin not allowed: ".
    pub fn check(&self, origin: Option<&str>, host: &str, tls: bool) -> Result<(), String> {
        if !self.same_origin && self.allowed.is_empty() {
            return Ok(());
        }
        let Some(origin) = origin.filter(|o| !o.is_empty()) else {
            return Ok(());
        };
        let u = parse_request_uri(origin)?;
        let (oh, op) = host_and_port(u.scheme == "https", &u.authority)?;
        if self.same_origin {
            let (rh, rp) = host_and_port(tls, host)?;
            let rs = if tls { "https" } else { "http" };
            if oh != rh || op != rp || !u.scheme.eq_ignore_ascii_case(rs) {
                return Err("not same origin".into());
            }
        }
        if !self.allowed.is_empty() {
            let ok = self
                .allowed
                .get(&oh)
                .is_some_and(|v| v.iter().any(|(s, p)| *s == u.scheme && *p == op));
            if !ok {
                return Err("not in the allowed list".into());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_policy_accepts_anything() {
        let p = OriginPolicy::new(false, &[]);
        assert!(p.check(Some("null"), "x", false).is_ok());
    }

    #[test]
    fn same_origin() {
        let p = OriginPolicy::new(true, &[]);
        assert!(p.check(None, "example.com", false).is_ok(), "no origin");
        assert!(p
            .check(Some("http://example.com"), "example.com:80", false)
            .is_ok());
        assert!(p
            .check(Some("http://EXAMPLE.com:80"), "example.com", false)
            .is_ok());
        assert!(p
            .check(Some("https://example.com"), "example.com:443", true)
            .is_ok());
        assert_eq!(
            p.check(Some("http://example.com:8080"), "example.com", false),
            Err("not same origin".into())
        );
        assert_eq!(
            p.check(Some("https://example.com"), "example.com", false),
            Err("not same origin".into())
        );
        assert_eq!(
            p.check(Some("null"), "example.com", false),
            Err("parse \"null\": invalid URI for request".into())
        );
    }

    #[test]
    fn allowed_list() {
        let p = OriginPolicy::new(
            false,
            &["http://example.com".into(), "https://other.org:8443".into()],
        );
        assert!(p.check(Some("http://example.com:80"), "h", false).is_ok());
        assert!(p
            .check(Some("https://other.org:8443/page"), "h", false)
            .is_ok());
        for bad in [
            "https://example.com",
            "http://other.org:8443",
            "http://evil.com",
        ] {
            assert_eq!(
                p.check(Some(bad), "h", false),
                Err("not in the allowed list".into()),
                "{bad}"
            );
        }
    }

    #[test]
    fn validation_texts() {
        assert!(validate_allowed("http://example.com").is_ok());
        assert!(validate_allowed("https://[::1]:443").is_ok());
        assert_eq!(
            validate_allowed("ftp://example.com"),
            Err("unable to parse allowed origin \"ftp://example.com\": allowed origins must be absolute URLs with http or https scheme".into())
        );
        assert_eq!(
            validate_allowed("http:///path"),
            Err("unable to parse allowed origin \"http:///path\": host is required".into())
        );
        assert!(validate_allowed("example.com")
            .unwrap_err()
            .starts_with("unable to parse allowed origin: parse"));
    }
}
