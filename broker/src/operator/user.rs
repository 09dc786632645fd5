//! Admitting a client by its user JWT, in nats-server's order
//! (`processClientOrLeafAuthentication`): the JWT, its account, the
//! account's trust in the JWT's issuer (scoped signing keys replace the
//! user's permissions with their template), the nonce signature, revocation,
//! source network and connect-time windows. Any failure is a refusal; the
//! reason goes to the debug log only, as nats-server answers every one of
//! them with the same `Authorization Violation`.

use std::time::{Duration, SystemTime};

use tribune_auth::jwt::{
    self, AccountClaims, UserClaims, UserLimitsClaims, UserPermissionLimits, UserScope,
};

use super::resolver::Resolver;
use super::times;
use crate::auth::claims::{
    check_times, cidr_contains, cidr_is_valid, permissions_from_jwt, permissions_of,
};
use crate::auth::{self, Expiry, Identity, Login};
use crate::limits::{ConnLimits, Limit};

/// Check the CONNECT's user JWT and build the identity it grants. `Err`
/// carries why not, for the debug log.
pub fn authenticate(resolver: &dyn Resolver, login: Login<'_>) -> Result<Identity, String> {
    let token = login.connect.jwt.as_deref().unwrap_or("");
    if token.is_empty() {
        return Err("Authentication requires a user JWT".into());
    }
    let mut user: UserClaims =
        jwt::decode_verified(token).map_err(|e| format!("User JWT not valid: {e:#}"))?;
    validate(&user).map_err(|e| format!("User JWT no longer valid: {e}"))?;
    // Permissions and limits as nats-server reads them: an absent limit is
    // zero, not unlimited.
    let exact: UserLimitsClaims =
        jwt::decode_payload(token).map_err(|e| format!("User JWT not valid: {e:#}"))?;
    let issuer = if user.nats.issuer_account.is_empty() {
        user.std.iss.clone()
    } else {
        user.nats.issuer_account.clone()
    };
    let account = resolver
        .account(&issuer)
        .ok_or_else(|| format!("Account JWT lookup error: account {issuer:?} not found"))?;
    match account.issuer_scope(&user.std.iss) {
        None => return Err("User JWT issuer is not known".into()),
        Some(None) => exact.nats.apply_to(&mut user.nats),
        Some(Some(scope)) => apply_scope(scope, &exact.nats, &mut user, &account)?,
    }
    let now = jwt::now_unix();
    if account.std.exp > 0 && now >= account.std.exp {
        return Err("Account JWT has expired".into());
    }
    let u = &user.nats;
    if u.bearer_token && account.nats.limits.disallow_bearer {
        return Err("Account does not allow bearer tokens".into());
    }
    let types = auth::connection_types(&u.allowed_connection_types);
    if types.known.is_empty() && !types.unknown.is_empty() {
        return Err(format!("unknown connection types {:?}", types.unknown));
    }
    if !auth::connection_type_allowed(&types.known, login.conn_type) {
        return Err("Connection type not allowed".into());
    }
    if !u.bearer_token {
        let sig = login.connect.sig.as_deref().unwrap_or("");
        if sig.is_empty() {
            return Err("Signature missing".into());
        }
        if !auth::nkey_signature_ok(&user.std.sub, login.nonce, sig) {
            return Err("Signature not verified".into());
        }
    }
    if account.is_revoked(&user.std.sub, user.std.iat) {
        return Err("User authentication revoked".into());
    }
    if !u.src.is_empty()
        && !login
            .source
            .is_some_and(|ip| u.src.iter().any(|c| cidr_contains(c, ip)))
    {
        return Err(format!("Bad src Ip {:?}", login.source));
    }
    let window = times::window(&u.times, &u.locale).map_err(|e| match e {
        times::Outside::Now => "Outside connect times".to_string(),
        times::Outside::Unreadable(why) => format!("Outside connect times: {why}"),
    })?;
    Ok(identity(&user, &account, window))
}

/// The account a self-consistently signed user JWT names (its
/// `issuer_account`, else its issuer): which account to look up before
/// [`authenticate`] checks the rest. A JWT whose signature fails names
/// none; anyone can still mint a key and sign one, so a client can make
/// the server ask its peers once per login, as with nats-server.
pub fn account_of(token: Option<&str>) -> Option<String> {
    let user: UserClaims = jwt::decode_verified(token?).ok()?;
    Some(if user.nats.issuer_account.is_empty() {
        user.std.iss
    } else {
        user.nats.issuer_account
    })
}

/// The checks nats-io/jwt's `Validate` makes that block a user JWT.
fn validate(user: &UserClaims) -> Result<(), String> {
    check_times(&user.std).map_err(str::to_string)?;
    if jwt::public_key_type(&user.std.sub) != Some(nkeys::KeyPairType::User) {
        return Err(format!("{:?} is not a user public key", user.std.sub));
    }
    // nats-io/jwt parses these as CIDRs: a bare address is invalid.
    let cidr = |c: &&String| c.contains('/') && cidr_is_valid(c);
    if let Some(bad) = user.nats.src.iter().find(|c| !cidr(c)) {
        return Err(format!("invalid src {bad:?}"));
    }
    if !user.nats.issuer_account.is_empty()
        && jwt::public_key_type(&user.nats.issuer_account) != Some(nkeys::KeyPairType::Account)
    {
        return Err("issuer_account is not an account public key".into());
    }
    Ok(())
}

/// A user signed by a scoped key gets the scope's permissions and limits,
/// with its templates filled in; it may carry none of its own.
fn apply_scope(
    scope: &UserScope,
    own: &UserPermissionLimits,
    user: &mut UserClaims,
    account: &AccountClaims,
) -> Result<(), String> {
    if !own.is_empty() {
        return Err(
            "User JWT is not valid: scoped users require no permissions or limits set".into(),
        );
    }
    let mut t = scope.template.clone();
    let values = TemplateValues {
        name: &user.std.name,
        subject: &user.std.sub,
        account_name: &account.std.name,
        account_subject: &account.std.sub,
    };
    for list in [
        &mut t.pub_.allow,
        &mut t.pub_.deny,
        &mut t.sub.allow,
        &mut t.sub.deny,
    ] {
        for s in list.iter_mut() {
            *s = values
                .fill(s)
                .map_err(|e| format!("User JWT generated invalid permissions: {e}"))?;
        }
    }
    t.apply_to(&mut user.nats);
    Ok(())
}

/// What a scope template's `{{...}}` may name.
struct TemplateValues<'a> {
    name: &'a str,
    subject: &'a str,
    account_name: &'a str,
    account_subject: &'a str,
}

impl TemplateValues<'_> {
    /// Fill in `{{name()}}`, `{{subject()}}`, `{{account-name()}}`,
    /// `{{account-subject()}}`. Tag templates are refused, never dropped:
    /// a permission Tribune cannot compute must not become a wider one.
    fn fill(&self, subject: &str) -> Result<String, String> {
        let mut out = String::with_capacity(subject.len());
        let mut rest = subject;
        while let Some(open) = rest.find("{{") {
            out.push_str(&rest[..open]);
            let after = &rest[open + 2..];
            let close = after
                .find("}}")
                .ok_or_else(|| format!("unterminated template in {subject:?}"))?;
            let op = after[..close].trim().to_ascii_lowercase();
            let value = match op.as_str() {
                "name()" => self.name,
                "subject()" => self.subject,
                "account-name()" => self.account_name,
                "account-subject()" => self.account_subject,
                _ => {
                    return Err(format!(
                        "template operation in {subject:?}: {op:?} is not supported"
                    ))
                }
            };
            out.push_str(value);
            rest = &after[close + 2..];
        }
        out.push_str(rest);
        if out.is_empty() || out.split('.').any(|t| t.is_empty() || t.contains(' ')) {
            return Err(format!("generated invalid subject {out:?}"));
        }
        Ok(out)
    }
}

/// The identity a checked user JWT grants. It lives until the first of the
/// user's `exp`, the account's `exp` and the end of its connect window.
fn identity(user: &UserClaims, account: &AccountClaims, window: Option<Duration>) -> Identity {
    let u = &user.nats;
    let default_permissions = || {
        account
            .nats
            .default_permissions
            .as_ref()
            .and_then(|p| permissions_of(&p.pub_, &p.sub, p.resp))
    };
    let at = |secs: i64| (secs > 0).then(|| SystemTime::UNIX_EPOCH + secs_duration(secs));
    let user_ends = [at(user.std.exp), window.map(|d| SystemTime::now() + d)]
        .into_iter()
        .flatten()
        .min();
    let (expires, expiry) = match (user_ends, at(account.std.exp)) {
        (Some(u), Some(a)) if a < u => (Some(a), Expiry::Account),
        (None, Some(a)) => (Some(a), Expiry::Account),
        (u, _) => (u, Expiry::User),
    };
    Identity {
        user: Some(user.std.sub.clone()),
        account: Some(account.std.sub.clone()),
        permissions: permissions_from_jwt(u).or_else(default_permissions),
        default_permissions: permissions_from_jwt(u).is_none(),
        limits: ConnLimits {
            subs: Limit::from_jwt(u.subs),
            payload: Limit::from_jwt(u.payload),
        },
        expires,
        expiry,
        signed: Some(crate::auth::Signed {
            issuer: user.std.iss.clone(),
            issued_at: user.std.iat,
            scope: account
                .issuer_scope(&user.std.iss)
                .flatten()
                .map(crate::auth::scope_digest),
            bearer: u.bearer_token,
        }),
    }
}

fn secs_duration(secs: i64) -> Duration {
    Duration::from_secs(u64::try_from(secs).unwrap_or(0))
}

#[cfg(test)]
#[path = "user_tests.rs"]
mod tests;
