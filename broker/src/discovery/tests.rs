//! Unit tests: config block parsing, self-exclusion, URL spelling, diffs.
//! The EC2 calls themselves are tested against LocalStack in
//! `tests/discovery_localstack.rs`.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::Path;

use super::*;
use crate::config::{parse_str, Node};

/// Parses `src` (a whole config file) and returns `cluster.discovery`'s result.
fn parse(src: &str) -> Result<Ec2DiscoveryConfig, Vec<String>> {
    let root = parse_str(src, Path::new("x.conf"))
        .unwrap_or_else(|e| panic!("config does not parse: {e}\n{src}"));
    let cluster = root
        .as_map()
        .unwrap()
        .get("cluster")
        .expect("no cluster block");
    let disc: &Node = cluster
        .value
        .as_map()
        .expect("cluster is a map")
        .get_ignore_case("discovery")
        .expect("no discovery");
    parse_discovery_block(disc).map_err(|es| es.iter().map(ToString::to_string).collect())
}

/// The errors of `src`, minus the "built without EC2 discovery" one that a
/// `--no-default-features` build adds to every `ec2` block (tested on its own).
fn errors(src: &str) -> Vec<String> {
    match parse(src) {
        Ok(c) => panic!("expected errors, got {c:?}"),
        Err(e) if EC2_DISCOVERY_BUILT => e,
        Err(e) => e
            .into_iter()
            .filter(|m| !m.contains("built without EC2 discovery"))
            .collect(),
    }
}

const FULL: &str = r#"
cluster {
  name: tribune
  listen: 0.0.0.0:6222
  discovery {
    ec2 {
      tag_key: "tribune:cluster"
      tag_value: "prod"
      region: "eu-west-1"
      endpoint: "http://127.0.0.1:4566"
      vpc_id: "vpc-123"
      refresh: "45s"
      port: 7222
      scheme: nats
    }
  }
}
"#;

#[cfg(feature = "ec2-discovery")]
#[test]
fn full_block() {
    let c = parse(FULL).unwrap();
    assert_eq!(
        c,
        Ec2DiscoveryConfig {
            tag_key: "tribune:cluster".into(),
            tag_value: "prod".into(),
            region: Some("eu-west-1".into()),
            endpoint: Some("http://127.0.0.1:4566".into()),
            vpc_id: Some("vpc-123".into()),
            cluster_port: 7222,
            refresh: std::time::Duration::from_secs(45),
            scheme: "nats".into(),
        }
    );
}

#[cfg(feature = "ec2-discovery")]
#[test]
fn minimal_block_gets_defaults() {
    // One-line form, separators and case as loose as the rest of the format.
    let c = parse("cluster { Discovery { EC2 { TAG_KEY = role, tag_value: broker } } }\n").unwrap();
    assert_eq!(
        c,
        Ec2DiscoveryConfig::new("role", "broker", PORT_FROM_CLUSTER_LISTEN)
    );
    assert_eq!(c.refresh, DEFAULT_REFRESH);
    assert_eq!(c.scheme, "nats-route");
    assert_eq!((c.region, c.endpoint, c.vpc_id), (None, None, None));
}

#[cfg(feature = "ec2-discovery")]
#[test]
fn empty_tag_value_is_allowed() {
    assert_eq!(
        parse("cluster { discovery { ec2 { tag_key: k, tag_value: \"\" } } }\n")
            .unwrap()
            .tag_value,
        ""
    );
}

#[test]
fn unknown_and_mistyped_fields() {
    let src = concat!(
        "cluster {\n",
        "  discovery {\n",
        "    ec2 {\n",
        "      tag_key: 5\n",
        "      tag_value: prod\n",
        "      regoin: eu-west-1\n",
        "      port: 70000\n",
        "      refresh: 30\n",
        "      vpc_id: true\n",
        "    }\n",
        "    dns: {}\n",
        "  }\n",
        "}\n",
    );
    assert_eq!(
        errors(src),
        [
            "x.conf:4:7: invalid type for field \"tag_key\": expected string, got integer",
            "x.conf:6:7: unknown field \"regoin\"",
            "x.conf:7:7: invalid port 70000, must be between 1 and 65535",
            "x.conf:8:7: invalid type for field \"refresh\": expected duration string, got integer",
            "x.conf:9:7: invalid type for field \"vpc_id\": expected string, got boolean",
            "x.conf:11:5: unknown field \"dns\"",
        ]
    );
}

#[test]
fn values_out_of_range() {
    let src = concat!(
        "cluster { discovery { ec2 {\n",
        "  tag_key: \"\"\n",
        "  tag_value: v\n",
        "  endpoint: \"localhost:4566\"\n",
        "  refresh: \"500ms\"\n",
        "  scheme: https\n",
        "  region: \"\"\n",
        "} } }\n",
    );
    assert_eq!(
        errors(src),
        [
            "x.conf:2:3: tag_key can not be empty",
            "x.conf:4:3: invalid endpoint \"localhost:4566\": expected an http:// or https:// URL",
            "x.conf:5:3: invalid refresh of 500ms, minimum is 1 second",
            "x.conf:6:3: invalid scheme \"https\", expected one of: nats-route, nats, tls",
            "x.conf:7:3: region can not be empty",
        ]
    );
    assert_eq!(
        errors("cluster { discovery { ec2 { tag_key: k, tag_value: v, refresh: \"soon\" } } }\n"),
        ["x.conf:1:55: error parsing refresh: time: invalid duration \"soon\""]
    );
}

#[test]
fn missing_required_fields_and_wrong_shapes() {
    assert_eq!(
        errors("cluster {\n  discovery {\n    ec2 { region: eu-west-1 }\n  }\n}\n"),
        [
            "x.conf:3:5: cluster discovery ec2 requires a tag_key",
            "x.conf:3:5: cluster discovery ec2 requires a tag_value",
        ]
    );
    assert_eq!(
        errors("cluster {\n  discovery {}\n}\n"),
        ["x.conf:2:3: cluster discovery requires a provider block: ec2 { tag_key: ..., tag_value: ... }"]
    );
    assert_eq!(
        errors("cluster {\n  discovery: ec2\n}\n"),
        ["x.conf:2:3: Expected map to define cluster discovery, got string"]
    );
    assert_eq!(
        errors("cluster {\n  discovery { ec2: [1] }\n}\n"),
        ["x.conf:2:15: Expected map to define cluster discovery ec2, got array"]
    );
}

#[cfg(not(feature = "ec2-discovery"))]
#[test]
fn block_is_refused_without_the_feature() {
    assert_eq!(
        parse(FULL).unwrap_err(),
        ["x.conf:6:5: option \"cluster.discovery.ec2\" is not supported: tribune-broker was built without EC2 discovery (cargo feature \"ec2-discovery\")"]
    );
}

#[test]
fn variables_work_inside_the_block() {
    let src = "TAG = \"tribune:cluster\"\ncluster { discovery { ec2 { tag_key: $TAG, tag_value: prod } } }\n";
    let r = parse(src);
    if EC2_DISCOVERY_BUILT {
        assert_eq!(r.unwrap().tag_key, "tribune:cluster");
    } else {
        assert!(r.is_err());
    }
}

#[test]
fn resolve_port_from_cluster_listener() {
    let mut c = Ec2DiscoveryConfig::new("k", "v", PORT_FROM_CLUSTER_LISTEN);
    assert!(c
        .validate()
        .unwrap_err()
        .to_string()
        .contains("cluster port is not set"));
    assert!(c
        .resolve_port(None)
        .unwrap_err()
        .to_string()
        .contains("needs a cluster port"));
    assert!(c
        .resolve_port(Some(0))
        .unwrap_err()
        .to_string()
        .contains("random one"));
    c.resolve_port(Some(6222)).unwrap();
    assert_eq!(c.cluster_port, 6222);
    c.validate().unwrap();
    // An explicit port wins over the listener's.
    let mut c = Ec2DiscoveryConfig::new("k", "v", 7222);
    c.resolve_port(Some(6222)).unwrap();
    assert_eq!(c.cluster_port, 7222);
    c.resolve_port(None).unwrap();
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn peer(id: &str, addr: &str) -> Peer {
    Peer {
        instance_id: id.into(),
        private_ip: ip(addr),
        availability_zone: Some("eu-west-1a".into()),
    }
}

fn set(urls: &[&str]) -> BTreeSet<String> {
    urls.iter().map(|s| s.to_string()).collect()
}

#[test]
fn route_urls_exclude_self_by_ip_or_instance_id() {
    let cfg = Ec2DiscoveryConfig::new("k", "v", 6222);
    let peers = [
        peer("i-a", "10.0.1.5"),
        peer("i-b", "10.0.2.6"),
        peer("i-c", "10.0.3.7"),
        peer("i-d", "fd00::8"),
    ];
    let me = SelfIdentity::from_ips([ip("10.0.2.6"), ip("172.17.0.1")]);
    assert_eq!(
        route_urls(&cfg, &peers, &me),
        set(&[
            "nats-route://10.0.1.5:6222",
            "nats-route://10.0.3.7:6222",
            "nats-route://[fd00::8]:6222"
        ])
    );
    let me = SelfIdentity::default().with_instance_id("i-a");
    assert_eq!(route_urls(&cfg, &peers, &me).len(), 3);
    assert!(!route_urls(&cfg, &peers, &me).contains("nats-route://10.0.1.5:6222"));
    // Nobody excluded, duplicates collapse.
    let dup = [peer("i-a", "10.0.1.5"), peer("i-a2", "10.0.1.5")];
    assert_eq!(
        route_urls(&cfg, &dup, &SelfIdentity::default()),
        set(&["nats-route://10.0.1.5:6222"])
    );
}

#[test]
fn route_url_uses_scheme_and_port() {
    assert_eq!(
        route_url("tls", ip("10.1.2.3"), 7000),
        "tls://10.1.2.3:7000"
    );
    assert_eq!(
        route_url("nats-route", ip("::1"), 6222),
        "nats-route://[::1]:6222"
    );
}

#[test]
fn diff_reports_added_removed_and_current() {
    let a = set(&["nats-route://10.0.0.1:6222", "nats-route://10.0.0.2:6222"]);
    let b = set(&["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]);
    let d = diff_routes(&a, &b);
    assert_eq!(d.added, ["nats-route://10.0.0.3:6222"]);
    assert_eq!(d.removed, ["nats-route://10.0.0.1:6222"]);
    assert_eq!(
        d.current,
        ["nats-route://10.0.0.2:6222", "nats-route://10.0.0.3:6222"]
    );
    assert!(!d.is_empty());

    let boot = diff_routes(&BTreeSet::new(), &a);
    assert_eq!((boot.added.len(), boot.removed.len()), (2, 0));
    let gone = diff_routes(&a, &BTreeSet::new());
    assert_eq!(
        (gone.added.len(), gone.removed.len(), gone.current.len()),
        (0, 2, 0)
    );
    assert!(diff_routes(&a, &a.clone()).is_empty());
}

#[test]
fn errors_say_what_failed() {
    assert_eq!(
        DiscoveryError::NotBuilt.to_string(),
        "tribune-broker was built without EC2 discovery (rebuild with cargo feature \"ec2-discovery\")"
    );
    let e = DiscoveryError::Api {
        operation: "DescribeInstances",
        target: "region eu-west-1".into(),
        detail: "service error: UnauthorizedOperation".into(),
        hint: Some("the instance role needs ec2:DescribeInstances"),
    };
    assert_eq!(
        e.to_string(),
        "EC2 DescribeInstances failed (region eu-west-1): service error: UnauthorizedOperation (the instance role needs ec2:DescribeInstances)"
    );
}

#[test]
fn selector_text_for_logs() {
    let mut c = Ec2DiscoveryConfig::new("tribune:cluster", "prod", 6222);
    assert_eq!(c.describe_selector(), "tag tribune:cluster=prod");
    c.vpc_id = Some("vpc-1".into());
    assert_eq!(c.describe_selector(), "tag tribune:cluster=prod in vpc-1");
}

#[test]
fn local_ips_have_no_loopback() {
    assert!(local_interface_ips().iter().all(|ip| !ip.is_loopback()));
}

#[cfg(not(feature = "ec2-discovery"))]
#[tokio::test]
async fn stub_refuses_to_spawn() {
    let r = spawn_refresher(
        Ec2DiscoveryConfig::new("k", "v", 6222),
        SelfIdentity::default(),
        |_| {},
    );
    assert_eq!(r.unwrap_err(), DiscoveryError::NotBuilt);
}
