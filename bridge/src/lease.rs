//! The active bridge's lease, for `ha.mode = "single_active"`: where the
//! provider allows one MQTT connection, every node runs a bridge but only the
//! holder of this lease connects to the provider.
//!
//! The lease is one key in a replicated KV bucket whose `max_age` is the
//! lease's TTL. A standby takes it with a create (which fails while the key
//! exists); the holder renews it with an update conditional on the revision
//! it last wrote, so a holder that was replaced learns it on its next renewal.
//! When the holder dies the key expires after at most a TTL and a standby
//! takes over; on a clean stop the holder deletes the key and a standby
//! watching it takes over at once.
//!
//! Fencing: a holder that cannot renew (cut off from NATS) gives the lease up
//! after two thirds of the TTL counted from when it *sent* its last successful
//! renewal, so it has stopped before the key can expire and another bridge
//! start. Overlap is harmless anyway (both would publish the same
//! `Nats-Msg-Id`s, and the provider keeps one session per client id); the
//! fence keeps it from happening in the common case.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, kv};
use futures::StreamExt;
use tokio::sync::watch;

use crate::config::{HaConfig, JetStreamConfig};

/// How often the holder renews, as a fraction of the TTL.
const RENEWS_PER_TTL: u32 = 4;

/// Why a held lease ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Ended {
    /// Another bridge holds it now.
    TakenOver(String),
    /// No renewal succeeded for two thirds of the TTL.
    Unrenewed,
}

/// The bucket the lease lives in.
pub struct Leases {
    kv: kv::Store,
    key: String,
    ttl: Duration,
    holder: String,
}

/// A lease this bridge holds.
pub struct Lease {
    revision: u64,
    /// When the request of the last successful write was sent.
    written_at: Instant,
}

impl Leases {
    /// Creates or binds the lease bucket (replicated like the bridge's
    /// stream), retrying until it answers (a cluster just formed may take
    /// seconds to place a new R3 stream); `None` on shutdown.
    pub async fn open(
        client: async_nats::Client,
        ha: &HaConfig,
        js_cfg: &JetStreamConfig,
        holder: String,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Option<Leases> {
        let ttl = Duration::from_millis(ha.lease_ttl_ms);
        // Creating a replicated stream takes longer than a renewal may.
        let admin = jetstream::ContextBuilder::new()
            .timeout(Duration::from_millis(js_cfg.ack_timeout_ms).max(ttl))
            .build(client.clone());
        let config = kv::Config {
            bucket: ha.lease_bucket.clone(),
            description: "tribune-bridge: which bridge connects to the provider".into(),
            history: 1,
            max_age: ttl,
            storage: jetstream::stream::StorageType::File,
            num_replicas: js_cfg.replicas,
            ..Default::default()
        };
        let mut delay = Duration::from_millis(200);
        let store = loop {
            let attempt = match admin.get_key_value(&ha.lease_bucket).await {
                Ok(kv) => Ok(kv),
                Err(_) => admin
                    .create_key_value(config.clone())
                    .await
                    .map_err(|e| e.to_string()),
            };
            match attempt {
                Ok(kv) => break kv,
                Err(e) => tracing::warn!(
                    bucket = %ha.lease_bucket,
                    error = %e,
                    retry_in_ms = delay.as_millis() as u64,
                    "opening the lease bucket failed; retrying"
                ),
            }
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = until_true(shutdown) => return None,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        };
        // Renewals and takeovers use the bucket through a context whose
        // requests time out within a renewal period.
        let js = jetstream::ContextBuilder::new()
            .timeout(ttl / RENEWS_PER_TTL)
            .build(client);
        let kv = match js.get_key_value(&ha.lease_bucket).await {
            Ok(kv) => kv,
            Err(_) => store,
        };
        Some(Leases {
            kv,
            key: ha.lease_key.clone(),
            ttl,
            holder,
        })
    }

    fn renew_every(&self) -> Duration {
        self.ttl / RENEWS_PER_TTL
    }

    fn fence(&self) -> Duration {
        self.ttl * 2 / 3
    }

    /// Waits until this bridge holds the lease; `None` on shutdown.
    pub async fn acquire(&self, shutdown: &mut watch::Receiver<bool>) -> Option<Lease> {
        let mut reported = None::<String>;
        // Wakes on a change of the key (a clean release deletes it); expiry by
        // max_age removes the message without a marker, so polling covers it.
        let mut watch = self.kv.watch(&self.key).await.ok();
        loop {
            let sent = Instant::now();
            match self.kv.create(&self.key, self.holder.clone().into()).await {
                Ok(revision) => {
                    tracing::info!(holder = %self.holder, revision, "took the active lease");
                    return Some(Lease {
                        revision,
                        written_at: sent,
                    });
                }
                Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                    match self.kv.entry(&self.key).await {
                        // Our own create whose ack was lost.
                        Ok(Some(entry)) if entry.value == self.holder.as_bytes() => {
                            return Some(Lease {
                                revision: entry.revision,
                                written_at: sent,
                            });
                        }
                        Ok(Some(entry)) => {
                            let other = String::from_utf8_lossy(&entry.value).into_owned();
                            if reported.as_deref() != Some(other.as_str()) {
                                tracing::info!(active = %other, "standing by: another bridge holds the lease");
                                reported = Some(other);
                            }
                        }
                        _ => {}
                    }
                }
                Err(e) => tracing::warn!(error = %e, "taking the lease failed; retrying"),
            }
            let changed = async {
                match watch.as_mut() {
                    Some(w) => loop {
                        match w.next().await {
                            Some(Ok(e)) if e.operation != kv::Operation::Put => return,
                            Some(Ok(_)) => {}
                            _ => std::future::pending::<()>().await,
                        }
                    },
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep(self.renew_every()) => {}
                () = until_true(shutdown) => return None,
            }
        }
    }

    /// Renews `lease` until it is lost (the reason is returned) or `release`
    /// turns true (then the key is deleted and `None` returned).
    pub async fn hold(
        &self,
        mut lease: Lease,
        mut release: watch::Receiver<bool>,
    ) -> Option<Ended> {
        let mut tick = tokio::time::interval(self.renew_every());
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = until_true(&mut release) => {
                    self.release(&lease).await;
                    return None;
                }
            }
            if let Err(ended) = self.renew(&mut lease).await {
                return Some(ended);
            }
        }
    }

    async fn renew(&self, lease: &mut Lease) -> Result<(), Ended> {
        let sent = Instant::now();
        match self
            .kv
            .update(&self.key, self.holder.clone().into(), lease.revision)
            .await
        {
            Ok(revision) => {
                lease.revision = revision;
                lease.written_at = sent;
                return Ok(());
            }
            Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                match self.kv.entry(&self.key).await {
                    // Our own renewal whose ack was lost.
                    Ok(Some(entry))
                        if entry.value == self.holder.as_bytes()
                            && entry.operation == kv::Operation::Put =>
                    {
                        lease.revision = entry.revision;
                        lease.written_at = sent;
                        return Ok(());
                    }
                    Ok(Some(entry)) if entry.operation == kv::Operation::Put => {
                        let other = String::from_utf8_lossy(&entry.value).into_owned();
                        tracing::warn!(active = %other, "lost the active lease to another bridge");
                        return Err(Ended::TakenOver(other));
                    }
                    Ok(_) => {
                        // Expired or deleted under us: a standby may be taking it.
                        tracing::warn!("the active lease expired before it was renewed");
                        return Err(Ended::Unrenewed);
                    }
                    Err(e) => tracing::warn!(error = %e, "reading the lease failed"),
                }
            }
            Err(e) => tracing::warn!(error = %e, "renewing the lease failed"),
        }
        if lease.written_at.elapsed() >= self.fence() {
            tracing::error!(
                fence_ms = self.fence().as_millis() as u64,
                "could not renew the active lease in time; stepping down"
            );
            return Err(Ended::Unrenewed);
        }
        Ok(())
    }

    async fn release(&self, lease: &Lease) {
        match self
            .kv
            .delete_expect_revision(&self.key, Some(lease.revision))
            .await
        {
            Ok(()) => tracing::info!("released the active lease"),
            Err(e) => {
                tracing::warn!(error = %e, "releasing the lease failed; it expires by itself")
            }
        }
    }
}

/// Resolves once `rx` holds true (or its sender is gone), holding no guard
/// across an await.
pub async fn until_true(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|v| *v).await;
}

/// This process's name in the lease: the configured instance (or the NATS
/// connection name and host), plus the pid and start time so a restarted
/// bridge is a different holder than the one it replaced.
pub fn holder_name(instance: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{instance}/{}/{nanos:x}", std::process::id())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holder_names_differ_per_start() {
        let a = holder_name("node-a");
        std::thread::sleep(Duration::from_millis(1));
        let b = holder_name("node-a");
        assert!(a.starts_with("node-a/"));
        assert_ne!(a, b);
    }
}
