//! The client connection state machine: a real, started `Server` serving
//! one in-memory connection (`Server::serve_stream`, the same admission,
//! auth, permissions and protocol as a TCP client's) per input, with auth
//! off and on.
//!
//! Input byte 0 picks the server (see `CONFIGS`): no auth; users with
//! passwords and permissions; two accounts with a `no_auth_user`; NKEY
//! users (the fuzzer cannot sign a nonce, so none can log in). The rest is
//! the client's stream, cut into writes as the crate docs describe. The
//! client's side is closed after the last write and the server's output is
//! read to its end. Checked:
//! - nothing panics, in the parser or any task the connection runs;
//! - the server's output is a sequence of whole server operations (`INFO`
//!   first, then `MSG`/`HMSG` with exactly their announced sizes, `PING`,
//!   `PONG`, `+OK`, `-ERR '...'`), whatever the client sent;
//! - with auth on and no valid password anywhere in the input, the client
//!   gets no `MSG`, `HMSG`, `PONG` or `+OK`: nothing before a complete,
//!   successful CONNECT;
//! - when the connection ends the server holds no client for it (no
//!   connection leaks), and every 256 inputs a well-behaved client on the
//!   same server still logs in, subscribes and gets its own message.
#![no_main]

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tribune_broker::options::Options;
use tribune_broker::server::Server;
use tribune_broker_fuzz::Framed;

/// The servers, by input byte 0 (modulo their count), and the password
/// that logs in on each (`None`: anyone may log in).
const CONFIGS: [(&str, Option<&[u8]>); 4] = [
    ("listen: \"127.0.0.1:-1\"\n", None),
    (
        r#"listen: "127.0.0.1:-1"
max_payload: 256
max_control_line: 128
authorization {
  users = [
    {user: alice, password: "p4ss-alice", permissions: {
      publish: {allow: ["sports.>", "_INBOX.>"], deny: ["sports.admin.>"]},
      subscribe: {allow: ["sports.*", "_INBOX.>"]},
      allow_responses: true}},
  ]
}
"#,
        Some(b"p4ss-alice"),
    ),
    (
        r#"listen: "127.0.0.1:-1"
accounts {
  A { users [{user: a, password: "p4ss-a"}], exports [{stream: "sports.>"}] }
  B { users [{user: b, password: "p4ss-b"}], imports [{stream: {account: A, subject: "sports.>"}}] }
}
no_auth_user: b
"#,
        None,
    ),
    (
        r#"listen: "127.0.0.1:-1"
authorization {
  users = [
    {nkey: UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4}
  ]
}
"#,
        Some(b"\xff-no-password-logs-in-here-\xff"),
    ),
];

/// A well-behaved client's session, for the periodic probe: the server
/// must answer with its own message and a PONG.
const PROBE: &[&[u8]] = &[
    b"CONNECT {\"verbose\":false,\"pedantic\":false,\"user\":\"alice\",\"pass\":\"p4ss-alice\"}\r\nSUB sports.probe 1\r\nPUB sports.probe 2\r\nok\r\nPING\r\n",
];

struct Fixture {
    rt: tokio::runtime::Runtime,
    servers: Vec<Arc<Server>>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let servers = CONFIGS
            .iter()
            .map(|(text, _)| {
                let mut opts = Options::default();
                tribune_broker::config::apply_str(&mut opts, text, Path::new("/nonexistent/fuzz.conf"))
                    .expect("fixture config");
                let server = Server::new(opts);
                rt.block_on(server.start()).expect("server starts");
                server
            })
            .collect();
        Fixture { rt, servers }
    })
}

/// Run one session: write `chunks`, close, and read the server's output to
/// its end.
async fn session(server: Arc<Server>, chunks: Vec<Vec<u8>>) -> Vec<u8> {
    let (client, conn) = tokio::io::duplex(64 * 1024);
    let (srv_rd, srv_wr) = tokio::io::split(conn);
    let addr: SocketAddr = ([127, 0, 0, 1], 40000).into();
    let served = tokio::spawn(server.serve_stream(srv_rd, srv_wr, addr));
    let (mut rd, mut wr) = tokio::io::split(client);
    let reader = tokio::spawn(async move {
        let mut out = Vec::new();
        let _ = rd.read_to_end(&mut out).await;
        out
    });
    for c in chunks {
        if wr.write_all(&c).await.is_err() {
            break;
        }
        tokio::task::yield_now().await;
    }
    let _ = wr.shutdown().await;
    drop(wr);
    let _ = served.await;
    reader.await.unwrap_or_default()
}

/// The server's operations in `out`, checked to be whole and well formed.
fn server_ops(out: &[u8]) -> Vec<String> {
    let mut ops = Vec::new();
    let mut rest = out;
    while !rest.is_empty() {
        let end = rest
            .windows(2)
            .position(|w| w == b"\r\n")
            .unwrap_or_else(|| panic!("partial line at the end of the output: {:?}", String::from_utf8_lossy(rest)));
        // Subjects are bytes: a client may publish to one that is not
        // UTF-8, and subscribers get it as sent, as from nats-server.
        let line = String::from_utf8_lossy(&rest[..end]).into_owned();
        rest = &rest[end + 2..];
        let name = line.split(' ').next().unwrap_or_default().to_string();
        match name.as_str() {
            "INFO" => assert!(line.starts_with("INFO {") && line.trim_end().ends_with('}'), "{line}"),
            "PING" | "PONG" | "+OK" => assert_eq!(line, name),
            "-ERR" => assert!(line.starts_with("-ERR '") && line.ends_with('\''), "{line}"),
            "MSG" | "HMSG" => {
                let args: Vec<&str> = line.split(' ').skip(1).collect();
                let want = if name == "MSG" { 3..=4 } else { 4..=5 };
                assert!(want.contains(&args.len()), "{line}");
                let total: usize = args[args.len() - 1].parse().expect("size");
                if name == "HMSG" {
                    let hdr: usize = args[args.len() - 2].parse().expect("header size");
                    assert!(hdr <= total, "{line}");
                }
                assert!(rest.len() >= total + 2, "{line}: body cut short");
                assert_eq!(&rest[total..total + 2], b"\r\n", "{line}: body size");
                rest = &rest[total + 2..];
            }
            _ => panic!("not a server operation: {line:?}"),
        }
        ops.push(name);
    }
    assert_eq!(ops.first().map(String::as_str), Some("INFO"), "INFO first");
    ops
}

async fn no_clients_left(server: &Server) {
    for _ in 0..500 {
        if server.num_clients() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    panic!("{} clients left after their connections ended", server.num_clients());
}

fuzz_target!(|input: &[u8]| {
    let Some((&which, rest)) = input.split_first() else {
        return;
    };
    let Some(framed) = Framed::decode(rest) else {
        return;
    };
    let f = fixture();
    let pick = usize::from(which) % CONFIGS.len();
    let (_, password) = CONFIGS[pick];
    let server = f.servers[pick].clone();
    let chunks: Vec<Vec<u8>> = framed.chunks().into_iter().map(<[u8]>::to_vec).collect();
    let out = f.rt.block_on(async {
        let out = session(server.clone(), chunks).await;
        no_clients_left(&server).await;
        out
    });
    let ops = server_ops(&out);
    if let Some(pw) = password {
        let has_password = framed.data.windows(pw.len()).any(|w| w == pw);
        if !has_password {
            for op in &ops {
                assert!(
                    !matches!(op.as_str(), "MSG" | "HMSG" | "PONG" | "+OK"),
                    "{op} before a successful CONNECT: {:?}",
                    String::from_utf8_lossy(&out)
                );
            }
        }
    }

    static RUNS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    if RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 256 == 0 {
        let probe = f.rt.block_on(session(f.servers[1].clone(), PROBE.iter().map(|c| c.to_vec()).collect()));
        let ops = server_ops(&probe);
        assert!(
            ops.iter().any(|o| o == "MSG") && ops.iter().any(|o| o == "PONG"),
            "a well-behaved client was not served: {:?}",
            String::from_utf8_lossy(&probe)
        );
    }
});
