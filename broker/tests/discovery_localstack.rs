//! EC2 tag discovery against LocalStack's EC2 API (a mock: instances never
//! run, their private IPs are random 10.x addresses, so nothing here ever
//! dials a discovered address).
//!
//! Needs LocalStack at `TRIBUNE_LOCALSTACK` (default http://127.0.0.1:4566):
//!   broker/tests/support/localstack.sh install && broker/tests/support/localstack.sh start
//! If it is not reachable the tests FAIL, unless `TRIBUNE_SKIP_LOCALSTACK=1`,
//! in which case they print that they skipped and pass.
//!
//! Each test uses its own VPCs and a unique tag value, so runs against a
//! long-lived LocalStack (state is kept between runs) do not see each other.
#![cfg(feature = "ec2-discovery")]

mod common;

use std::collections::BTreeSet;
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::Credentials;
use aws_sdk_ec2::types::{Filter, InstanceType, ResourceType, Tag, TagSpecification};
use aws_sdk_ec2::Client;
use tokio::sync::mpsc;
use tribune_broker::discovery::{
    client_from_loader, describe_peers, describe_peers_paged, route_url, route_urls,
    spawn_refresher_with_client, Ec2DiscoveryConfig, RouteSetChange, SelfIdentity,
};

const TAG_KEY: &str = "tribune:cluster";
const PORT: u16 = 6222;
const REGION: &str = "us-east-1";

/// LocalStack's URL, or `None` if the test should skip. Panics (fails the
/// test) when LocalStack is down and skipping was not asked for.
fn localstack() -> Option<String> {
    let url =
        std::env::var("TRIBUNE_LOCALSTACK").unwrap_or_else(|_| "http://127.0.0.1:4566".to_string());
    let hostport = url
        .trim_start_matches("http://")
        .trim_start_matches("https://")
        .split('/')
        .next()
        .unwrap_or("");
    let reach = hostport
        .to_socket_addrs()
        .map_err(|e| e.to_string())
        .and_then(|mut addrs| addrs.next().ok_or_else(|| "no address".to_string()))
        .and_then(|a| {
            TcpStream::connect_timeout(&a, Duration::from_secs(2)).map_err(|e| e.to_string())
        });
    match reach {
        Ok(_) => Some(url),
        Err(e) if std::env::var("TRIBUNE_SKIP_LOCALSTACK").as_deref() == Ok("1") => {
            eprintln!("SKIPPED: LocalStack is not reachable at {url} ({e}) and TRIBUNE_SKIP_LOCALSTACK=1");
            None
        }
        Err(e) => panic!(
            "LocalStack is not reachable at {url} ({e}).\n\
             Start it with `broker/tests/support/localstack.sh install && broker/tests/support/localstack.sh start`,\n\
             point TRIBUNE_LOCALSTACK at a running one, or set TRIBUNE_SKIP_LOCALSTACK=1 to skip these tests."
        ),
    }
}

fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
}

/// A tag value no other run has used.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
}

fn config(endpoint: &str, tag_value: &str, vpc_id: Option<&str>) -> Ec2DiscoveryConfig {
    let mut c = Ec2DiscoveryConfig::new(TAG_KEY, tag_value, PORT);
    c.region = Some(REGION.to_string());
    c.endpoint = Some(endpoint.to_string());
    c.vpc_id = vpc_id.map(str::to_string);
    c
}

/// A client with explicit dummy credentials: nothing read from or written
/// to the process environment, no IMDS lookups.
async fn client(cfg: &Ec2DiscoveryConfig) -> Client {
    let loader = aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new("test", "test", None, None, "tribune-test"));
    client_from_loader(cfg, loader).await
}

/// Test fixture around the raw EC2 API.
struct Ec2 {
    client: Client,
    ami: String,
}

impl Ec2 {
    async fn new(client: Client) -> Self {
        let images = client
            .describe_images()
            .send()
            .await
            .expect("DescribeImages against LocalStack");
        let ami = images
            .images()
            .iter()
            .filter_map(|i| i.image_id())
            .next()
            .expect("LocalStack has no AMIs to launch")
            .to_string();
        Ec2 { client, ami }
    }

    async fn vpc(&self, cidr: &str) -> String {
        let out = self
            .client
            .create_vpc()
            .cidr_block(cidr)
            .send()
            .await
            .expect("CreateVpc");
        out.vpc()
            .and_then(|v| v.vpc_id())
            .expect("vpc id")
            .to_string()
    }

    async fn subnet(&self, vpc: &str, cidr: &str, az: &str) -> String {
        let out = self
            .client
            .create_subnet()
            .vpc_id(vpc)
            .cidr_block(cidr)
            .availability_zone(az)
            .send()
            .await
            .expect("CreateSubnet");
        out.subnet()
            .and_then(|s| s.subnet_id())
            .expect("subnet id")
            .to_string()
    }

    /// Launches one instance in `subnet`; `tag_value: None` means untagged.
    /// Returns (instance id, private IP).
    async fn launch(&self, subnet: &str, tag_value: Option<&str>) -> (String, IpAddr) {
        let mut req = self
            .client
            .run_instances()
            .image_id(&self.ami)
            .instance_type(InstanceType::T3Micro)
            .min_count(1)
            .max_count(1)
            .subnet_id(subnet);
        if let Some(v) = tag_value {
            req = req.tag_specifications(
                TagSpecification::builder()
                    .resource_type(ResourceType::Instance)
                    .tags(Tag::builder().key(TAG_KEY).value(v).build())
                    .tags(Tag::builder().key("Name").value("tribune-test").build())
                    .build(),
            );
        }
        let out = req.send().await.expect("RunInstances");
        let inst = &out.instances()[0];
        let id = inst.instance_id().expect("instance id").to_string();
        let ip = inst
            .private_ip_address()
            .expect("private ip")
            .parse()
            .expect("ip parses");
        (id, ip)
    }

    async fn terminate(&self, id: &str) {
        self.client
            .terminate_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("TerminateInstances");
    }

    async fn stop(&self, id: &str) {
        self.client
            .stop_instances()
            .instance_ids(id)
            .send()
            .await
            .expect("StopInstances");
    }

    /// Instances are reported "pending" by RunInstances; wait until EC2 (the
    /// mock) says "running", as the real one would after boot.
    async fn wait_running(&self, ids: &[&str]) {
        for _ in 0..100 {
            let out = self
                .client
                .describe_instances()
                .set_instance_ids(Some(ids.iter().map(|s| s.to_string()).collect()))
                .filters(
                    Filter::builder()
                        .name("instance-state-name")
                        .values("running")
                        .build(),
                )
                .send()
                .await
                .expect("DescribeInstances");
            let n = out
                .reservations()
                .iter()
                .map(|r| r.instances().len())
                .sum::<usize>();
            if n == ids.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("instances {ids:?} never reached 'running'");
    }
}

fn ids(peers: &[tribune_broker::discovery::Peer]) -> BTreeSet<String> {
    peers.iter().map(|p| p.instance_id.clone()).collect()
}

fn set<I: IntoIterator<Item = S>, S: ToString>(items: I) -> BTreeSet<String> {
    items.into_iter().map(|s| s.to_string()).collect()
}

fn url(ip: IpAddr) -> String {
    route_url("nats-route", ip, PORT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_peers_returns_running_tagged_instances_in_the_vpc() {
    let Some(endpoint) = localstack() else { return };
    init_logging();
    let tag = unique("prod");
    let cfg = config(&endpoint, &tag, None);
    let ec2 = Ec2::new(client(&cfg).await).await;

    let vpc = ec2.vpc("10.77.0.0/16").await;
    let sub_a = ec2.subnet(&vpc, "10.77.1.0/24", "us-east-1a").await;
    let sub_b = ec2.subnet(&vpc, "10.77.2.0/24", "us-east-1b").await;
    let other_vpc = ec2.vpc("10.78.0.0/16").await;
    let sub_other = ec2.subnet(&other_vpc, "10.78.1.0/24", "us-east-1a").await;

    let (n1, ip1) = ec2.launch(&sub_a, Some(&tag)).await;
    let (n2, ip2) = ec2.launch(&sub_b, Some(&tag)).await;
    let (n3, ip3) = ec2.launch(&sub_a, Some(&tag)).await;
    let other_value_tag = format!("{tag}-staging");
    let (other_value, _) = ec2.launch(&sub_a, Some(&other_value_tag)).await;
    let (elsewhere, _) = ec2.launch(&sub_other, Some(&tag)).await;
    let (untagged, _) = ec2.launch(&sub_a, None).await;
    let (stopped, _) = ec2.launch(&sub_b, Some(&tag)).await;
    let (terminated, _) = ec2.launch(&sub_b, Some(&tag)).await;
    ec2.wait_running(&[
        &n1,
        &n2,
        &n3,
        &other_value,
        &elsewhere,
        &untagged,
        &stopped,
        &terminated,
    ])
    .await;
    ec2.stop(&stopped).await;
    ec2.terminate(&terminated).await;

    // In the VPC: exactly the three running cluster nodes.
    let in_vpc = config(&endpoint, &tag, Some(&vpc));
    let peers = describe_peers(&ec2.client, &in_vpc)
        .await
        .expect("describe_peers");
    assert_eq!(ids(&peers), set([&n1, &n2, &n3]), "peers: {peers:#?}");
    let p1 = peers.iter().find(|p| p.instance_id == n1).unwrap();
    assert_eq!(p1.private_ip, ip1);
    assert_eq!(p1.availability_zone.as_deref(), Some("us-east-1a"));
    let p2 = peers.iter().find(|p| p.instance_id == n2).unwrap();
    assert_eq!(p2.availability_zone.as_deref(), Some("us-east-1b"));

    // Without the VPC filter the same-tagged instance in the other VPC joins.
    let anywhere = describe_peers(&ec2.client, &cfg)
        .await
        .expect("describe_peers without vpc");
    assert_eq!(ids(&anywhere), set([&n1, &n2, &n3, &elsewhere]));

    // Route URLs leave "self" out, by address or by instance id.
    let by_ip = route_urls(
        &in_vpc,
        &peers,
        &SelfIdentity::from_ips([ip1, "127.0.0.1".parse().unwrap()]),
    );
    assert_eq!(by_ip, set([url(ip2), url(ip3)]));
    let by_id = route_urls(
        &in_vpc,
        &peers,
        &SelfIdentity::default().with_instance_id(&n2),
    );
    assert_eq!(by_id, set([url(ip1), url(ip3)]));
    assert!(
        by_id
            .iter()
            .all(|u| u.starts_with("nats-route://10.") && u.ends_with(":6222")),
        "{by_id:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn describe_peers_follows_pagination() {
    let Some(endpoint) = localstack() else { return };
    init_logging();
    let tag = unique("bulk");
    let cfg = config(&endpoint, &tag, None);
    let ec2 = Ec2::new(client(&cfg).await).await;
    let vpc = ec2.vpc("10.79.0.0/16").await;
    let sub = ec2.subnet(&vpc, "10.79.1.0/24", "us-east-1a").await;

    // One reservation per RunInstances call; pages hold at most 5 (the API's
    // smallest MaxResults), so 7 instances need two pages.
    let mut launched = BTreeSet::new();
    for _ in 0..7 {
        launched.insert(ec2.launch(&sub, Some(&tag)).await.0);
    }
    let launched_refs: Vec<&str> = launched.iter().map(String::as_str).collect();
    ec2.wait_running(&launched_refs).await;

    // Whether the mock really pages (so the test proves something).
    let first = ec2
        .client
        .describe_instances()
        .filters(
            Filter::builder()
                .name(format!("tag:{TAG_KEY}"))
                .values(&tag)
                .build(),
        )
        .max_results(5)
        .send()
        .await
        .expect("DescribeInstances page 1");
    if first.next_token().is_none() {
        eprintln!("note: this EC2 endpoint ignored MaxResults; pagination is not exercised");
    }

    let peers = describe_peers_paged(&ec2.client, &cfg, 5)
        .await
        .expect("describe_peers_paged");
    assert_eq!(ids(&peers), launched);
    assert_eq!(
        ids(&describe_peers(&ec2.client, &cfg).await.unwrap()),
        launched
    );
}

/// Receives changes until `known` (the route set the callback has built up)
/// satisfies `done`, or fails after 30 s.
async fn wait_for(
    rx: &mut mpsc::UnboundedReceiver<RouteSetChange>,
    known: &mut BTreeSet<String>,
    what: &str,
    done: impl Fn(&BTreeSet<String>, &RouteSetChange) -> bool,
) -> RouteSetChange {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let change = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("timed out waiting for {what}; routes so far: {known:?}"))
            .expect("refresher stopped");
        for r in &change.removed {
            assert!(known.remove(r), "removed {r} that was never added");
        }
        for a in &change.added {
            assert!(known.insert(a.clone()), "added {a} twice");
        }
        assert_eq!(
            known.iter().cloned().collect::<Vec<_>>(),
            change.current,
            "current disagrees with the diffs"
        );
        if done(known, &change) {
            return change;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refresher_reports_boot_set_then_added_and_removed_peers() {
    let Some(endpoint) = localstack() else { return };
    init_logging();
    let tag = unique("refresh");
    let ec2 = Ec2::new(client(&config(&endpoint, &tag, None)).await).await;
    let vpc = ec2.vpc("10.80.0.0/16").await;
    let sub = ec2.subnet(&vpc, "10.80.1.0/24", "us-east-1a").await;

    // This node boots first and is alone: the refresher must keep waiting.
    let (me_id, me_ip) = ec2.launch(&sub, Some(&tag)).await;
    let mut cfg = config(&endpoint, &tag, Some(&vpc));
    cfg.refresh = Duration::from_millis(300);
    let (tx, mut rx) = mpsc::unbounded_channel();
    let me = SelfIdentity::from_ips([me_ip]).with_instance_id(&me_id);
    let handle = spawn_refresher_with_client(ec2.client.clone(), cfg, me, move |c| {
        let _ = tx.send(c);
    })
    .expect("spawn_refresher");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        rx.try_recv().is_err(),
        "reported routes while only this node exists"
    );

    // The other two nodes come up: the first report adds them.
    let (_p1, ip1) = ec2.launch(&sub, Some(&tag)).await;
    let (p2, ip2) = ec2.launch(&sub, Some(&tag)).await;
    let mut known = BTreeSet::new();
    let boot = set([url(ip1), url(ip2)]);
    let first = wait_for(&mut rx, &mut known, "the two boot peers", |k, _| *k == boot).await;
    assert!(first.removed.is_empty());

    // A replacement node appears.
    let (p3, ip3) = ec2.launch(&sub, Some(&tag)).await;
    let added = wait_for(&mut rx, &mut known, "the added peer", |k, _| {
        k.contains(&url(ip3))
    })
    .await;
    assert_eq!(added.added, [url(ip3)]);
    assert!(added.removed.is_empty());

    // A node is terminated, another stopped: both routes go away.
    ec2.terminate(&p2).await;
    let removed = wait_for(&mut rx, &mut known, "the terminated peer", |k, _| {
        !k.contains(&url(ip2))
    })
    .await;
    assert_eq!(removed.removed, [url(ip2)]);
    ec2.stop(&p3).await;
    wait_for(&mut rx, &mut known, "the stopped peer", |k, _| {
        !k.contains(&url(ip3))
    })
    .await;
    assert_eq!(known, set([url(ip1)]));
    assert!(
        !known.contains(&url(me_ip)),
        "routes include this node itself"
    );

    handle.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_errors_carry_context_and_do_not_panic() {
    // Needs no LocalStack: a closed port on localhost.
    init_logging();
    let cfg = config("http://127.0.0.1:9", "x", None);
    let err = describe_peers(&client(&cfg).await, &cfg)
        .await
        .expect_err("nothing listens on port 9");
    let text = err.to_string();
    eprintln!("error as logged: {text}");
    assert!(
        text.starts_with(
            "EC2 DescribeInstances failed (region us-east-1, endpoint http://127.0.0.1:9)"
        ),
        "{text}"
    );
    assert!(text.contains("unreachable"), "{text}");
}

/// The whole path, end to end: three real brokers boot with nothing but a
/// `cluster { discovery { ec2 {...} } }` block, find each other through
/// LocalStack's EC2 API and form a full mesh that carries messages.
///
/// LocalStack accepts a VPC in 127.0.0.0/8 and hands instances loopback
/// private IPs, so each broker listens on the private IP of "its" instance
/// and every route the brokers dial stays on loopback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brokers_discover_each_other_and_form_a_cluster() {
    let Some(endpoint) = localstack() else { return };
    init_logging();
    let tag = unique("e2e");
    let cfg = config(&endpoint, &tag, None);
    let ec2 = Ec2::new(client(&cfg).await).await;
    // A random /16 inside 127/8, so runs against a long-lived LocalStack
    // do not hand out addresses another run still holds.
    let octet = 10
        + (SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
            % 240);
    let vpc = ec2.vpc(&format!("127.{octet}.0.0/16")).await;
    let subnet = ec2
        .subnet(&vpc, &format!("127.{octet}.1.0/24"), "us-east-1a")
        .await;
    let mut instances = Vec::new();
    for _ in 0..3 {
        instances.push(ec2.launch(&subnet, Some(&tag)).await);
    }
    let ids: Vec<&str> = instances.iter().map(|(id, _)| id.as_str()).collect();
    ec2.wait_running(&ids).await;

    // One cluster port that is free on all three addresses.
    let ips: Vec<std::net::Ipv4Addr> = instances
        .iter()
        .map(|(_, ip)| match ip {
            IpAddr::V4(v4) => *v4,
            other => panic!("LocalStack gave a non-IPv4 address {other}"),
        })
        .collect();
    assert!(
        ips.iter().all(|ip| ip.is_loopback()),
        "LocalStack must hand out loopback IPs here: {ips:?}"
    );
    let cluster_port = (0..50)
        .find_map(|_| {
            let p = std::net::TcpListener::bind((ips[0], 0))
                .ok()?
                .local_addr()
                .ok()?
                .port();
            ips[1..]
                .iter()
                .all(|ip| std::net::TcpListener::bind((*ip, p)).is_ok())
                .then_some(p)
        })
        .expect("a cluster port free on every address");

    // Brokers read AWS credentials from the environment, like on a laptop.
    std::env::set_var("AWS_ACCESS_KEY_ID", "test");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "test");
    std::env::set_var("AWS_EC2_METADATA_DISABLED", "true");
    let mut nodes = Vec::new();
    for (i, ip) in ips.iter().enumerate() {
        let conf = format!(
            "server_name: e2e-{i}\ncluster {{\n  name: e2e\n  listen: \"{ip}:{cluster_port}\"\n  discovery {{\n    ec2 {{\n      tag_key: \"{TAG_KEY}\"\n      tag_value: \"{tag}\"\n      region: \"{REGION}\"\n      endpoint: \"{endpoint}\"\n      vpc_id: \"{vpc}\"\n      refresh: \"1s\"\n    }}\n  }}\n}}\n"
        );
        let node =
            common::ServerSpec::new(common::tribune_bin(env!("CARGO_BIN_EXE_tribune-broker")))
                .config(conf)
                .args([
                    "-a".to_string(),
                    ip.to_string(),
                    "-m".to_string(),
                    "-1".to_string(),
                ])
                .start()
                .expect("broker starts");
        nodes.push(node);
    }

    // Every node sees the other two as routes.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let mut counts = Vec::new();
        for n in &nodes {
            let addr: std::net::SocketAddr = n
                .addr_of("monitoring")
                .expect("monitoring url")
                .parse()
                .expect("addr");
            let routez = common::cluster::get_json(addr, "/routez")
                .await
                .unwrap_or_default();
            counts.push(routez["num_routes"].as_u64().unwrap_or(0));
        }
        if counts.iter().all(|&c| c == 2) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no full mesh from discovery: routes per node {counts:?}\n{}",
            nodes
                .iter()
                .map(|n| n.log_excerpt())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every node found its peers itself (the mesh can close before the
    // slowest node's first refresh, through the others dialling it).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !nodes
        .iter()
        .all(|n| n.log().contains("Discovered route nats-route://"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "a node never discovered its peers\n{}",
            nodes
                .iter()
                .map(|n| n.log_excerpt())
                .collect::<Vec<_>>()
                .join("\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // And it carries messages: subscribe on the last node, publish on the first.
    let sub_nc = async_nats::connect(format!("nats://{}:{}", ips[2], nodes[2].port))
        .await
        .unwrap();
    let mut sub = sub_nc.subscribe("sports.football.*").await.unwrap();
    sub_nc.flush().await.unwrap();
    let pub_nc = async_nats::connect(format!("nats://{}:{}", ips[0], nodes[0].port))
        .await
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(20), async {
        // Interest crosses the route asynchronously: publish until it lands.
        loop {
            pub_nc
                .publish("sports.football.42", "goal".into())
                .await
                .unwrap();
            pub_nc.flush().await.unwrap();
            if let Ok(Some(m)) = tokio::time::timeout(
                Duration::from_millis(200),
                futures::StreamExt::next(&mut sub),
            )
            .await
            {
                return m;
            }
        }
    })
    .await
    .expect("a message crosses the discovered route");
    assert_eq!(got.subject.as_str(), "sports.football.42");
    for id in ids {
        ec2.terminate(id).await;
    }
}
