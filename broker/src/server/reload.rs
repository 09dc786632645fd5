//! Configuration reload: on SIGHUP and on `$SYS.REQ.SERVER.<id>.RELOAD`.
//!
//! Both read the configuration again the way the process read it at start
//! (the `-c` file, then the command-line flags). Only `main` knows those, so
//! it hands the server a [`ConfigSource`]; the system service asks the
//! server to reload and never sees where the options come from.
//!
//! A reload is all or nothing, as in nats-server: a change that needs a
//! restart, or a file that does not parse, or certificates that do not load,
//! fail the whole reload with nats-server's error and keep every running
//! setting.

use std::sync::Arc;
use std::time::SystemTime;

use tracing::{error, info, warn};

use super::Server;
use crate::client::ClosedState;
use crate::options::Options;

/// nats-server's answer when there is no file to read again.
pub const NO_CONFIG_FILE: &str =
    "can only reload config when a file is provided using -c or --config";

/// Where a running server reads its configuration again.
pub trait ConfigSource: Send + Sync {
    /// The options as they read now, and the warnings reading them gave;
    /// the error in nats-server's words when they do not read.
    fn load(&self) -> Result<(Options, Vec<String>), String>;

    /// Called once new options are in place (the log level lives outside
    /// the server).
    fn applied(&self, opts: &Options);
}

impl Server {
    /// Give the server what [`Server::reload_config`] reads. Set once, by
    /// `main`, when the configuration came from a file.
    pub fn set_config_source(&self, source: Box<dyn ConfigSource>) {
        if self.config_source.set(source).is_err() {
            warn!("configuration source set twice; keeping the first");
        }
    }

    /// Read the configuration again and apply it, one reload at a time.
    /// Logs the outcome in nats-server's lines, and returns the error a
    /// `RELOAD` request answers with.
    pub fn reload_config(self: &Arc<Self>) -> Result<(), String> {
        let _one_at_a_time = self.reloading.lock();
        let result = match self.config_source.get() {
            None => Err(NO_CONFIG_FILE.to_string()),
            Some(source) => source.load().and_then(|(opts, warnings)| {
                for w in &warnings {
                    warn!("{w}");
                }
                self.reload(opts)?;
                source.applied(&self.opts());
                Ok(())
            }),
        };
        if let Err(e) = &result {
            error!("Failed to reload server configuration: {e}");
        }
        result
    }

    /// Swap in new options. Users, logging, limits and certificates for new
    /// connections take effect at once, and routes added or removed are
    /// dialled or closed; a change that needs a restart is refused, and
    /// then nothing changes.
    pub fn reload(self: &Arc<Self>, mut new_opts: Options) -> Result<(), String> {
        new_opts.resolve_defaults();
        let old = self.opts();
        if let Some(why) = refusal(&old, &new_opts) {
            return Err(why);
        }
        // Certificates are read again on every reload (rotation keeps the
        // paths); ones that do not load fail the reload.
        let tls = crate::tls::TlsContexts::build(&new_opts).map_err(|e| format!("{e:#}"))?;
        if old.debug != new_opts.debug {
            info!("Reloaded: debug = {}", new_opts.debug);
        }
        if old.trace != new_opts.trace {
            info!("Reloaded: trace = {}", new_opts.trace);
        }
        if old.users != new_opts.users
            || old.username != new_opts.username
            || old.authorization != new_opts.authorization
        {
            info!("Reloaded: authorization users");
        }
        let (added, removed) = if new_opts.cluster.enabled() {
            route_changes(&old.cluster.routes, &new_opts.cluster.routes)
        } else {
            (Vec::new(), Vec::new())
        };
        *self.tls.write() = tls;
        *self.opts.write() = Arc::new(new_opts);
        *self.config_load_time.write() = SystemTime::now();
        if !added.is_empty() || !removed.is_empty() {
            self.apply_route_changes(&added, &removed);
        }
        info!("Reloaded server configuration");
        Ok(())
    }

    /// Routes a reload removed are no longer dialled and their connections
    /// close; routes it added are dialled (after the new options are in
    /// place, so the dial uses the new cluster settings).
    fn apply_route_changes(self: &Arc<Self>, added: &[String], removed: &[String]) {
        for url in removed {
            self.drop_route(url);
            for peer in self.routes.peers() {
                if peer.solicited && peer.url == *url {
                    peer.conn.close(ClosedState::RouteRemoved);
                    info!("Removed route {}", crate::redact::url(url));
                }
            }
        }
        for url in added {
            self.keep_route(url);
        }
        info!("Reloaded: cluster routes");
    }
}

/// The route URLs `new` adds to `old`, and those it removes.
fn route_changes(old: &[String], new: &[String]) -> (Vec<String>, Vec<String>) {
    let added = new.iter().filter(|u| !old.contains(u)).cloned().collect();
    let removed = old.iter().filter(|u| !new.contains(u)).cloned().collect();
    (added, removed)
}

/// Why `new` cannot replace `old` in a running server: the options that
/// need a restart, in nats-server's `config reload not supported for ...`
/// words.
fn refusal(old: &Options, new: &Options) -> Option<String> {
    let unsupported = |what: &str| Some(format!("config reload not supported for {what}"));
    if old.host != new.host {
        return unsupported(&format!("Host: old={}, new={}", old.host, new.host));
    }
    // Port 0 (a random port) in the new file is ignored, as nats-server does.
    if new.port != 0 && old.port != new.port {
        return unsupported(&format!("Port: old={}, new={}", old.port, new.port));
    }
    // A cluster port with no host listens on every address; nats-server
    // compares that default, so a cluster added by a reload is refused for
    // its host.
    let cluster_host = |o: &Options| match (&o.cluster.port, o.cluster.host.as_str()) {
        (Some(_), "") => "0.0.0.0".to_string(),
        (_, host) => host.to_string(),
    };
    let (old_host, new_host) = (cluster_host(old), cluster_host(new));
    if old_host != new_host {
        return unsupported(&format!("cluster host: old={old_host}, new={new_host}"));
    }
    if old.cluster.port != new.cluster.port {
        return unsupported(&format!(
            "cluster port: old={}, new={}",
            old.cluster.port.unwrap_or(0),
            new.cluster.port.unwrap_or(0)
        ));
    }
    // The websocket block cannot change (its certificates can).
    let (mut ws_old, mut ws_new) = (old.websocket.clone(), new.websocket.clone());
    ws_old.tls = None;
    ws_new.tls = None;
    if ws_old != ws_new {
        return unsupported("websocket");
    }
    if old.operator != new.operator {
        return unsupported("operator mode");
    }
    // Accounts (exports, imports, limits, default permissions) and the auth
    // callout are built once at start: a change kept only in the options
    // would look applied and guard nothing, so it is refused. Users, and the
    // account each belongs to, reload.
    if old.accounts != new.accounts {
        return unsupported("accounts (a restart applies them)");
    }
    if old.auth_callout != new.auth_callout {
        return unsupported("auth_callout (a restart applies it)");
    }
    if old.system_account != new.system_account {
        return unsupported(&format!(
            "SystemAccount: old={}, new={}",
            old.system_account.as_deref().unwrap_or("$SYS"),
            new.system_account.as_deref().unwrap_or("$SYS")
        ));
    }
    let (js_old, js_new) = (&old.jetstream, &new.jetstream);
    if js_old.enabled != js_new.enabled {
        return unsupported(&format!(
            "JetStream: old={}, new={}",
            js_old.enabled, js_new.enabled
        ));
    }
    if js_old.store_dir != js_new.store_dir {
        return unsupported("jetstream storage dir");
    }
    if js_old.max_memory_store != js_new.max_memory_store
        || js_old.max_file_store != js_new.max_file_store
    {
        return unsupported("jetstream max memory and max store");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> Options {
        let mut o = Options::default();
        o.resolve_defaults();
        o
    }

    #[test]
    fn route_changes_are_what_was_added_and_removed() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        let (added, removed) = route_changes(
            &s(&["nats://a:6222", "nats://b:6222"]),
            &s(&["nats://b:6222", "nats://c:6222"]),
        );
        assert_eq!(added, s(&["nats://c:6222"]));
        assert_eq!(removed, s(&["nats://a:6222"]));
        assert_eq!(route_changes(&s(&["x"]), &s(&["x"])), (vec![], vec![]));
    }

    #[test]
    fn settings_for_new_connections_may_change() {
        let old = opts();
        let mut new = opts();
        new.debug = true;
        new.max_payload = 1024;
        new.username = Some("a".into());
        assert_eq!(refusal(&old, &new), None);
    }

    #[test]
    fn listen_addresses_need_a_restart() {
        let old = opts();
        let mut new = opts();
        new.port = old.port + 1;
        assert_eq!(
            refusal(&old, &new).as_deref(),
            Some(
                format!(
                    "config reload not supported for Port: old={}, new={}",
                    old.port, new.port
                )
                .as_str()
            )
        );
        new.port = 0;
        assert_eq!(refusal(&old, &new), None, "a random port is ignored");
        new.host = "127.0.0.2".into();
        assert!(refusal(&old, &new).unwrap().contains("for Host: old="));
        let mut new = opts();
        new.cluster.port = Some(6222);
        assert_eq!(
            refusal(&old, &new).as_deref(),
            Some("config reload not supported for cluster host: old=, new=0.0.0.0")
        );
        let mut old = opts();
        old.cluster.port = Some(6222);
        new.cluster.port = Some(6223);
        assert_eq!(
            refusal(&old, &new).as_deref(),
            Some("config reload not supported for cluster port: old=6222, new=6223")
        );
    }

    #[test]
    fn what_is_built_at_start_is_refused_not_ignored() {
        let old = opts();
        let mut new = opts();
        new.accounts.push(crate::options::AccountConfig {
            name: "APP".into(),
            ..Default::default()
        });
        assert_eq!(
            refusal(&old, &new).as_deref(),
            Some("config reload not supported for accounts (a restart applies them)")
        );
        let mut new = opts();
        new.auth_callout = Some(Default::default());
        assert!(refusal(&old, &new).unwrap().contains("auth_callout"));
    }

    #[test]
    fn jetstream_storage_needs_a_restart() {
        let old = opts();
        let mut new = opts();
        new.jetstream.enabled = true;
        assert!(refusal(&old, &new)
            .unwrap()
            .contains("JetStream: old=false, new=true"));
        let mut new = opts();
        new.jetstream.max_file_store = Some(1 << 30);
        assert_eq!(
            refusal(&old, &new).as_deref(),
            Some("config reload not supported for jetstream max memory and max store")
        );
        let mut new = opts();
        new.system_account = Some("SYS".into());
        assert_eq!(
            refusal(&old, &new).as_deref(),
            Some("config reload not supported for SystemAccount: old=$SYS, new=SYS")
        );
    }
}
