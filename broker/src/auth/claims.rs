//! What a user JWT says, read the way nats-server reads it: its validity
//! times, its source networks and its permissions. Shared by the auth
//! callout and operator mode, which both admit users by JWT.

use std::net::IpAddr;
use std::time::Duration;

use tribune_auth::jwt::{self, StdClaims};

use crate::permissions::{Permissions, ResponsePermission, SubjectPermission};

/// `exp` and `nbf` against the clock, as nats-io/jwt validates them.
pub fn check_times(c: &StdClaims) -> Result<(), &'static str> {
    let now = jwt::now_unix();
    if c.exp > 0 && now > c.exp {
        return Err("claim is expired");
    }
    if c.nbf > 0 && now < c.nbf {
        return Err("claim is not yet valid");
    }
    Ok(())
}

/// A user JWT's permissions as nats-server builds them: a side with neither
/// allow nor deny is unrestricted, and `resp` turns on `allow_responses`.
pub fn permissions_from_jwt(u: &jwt::User) -> Option<Permissions> {
    permissions_of(&u.pub_, &u.sub, u.resp)
}

/// [`permissions_from_jwt`] for the three fields wherever they come from
/// (a user JWT, a signing key's scope, an account's default permissions).
pub fn permissions_of(
    pub_: &jwt::Permission,
    sub: &jwt::Permission,
    resp: Option<jwt::ResponsePermission>,
) -> Option<Permissions> {
    let side = |p: &jwt::Permission| {
        (!p.allow.is_empty() || !p.deny.is_empty()).then(|| SubjectPermission {
            allow: (!p.allow.is_empty()).then(|| p.allow.clone()),
            deny: p.deny.clone(),
        })
    };
    let p = Permissions {
        publish: side(pub_),
        subscribe: side(sub),
        allow_responses: resp.map(|r| ResponsePermission {
            max_msgs: r.max.max(0) as u64,
            expires: Duration::from_nanos(r.ttl.max(0) as u64),
        }),
    };
    (p != Permissions::default()).then(|| p.with_response_defaults())
}

/// Is `cidr` a network (`10.0.0.0/8`) or a bare address nats-io/jwt accepts?
pub fn cidr_is_valid(cidr: &str) -> bool {
    let (net, bits) = match cidr.trim().split_once('/') {
        Some((n, b)) => (n, Some(b)),
        None => (cidr.trim(), None),
    };
    match (net.parse::<IpAddr>(), bits.map(str::parse::<u32>)) {
        (Ok(_), None) => true,
        (Ok(IpAddr::V4(_)), Some(Ok(b))) => b <= 32,
        (Ok(IpAddr::V6(_)), Some(Ok(b))) => b <= 128,
        _ => false,
    }
}

/// Is `ip` inside `cidr` (`10.0.0.0/8`, `::1/128`, or a bare address)?
pub fn cidr_contains(cidr: &str, ip: IpAddr) -> bool {
    let (net, bits) = match cidr.trim().split_once('/') {
        Some((n, b)) => (n, b.parse::<u32>().ok()),
        None => (cidr.trim(), None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tribune_auth::jwt::UserClaims;

    #[test]
    fn cidrs() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains("127.0.0.0/8", ip("127.0.0.1")));
        assert!(!cidr_contains("10.0.0.0/8", ip("127.0.0.1")));
        assert!(cidr_contains("0.0.0.0/0", ip("8.8.8.8")));
        assert!(cidr_contains("192.168.1.7", ip("192.168.1.7")));
        assert!(cidr_contains("::1/128", ip("::1")));
        assert!(!cidr_contains("::1/128", ip("127.0.0.1")));
        assert!(!cidr_contains("garbage", ip("127.0.0.1")));
    }

    #[test]
    fn jwt_permissions_follow_nats_server() {
        let mut u = UserClaims::new("U", "APP").nats;
        assert_eq!(
            permissions_from_jwt(&u),
            None,
            "no sections: account defaults"
        );
        u.sub.allow = vec!["sports.>".into()];
        u.pub_.deny = vec![">".into()];
        let p = permissions_from_jwt(&u).unwrap();
        assert!(!p.can_publish("x"));
        assert_eq!(
            p.check_subscribe("sports.a", None),
            crate::permissions::SubVerdict::Allowed
        );
        assert_eq!(
            p.check_subscribe("news", None),
            crate::permissions::SubVerdict::Denied
        );
        u.pub_.deny.clear();
        u.resp = Some(jwt::ResponsePermission { max: 0, ttl: 0 });
        let p = permissions_from_jwt(&u).unwrap();
        assert!(!p.can_publish("x"), "resp alone turns off blanket publish");
        assert_eq!(p.allow_responses, Some(ResponsePermission::default()));
    }

    #[test]
    fn times() {
        let now = jwt::now_unix();
        let mut c = StdClaims::default();
        assert!(check_times(&c).is_ok());
        c.exp = now - 5;
        assert!(check_times(&c).is_err());
        c.exp = now + 60;
        c.nbf = now + 30;
        assert!(check_times(&c).is_err());
        c.nbf = now - 1;
        assert!(check_times(&c).is_ok());
    }
}
