//! Where tribune-auth may fetch an identity provider's keys from.

use anyhow::{bail, Context, Result};
use url::Url;

/// Secure by default: `https`, or `http` only to a loopback address (a local
/// test IdP or a sidecar). Key material fetched over the network in clear
/// would let anyone on the path mint tokens.
pub fn check_url(u: &str) -> Result<Url> {
    let url = Url::parse(u).with_context(|| format!("{u:?} is not a URL"))?;
    match url.scheme() {
        "https" => {}
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(a)) => a.is_loopback(),
                Some(url::Host::Ipv6(a)) => a.is_loopback(),
                Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
                None => false,
            };
            if !loopback {
                bail!("{u:?}: http is only allowed to a loopback address; use https");
            }
        }
        other => bail!("{u:?}: scheme {other:?} not allowed; use https"),
    }
    if url.host().is_none() {
        bail!("{u:?} has no host");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_rules() {
        assert!(check_url("https://idp.example/jwks").is_ok());
        assert!(check_url("http://127.0.0.1:9/jwks").is_ok());
        assert!(check_url("http://[::1]:9/jwks").is_ok());
        assert!(check_url("http://localhost/jwks").is_ok());
        assert!(check_url("http://idp.example/jwks").is_err());
        assert!(check_url("http://10.0.0.1/jwks").is_err());
        assert!(check_url("file:///etc/jwks.json").is_err());
        assert!(check_url("not a url").is_err());
    }
}
