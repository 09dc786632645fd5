//! The EC2 side: building the SDK client and asking `DescribeInstances`.
//!
//! Credentials come from aws-config's default chain, which on EC2 ends at the
//! instance profile fetched through IMDSv2, so production needs no keys in
//! the config file; the instance role needs `ec2:DescribeInstances`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, ConfigLoader, Region};
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::types::Filter;
use aws_sdk_ec2::Client;

use super::{DiscoveryError, Ec2DiscoveryConfig, Peer};

/// One API call may not hang discovery: a refresh that takes longer than
/// this is reported and retried at the next tick.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(20);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Page size for `DescribeInstances`. The API's maximum; a cluster is a
/// handful of instances, but the tag may be shared by a bigger fleet.
const PAGE_SIZE: i32 = 1000;

/// A client from the default credential/region chain, with `cfg`'s region
/// and endpoint overrides applied.
pub async fn client_for(cfg: &Ec2DiscoveryConfig) -> Client {
    client_from_loader(cfg, aws_config::defaults(BehaviorVersion::latest())).await
}

/// Like [`client_for`] but starting from the caller's loader, e.g. one with
/// static test credentials (`loader.credentials_provider(...)`).
pub async fn client_from_loader(cfg: &Ec2DiscoveryConfig, mut loader: ConfigLoader) -> Client {
    if let Some(region) = &cfg.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &cfg.endpoint {
        loader = loader.endpoint_url(endpoint);
    }
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let sdk = loader.timeout_config(timeouts).load().await;
    Client::new(&sdk)
}

/// Running instances tagged `tag_key=tag_value` (in `vpc_id` if set), sorted
/// by instance id. Instances without a private IP are skipped (there is
/// nothing to route to). Follows every page of the answer.
pub async fn describe_peers(
    client: &Client,
    cfg: &Ec2DiscoveryConfig,
) -> Result<Vec<Peer>, DiscoveryError> {
    describe_peers_paged(client, cfg, PAGE_SIZE).await
}

/// [`describe_peers`] with an explicit page size (5..=1000), so tests can
/// exercise pagination with a few instances.
pub async fn describe_peers_paged(
    client: &Client,
    cfg: &Ec2DiscoveryConfig,
    page_size: i32,
) -> Result<Vec<Peer>, DiscoveryError> {
    let mut filters = vec![
        filter(&format!("tag:{}", cfg.tag_key), &cfg.tag_value),
        filter("instance-state-name", "running"),
    ];
    if let Some(vpc) = &cfg.vpc_id {
        filters.push(filter("vpc-id", vpc));
    }
    // Keyed by id: a page boundary moving under us must not duplicate a peer.
    let mut peers: BTreeMap<String, Peer> = BTreeMap::new();
    let mut token: Option<String> = None;
    let mut pages = 0u32;
    loop {
        let out = client
            .describe_instances()
            .set_filters(Some(filters.clone()))
            .max_results(page_size)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| api_error(cfg, e))?;
        pages += 1;
        for inst in out.reservations().iter().flat_map(|r| r.instances()) {
            let Some(id) = inst.instance_id() else {
                continue;
            };
            let Some(ip) = inst
                .private_ip_address()
                .and_then(|s| s.parse::<IpAddr>().ok())
            else {
                tracing::debug!("Cluster discovery: instance {id} has no private IP yet, skipping");
                continue;
            };
            let az = inst
                .placement()
                .and_then(|p| p.availability_zone())
                .map(str::to_string);
            peers.insert(
                id.to_string(),
                Peer {
                    instance_id: id.to_string(),
                    private_ip: ip,
                    availability_zone: az,
                },
            );
        }
        match out.next_token() {
            Some(next) if !next.is_empty() => {
                // A server that hands back the same token would loop forever.
                if token.as_deref() == Some(next) || pages >= 1000 {
                    return Err(DiscoveryError::Api {
                        operation: "DescribeInstances",
                        target: target(cfg),
                        detail: format!("pagination did not advance after {pages} page(s)"),
                        hint: None,
                    });
                }
                token = Some(next.to_string());
            }
            _ => break,
        }
    }
    Ok(peers.into_values().collect())
}

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// "region eu-west-1, endpoint http://...": where the call went.
fn target(cfg: &Ec2DiscoveryConfig) -> String {
    let region = cfg.region.as_deref().unwrap_or("from environment");
    match &cfg.endpoint {
        Some(e) => format!("region {region}, endpoint {e}"),
        None => format!("region {region}"),
    }
}

fn api_error<E, R>(cfg: &Ec2DiscoveryConfig, err: SdkError<E, R>) -> DiscoveryError
where
    E: std::error::Error + ProvideErrorMetadata + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let hint = match err.code() {
        Some("UnauthorizedOperation" | "AccessDenied" | "AccessDeniedException") => {
            Some("the instance role needs ec2:DescribeInstances")
        }
        Some("AuthFailure" | "InvalidClientTokenId" | "SignatureDoesNotMatch") => {
            Some("check the AWS credentials; on EC2 the instance profile")
        }
        Some("RequestLimitExceeded" | "Throttling") => {
            Some("EC2 API throttling; consider a longer refresh")
        }
        _ => match &err {
            SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
                Some("EC2 API endpoint unreachable")
            }
            SdkError::ConstructionFailure(_) if cfg.region.is_none() => {
                Some("no region configured: set discovery.ec2.region or AWS_REGION")
            }
            _ => None,
        },
    };
    DiscoveryError::Api {
        operation: "DescribeInstances",
        target: target(cfg),
        detail: error_chain(&err),
        hint,
    }
}

/// One line for the log: the service's code and message for API errors,
/// otherwise each error of the source chain once ("dispatch failure: io
/// error: ... Connection refused"). (The SDK's `DisplayErrorContext` appends
/// the whole `Debug` dump, which is unreadable in a server log.)
fn error_chain<E, R>(err: &SdkError<E, R>) -> String
where
    E: std::error::Error + ProvideErrorMetadata + 'static,
    R: std::fmt::Debug + 'static,
{
    if let Some(code) = err.code() {
        return format!("{code}: {}", err.message().unwrap_or("no message"));
    }
    chain(err)
}

fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts: Vec<String> = vec![err.to_string()];
    let mut source = err.source();
    while let Some(e) = source {
        let text = e.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = e.source();
    }
    parts.join(": ")
}

/// This instance's id from IMDSv2, to exclude ourselves by id. Bounded to a
/// couple of seconds: off EC2 (a laptop, CI, LocalStack) there is no IMDS
/// and discovery falls back to excluding by address.
pub async fn imds_instance_id() -> Result<String, DiscoveryError> {
    let imds = aws_config::imds::Client::builder()
        .max_attempts(1)
        .connect_timeout(Duration::from_secs(1))
        .operation_timeout(Duration::from_secs(2))
        .build();
    match imds.get("/latest/meta-data/instance-id").await {
        Ok(id) => Ok(AsRef::<str>::as_ref(&id).trim().to_string()),
        Err(e) => Err(DiscoveryError::Imds(format!(
            "could not read the instance id: {}",
            chain(&e)
        ))),
    }
}
