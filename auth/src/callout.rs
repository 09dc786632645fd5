//! One authorization request in, one reply out — no I/O here, so every
//! decision can be unit-tested without a server.
//!
//! Follows nats-server's `processClientOrLeafCallout` (server/auth_callout.go):
//! - the request is an `authorization_request` JWT signed by the server's nkey,
//!   `aud` = `nats-authorization-request`, `sub` = the configured issuer account;
//!   when the server has an xkey configured it is sealed with the server's xkey to
//!   ours, and the server's public xkey comes in the `Nats-Server-Xkey` header;
//! - the reply is an `authorization_response` JWT with `sub` = the request's
//!   `user_nkey` and `aud` = the server id, sealed back to the server's xkey
//!   if the request was sealed;
//! - in non-operator mode the user JWT's issuer must be the configured issuer
//!   (no `issuer_account`), and its `aud` names the account the user lands in.
//!
//! A request we cannot authenticate gets an empty reply: nats-server reads that
//! as "not authorized, no reason supplied" and rejects at once instead of
//! waiting for its auth timeout.

use std::sync::Arc;

use anyhow::{anyhow, Context, Result};
use nkeys::{KeyPair, KeyPairType, XKey};

use crate::apps::{App, Apps};
use crate::config::{CalloutConfig, Config};
use crate::jwks::JwksCache;
use crate::jwt::{self, AuthorizationRequestClaims, AuthorizationResponseClaims, UserClaims};
use crate::permissions::{self, Grant};
use crate::token::{TokenError, TokenValidator, WebIdentity};

pub const AUTH_REQUEST_AUDIENCE: &str = "nats-authorization-request";
pub const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// The outcome of one request, for logging and metrics.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// User admitted into `account`, the account of application `app`.
    Allow {
        app: String,
        account: String,
        user: String,
        summary: String,
        expires: i64,
    },
    /// Request was genuine, the web credentials were refused. `app` is the
    /// application the token was for, when the refusal came after it was
    /// chosen (e.g. a bad claim value), else `None`.
    Deny {
        app: Option<String>,
        user: Option<String>,
        reason: &'static str,
        detail: String,
    },
    /// The request itself could not be trusted or read; answered with an empty reply.
    Invalid {
        reason: &'static str,
        detail: String,
    },
}

impl Decision {
    pub fn result_label(&self) -> &'static str {
        match self {
            Decision::Allow { .. } => "allow",
            Decision::Deny { .. } => "deny",
            Decision::Invalid { .. } => "invalid",
        }
    }

    /// The application the decision was about, if one was chosen.
    pub fn app(&self) -> Option<&str> {
        match self {
            Decision::Allow { app, .. } => Some(app),
            Decision::Deny { app, .. } => app.as_deref(),
            Decision::Invalid { .. } => None,
        }
    }
}

pub struct Handled {
    /// Bytes to send back on the request's reply subject.
    pub reply: Vec<u8>,
    pub decision: Decision,
    /// Server and client identification for the log line (never credentials).
    pub server: String,
    pub client: String,
}

pub struct Callout {
    issuer: KeyPair,
    issuer_pub: String,
    xkey: Option<XKey>,
    cfg: CalloutConfig,
    apps: Apps,
    validator: TokenValidator,
}

impl Callout {
    /// A callout with local keys only (no `jwks_url` / `oidc_issuer`).
    pub fn from_config(cfg: &Config) -> Result<Self> {
        Self::build(cfg, None)
    }

    /// `keys` is the IdP key cache, required exactly when the config names one.
    pub fn build(cfg: &Config, keys: Option<Arc<JwksCache>>) -> Result<Self> {
        let seed = cfg.callout.issuer_seed.load("callout.issuer_seed")?;
        let issuer = KeyPair::from_seed(&seed).map_err(|e| anyhow!("callout.issuer_seed: {e}"))?;
        if issuer.key_pair_type() != KeyPairType::Account {
            anyhow::bail!("callout.issuer_seed must be an account seed (SA...)");
        }
        let xkey = match &cfg.callout.xkey_seed {
            Some(s) => Some(
                XKey::from_seed(&s.load("callout.xkey_seed")?)
                    .map_err(|e| anyhow!("callout.xkey_seed: {e}"))?,
            ),
            None => None,
        };
        for s in &cfg.callout.allowed_servers {
            if jwt::public_key_type(s) != Some(KeyPairType::Server) {
                anyhow::bail!("callout.allowed_servers: {s:?} is not a server public key");
            }
        }
        let apps = Apps::from_config(cfg).context("applications")?;
        let validator = TokenValidator::new(&cfg.token, apps.audiences(), keys).context("token")?;
        Ok(Callout {
            issuer_pub: issuer.public_key(),
            issuer,
            xkey,
            cfg: cfg.callout.clone(),
            apps,
            validator,
        })
    }

    /// The applications tokens are admitted into.
    pub fn apps(&self) -> &Apps {
        &self.apps
    }

    /// The IdP key cache, for on-demand refreshes on an unknown `kid`.
    pub fn key_cache(&self) -> Option<&Arc<JwksCache>> {
        self.validator.remote()
    }

    /// Token verification keys currently loaded (local and fetched).
    pub fn key_count(&self) -> usize {
        self.validator.key_count()
    }

    pub fn issuer_public_key(&self) -> &str {
        &self.issuer_pub
    }

    pub fn xkey_public_key(&self) -> Option<String> {
        self.xkey.as_ref().map(|x| x.public_key())
    }

    fn invalid(reason: &'static str, detail: impl Into<String>) -> Handled {
        Handled {
            reply: Vec::new(),
            decision: Decision::Invalid {
                reason,
                detail: detail.into(),
            },
            server: String::new(),
            client: String::new(),
        }
    }

    /// Handle one message from `$SYS.REQ.USER.AUTH`.
    pub fn handle(&self, payload: &[u8], server_xkey: Option<&str>) -> Handled {
        // 1. Decrypt if the server sealed it.
        let (plain, sender) = match (server_xkey, &self.xkey) {
            (Some(pk), Some(ours)) => {
                let Ok(sender) = XKey::from_public_key(pk) else {
                    return Self::invalid("bad_xkey", "server xkey header is not a public xkey");
                };
                match ours.open(payload, &sender) {
                    Ok(p) => (p, Some(sender)),
                    Err(e) => return Self::invalid("decrypt_failed", e.to_string()),
                }
            }
            (Some(_), None) => {
                return Self::invalid(
                    "unexpected_encryption",
                    "request is encrypted but no callout.xkey_seed is configured",
                )
            }
            (None, _) if self.cfg.require_encryption => {
                return Self::invalid(
                    "plaintext_refused",
                    "plaintext request but callout.require_encryption is set",
                )
            }
            (None, _) => (payload.to_vec(), None),
        };
        let Ok(text) = std::str::from_utf8(&plain) else {
            return Self::invalid("malformed_request", "not utf-8");
        };

        // 2. Authenticate the request.
        let req: AuthorizationRequestClaims = match jwt::decode_verified(text.trim()) {
            Ok(r) => r,
            Err(e) => return Self::invalid("bad_request_jwt", e.to_string()),
        };
        if let Err((reason, detail)) = self.check_request(&req, sender.as_ref()) {
            return Self::invalid(reason, detail);
        }
        let server = format!("{}({})", req.nats.server_id.name, req.nats.server_id.id);
        let ci = &req.nats.client_info;
        let client = format!("cid={} host={} name={:?}", ci.id, ci.host, ci.name);

        // 3. Decide, then answer.
        let (decision, resp_claims) = match self.decide(&req) {
            Ok((id, app, grant)) => match self.user_jwt(&req, &id, app, &grant) {
                Ok((jwt, expires)) => (
                    Decision::Allow {
                        app: app.name.clone(),
                        account: app.account.clone(),
                        user: id.user,
                        summary: grant.summary,
                        expires,
                    },
                    AuthorizationResponseClaims::ok(
                        &req.nats.user_nkey,
                        &req.nats.server_id.id,
                        jwt,
                    ),
                ),
                Err(e) => {
                    let decision = Decision::Invalid {
                        reason: "internal",
                        detail: e.to_string(),
                    };
                    return Handled {
                        reply: Vec::new(),
                        decision,
                        server,
                        client,
                    };
                }
            },
            Err(d) => {
                let msg = match &d {
                    Decision::Deny { detail, .. } => detail.clone(),
                    _ => "not authorized".to_string(),
                };
                (
                    d,
                    AuthorizationResponseClaims::error(
                        &req.nats.user_nkey,
                        &req.nats.server_id.id,
                        &msg,
                    ),
                )
            }
        };
        let reply = match self.encode_response(resp_claims, sender.as_ref()) {
            Ok(r) => r,
            Err(e) => {
                return Handled {
                    reply: Vec::new(),
                    decision: Decision::Invalid {
                        reason: "internal",
                        detail: e.to_string(),
                    },
                    server,
                    client,
                }
            }
        };
        Handled {
            reply,
            decision,
            server,
            client,
        }
    }

    fn check_request(
        &self,
        req: &AuthorizationRequestClaims,
        sender: Option<&XKey>,
    ) -> Result<(), (&'static str, String)> {
        let std = &req.std;
        if jwt::public_key_type(&std.iss) != Some(KeyPairType::Server) {
            return Err((
                "bad_request_issuer",
                format!("issuer {:?} is not a server key", std.iss),
            ));
        }
        if !self.cfg.allowed_servers.is_empty() && !self.cfg.allowed_servers.contains(&std.iss) {
            return Err((
                "unknown_server",
                format!("server {} not in callout.allowed_servers", std.iss),
            ));
        }
        if std.aud != AUTH_REQUEST_AUDIENCE {
            return Err(("bad_request_audience", format!("audience {:?}", std.aud)));
        }
        let now = jwt::now_unix();
        if std.exp == 0 || std.exp < now {
            return Err(("request_expired", format!("exp {} < now {now}", std.exp)));
        }
        if std.nbf > now {
            return Err(("request_not_yet_valid", format!("nbf {}", std.nbf)));
        }
        if req.nats.kind != "authorization_request" {
            return Err(("bad_request_type", format!("type {:?}", req.nats.kind)));
        }
        // The server addresses the request to the issuer it will check the answer
        // against; if that is not our key, our answer would be refused anyway.
        if std.sub != self.issuer_pub {
            return Err((
                "wrong_issuer_account",
                format!("request for issuer {}, we are {}", std.sub, self.issuer_pub),
            ));
        }
        if jwt::public_key_type(&req.nats.user_nkey) != Some(KeyPairType::User) {
            return Err(("bad_user_nkey", "user_nkey is not a user public key".into()));
        }
        if req.nats.server_id.id.is_empty() {
            return Err(("bad_server_id", "missing server_id.id".into()));
        }
        if let (Some(s), false) = (sender, req.nats.server_id.xkey.is_empty()) {
            if s.public_key() != req.nats.server_id.xkey {
                return Err((
                    "xkey_mismatch",
                    "header xkey differs from server_id.xkey".into(),
                ));
            }
        }
        Ok(())
    }

    /// The web token: CONNECT `auth_token`, else `pass` (any `user`).
    fn web_token(req: &AuthorizationRequestClaims) -> &str {
        let o = &req.nats.connect_opts;
        if !o.auth_token.is_empty() {
            &o.auth_token
        } else {
            &o.pass
        }
    }

    /// Validate the token (against every application's audiences), choose
    /// the one application its `aud` names, and map its claims with that
    /// application's permissions. Any failure refuses the token: there is no
    /// fallback to another application.
    fn decide(
        &self,
        req: &AuthorizationRequestClaims,
    ) -> Result<(WebIdentity, &App, Grant), Decision> {
        let id = self
            .validator
            .validate(Self::web_token(req))
            .map_err(|e| deny(None, &e))?;
        let app = match self.apps.select(&id.claims) {
            Ok(app) => app,
            Err(e) => {
                return Err(Decision::Deny {
                    app: None,
                    user: Some(id.user),
                    reason: e.code(),
                    detail: e.to_string(),
                })
            }
        };
        match permissions::grant(&app.permissions, &id.claims) {
            Ok(g) => Ok((id, app, g)),
            Err(e) => Err(Decision::Deny {
                app: Some(app.name.clone()),
                user: Some(id.user),
                reason: e.code(),
                detail: e.to_string(),
            }),
        }
    }

    /// Build and sign the user JWT; returns it with its expiry, which is the
    /// web token's `exp` capped at `max_user_ttl_secs` from now.
    fn user_jwt(
        &self,
        req: &AuthorizationRequestClaims,
        id: &WebIdentity,
        app: &App,
        grant: &Grant,
    ) -> Result<(String, i64)> {
        let mut uc = UserClaims::new(&req.nats.user_nkey, &app.account);
        uc.std.name = id.user.clone();
        uc.std.exp = id
            .exp
            .min(jwt::now_unix() + self.cfg.max_user_ttl_secs as i64);
        permissions::apply(&app.permissions, grant, &mut uc.nats);
        let exp = uc.std.exp;
        Ok((jwt::encode(&mut uc, &self.issuer)?, exp))
    }

    fn encode_response(
        &self,
        mut claims: AuthorizationResponseClaims,
        sender: Option<&XKey>,
    ) -> Result<Vec<u8>> {
        let token = jwt::encode(&mut claims, &self.issuer)?;
        match (sender, &self.xkey) {
            (Some(server), Some(ours)) => ours
                .seal(token.as_bytes(), server)
                .map_err(|e| anyhow!("sealing response: {e}")),
            _ => Ok(token.into_bytes()),
        }
    }
}

fn deny(user: Option<String>, e: &TokenError) -> Decision {
    Decision::Deny {
        app: None,
        user,
        reason: e.code(),
        detail: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{
        AuthorizationRequest, ClientInformation, ConnectOptions, ServerId, StdClaims,
    };
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    use serde_json::{json, Value};

    const SECRET: &str = "unit-test-secret-unit-test-secret-0000";

    struct Fixture {
        callout: Callout,
        server: KeyPair,
        server_x: XKey,
        account: KeyPair,
    }

    fn fixture(with_xkey: bool) -> Fixture {
        fixture_with(with_xkey, "")
    }

    /// `extra` is appended to the config (e.g. `[[apps]]`).
    fn fixture_with(with_xkey: bool, extra: &str) -> Fixture {
        let account = KeyPair::new_account();
        let svc_x = XKey::new();
        let toml = format!(
            r#"
            [nats]
            servers = ["nats://127.0.0.1:4222"]
            [callout]
            issuer_seed = {{ value = "{}" }}
            {}
            account = "APP"
            max_user_ttl_secs = 60
            [token]
            issuers = ["idp"]
            audiences = ["web"]
            hs256_secret = {{ value = "{SECRET}" }}
            [[permissions.claims]]
            claim = "sports"
            subject = "sports.{{value}}.>"
            {extra}
            "#,
            account.seed().unwrap(),
            if with_xkey {
                format!("xkey_seed = {{ value = \"{}\" }}", svc_x.seed().unwrap())
            } else {
                String::new()
            },
        );
        let cfg = Config::from_toml(&toml).unwrap();
        Fixture {
            callout: Callout::from_config(&cfg).unwrap(),
            server: KeyPair::new_server(),
            server_x: XKey::new(),
            account,
        }
    }

    fn web_token(exp_in: i64) -> String {
        token_for(json!("web"), exp_in)
    }

    fn token_for(aud: Value, exp_in: i64) -> String {
        let c = json!({"sub":"bob","iss":"idp","aud":aud,"exp":jwt::now_unix()+exp_in,"sports":["football"]});
        encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap()
    }

    fn request(f: &Fixture, token: &str, user: &KeyPair) -> AuthorizationRequestClaims {
        AuthorizationRequestClaims {
            std: StdClaims {
                sub: f.account.public_key(),
                aud: AUTH_REQUEST_AUDIENCE.into(),
                exp: jwt::now_unix() + 2,
                ..Default::default()
            },
            nats: AuthorizationRequest {
                server_id: ServerId {
                    id: "SRVID".into(),
                    name: "s1".into(),
                    ..Default::default()
                },
                user_nkey: user.public_key(),
                client_info: ClientInformation::default(),
                connect_opts: ConnectOptions {
                    auth_token: token.into(),
                    ..Default::default()
                },
                kind: "authorization_request".into(),
                version: 2,
            },
        }
    }

    fn response(bytes: &[u8]) -> AuthorizationResponseClaims {
        jwt::decode_verified(std::str::from_utf8(bytes).unwrap()).unwrap()
    }

    #[test]
    fn allow_produces_user_jwt_for_requested_nkey_and_account() {
        let f = fixture(false);
        let user = KeyPair::new_user();
        let mut req = request(&f, &web_token(3600), &user);
        let h = f
            .callout
            .handle(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), None);
        assert!(
            matches!(h.decision, Decision::Allow { .. }),
            "{:?}",
            h.decision
        );
        let r = response(&h.reply);
        assert_eq!(r.std.iss, f.account.public_key());
        assert_eq!(r.std.sub, user.public_key());
        assert_eq!(r.std.aud, "SRVID");
        let u: UserClaims = jwt::decode_verified(&r.nats.jwt).unwrap();
        assert_eq!(u.std.sub, user.public_key());
        assert_eq!(u.std.aud, "APP");
        assert_eq!(u.std.name, "bob");
        assert!(
            u.nats.issuer_account.is_empty(),
            "non-operator mode forbids issuer_account"
        );
        assert_eq!(u.nats.sub.allow, vec!["sports.football.>"]);
        assert_eq!(u.nats.pub_.deny, vec![">"]);
        // Capped by max_user_ttl_secs (60), not the token's hour.
        assert!(u.std.exp <= jwt::now_unix() + 60);
    }

    const PARTNERS: &str = r#"
            [[apps]]
            name = "partners"
            account = "PARTNERS"
            audiences = ["partners-web", "partners-mobile"]
            [apps.permissions]
            static_subscribe = ["partners.news.>"]
            read_streams = ["SPORTS"]
            [[apps.permissions.claims]]
            claim = "sports"
            subject = "partners.{value}.>"
    "#;

    /// Run one token through the callout: the decision, and the user JWT if admitted.
    fn run(f: &Fixture, token: &str) -> (Decision, Option<UserClaims>) {
        let user = KeyPair::new_user();
        let mut req = request(f, token, &user);
        let h = f
            .callout
            .handle(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), None);
        let r = response(&h.reply);
        let uc = (!r.nats.jwt.is_empty()).then(|| jwt::decode_verified(&r.nats.jwt).unwrap());
        (h.decision, uc)
    }

    #[test]
    fn the_audience_chooses_the_account_and_its_permissions() {
        let f = fixture_with(false, PARTNERS);
        let (d, u) = run(&f, &token_for(json!("web"), 60));
        assert_eq!(d.app(), Some("default"), "{d:?}");
        let u = u.unwrap();
        assert_eq!(u.std.aud, "APP");
        assert_eq!(u.nats.sub.allow, vec!["sports.football.>"]);
        assert_eq!(u.nats.pub_.deny, vec![">"]);

        for aud in [
            json!("partners-web"),
            json!(["partners-mobile", "unrelated-api"]),
        ] {
            let (d, u) = run(&f, &token_for(aud.clone(), 60));
            assert!(
                matches!(&d, Decision::Allow { app, account, .. } if app == "partners" && account == "PARTNERS"),
                "{aud}: {d:?}"
            );
            let u = u.unwrap();
            assert_eq!(u.std.aud, "PARTNERS");
            assert_eq!(
                u.nats.sub.allow,
                vec!["partners.football.>", "partners.news.>"]
            );
            assert_eq!(u.nats.pub_.allow, vec!["$JS.API.DIRECT.GET.SPORTS"]);
        }
    }

    #[test]
    fn a_token_for_no_app_or_several_apps_is_refused() {
        let f = fixture_with(false, PARTNERS);
        let (d, u) = run(&f, &token_for(json!(["web", "partners-web"]), 60));
        assert!(u.is_none());
        match d {
            Decision::Deny {
                app: None,
                reason: "ambiguous_audience",
                detail,
                ..
            } => assert!(
                detail.contains("audience matches several applications"),
                "{detail}"
            ),
            other => panic!("{other:?}"),
        }
        // Unknown audience: refused exactly as before there were apps.
        let (d, u) = run(&f, &token_for(json!("someone-else"), 60));
        assert!(u.is_none());
        assert!(
            matches!(&d, Decision::Deny { app: None, reason: "wrong_audience", detail, .. } if detail == "wrong audience"),
            "{d:?}"
        );
        // A refusal after the app was chosen names it.
        let c = json!({"sub":"bob","iss":"idp","aud":"partners-web","exp":jwt::now_unix()+60,"sports":["*"]});
        let t = encode(
            &Header::new(Algorithm::HS256),
            &c,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let (d, _) = run(&f, &t);
        assert!(
            matches!(&d, Decision::Deny { app: Some(a), reason: "bad_claim_value", .. } if a == "partners"),
            "{d:?}"
        );
    }

    #[test]
    fn deny_answers_with_error_for_the_user() {
        let f = fixture(false);
        let user = KeyPair::new_user();
        let mut req = request(&f, &web_token(-600), &user);
        let h = f
            .callout
            .handle(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), None);
        assert!(matches!(
            h.decision,
            Decision::Deny {
                reason: "expired",
                ..
            }
        ));
        let r = response(&h.reply);
        assert!(r.nats.jwt.is_empty());
        assert_eq!(r.nats.error, "token expired");
    }

    #[test]
    fn untrusted_requests_get_an_empty_reply() {
        let f = fixture(false);
        let user = KeyPair::new_user();
        // Signed by an account, not a server.
        let mut req = request(&f, &web_token(60), &user);
        let h = f.callout.handle(
            jwt::encode(&mut req, &KeyPair::new_account())
                .unwrap()
                .as_bytes(),
            None,
        );
        assert!(matches!(
            h.decision,
            Decision::Invalid {
                reason: "bad_request_issuer",
                ..
            }
        ));
        assert!(h.reply.is_empty());
        // Wrong audience.
        let mut req = request(&f, &web_token(60), &user);
        req.std.aud = "other".into();
        let h = f
            .callout
            .handle(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), None);
        assert!(matches!(
            h.decision,
            Decision::Invalid {
                reason: "bad_request_audience",
                ..
            }
        ));
        // Expired request.
        let mut req = request(&f, &web_token(60), &user);
        req.std.exp = jwt::now_unix() - 5;
        let h = f
            .callout
            .handle(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), None);
        assert!(matches!(
            h.decision,
            Decision::Invalid {
                reason: "request_expired",
                ..
            }
        ));
        // Addressed to another issuer account.
        let mut req = request(&f, &web_token(60), &user);
        req.std.sub = KeyPair::new_account().public_key();
        let h = f
            .callout
            .handle(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), None);
        assert!(matches!(
            h.decision,
            Decision::Invalid {
                reason: "wrong_issuer_account",
                ..
            }
        ));
        // Encrypted, but we have no xkey.
        let h = f.callout.handle(b"sealed", Some(&f.server_x.public_key()));
        assert!(matches!(
            h.decision,
            Decision::Invalid {
                reason: "unexpected_encryption",
                ..
            }
        ));
    }

    #[test]
    fn encrypted_request_gets_encrypted_response() {
        let f = fixture(true);
        let user = KeyPair::new_user();
        let mut req = request(&f, &web_token(60), &user);
        req.nats.server_id.xkey = f.server_x.public_key();
        let svc_x = XKey::from_public_key(&f.callout.xkey_public_key().unwrap()).unwrap();
        let sealed = f
            .server_x
            .seal(jwt::encode(&mut req, &f.server).unwrap().as_bytes(), &svc_x)
            .unwrap();
        let h = f.callout.handle(&sealed, Some(&f.server_x.public_key()));
        assert!(
            matches!(h.decision, Decision::Allow { .. }),
            "{:?}",
            h.decision
        );
        assert!(!h.reply.starts_with(b"eyJ"), "response must be sealed");
        let opened = f.server_x.open(&h.reply, &svc_x).unwrap();
        assert_eq!(response(&opened).std.sub, user.public_key());
    }
}
