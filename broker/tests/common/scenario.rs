//! Raw-protocol scenarios: parse a script, run it against a server, record
//! what the server sent, normalise it and compare two recordings.
//!
//! # Script format (`broker/tests/scenarios/*.txt`)
//!
//! One directive or step per line. `#` starts a comment line; blank lines are
//! ignored. Connection and server names are arbitrary words.
//!
//! Directives (usually at the top):
//!
//! ```text
//! server NAME [ARGS...]   declare a server, started in declaration order with
//!                         `-a 127.0.0.1 -p -1 --ports_file_dir DIR` + ARGS.
//!                         Without any `server` line there is one server "s".
//! config NAME TEXT        configuration file for server NAME, passed with -c.
//!                         TEXT uses the escapes below (`\n` for new lines).
//! deadline SECONDS        per-step read deadline (default 10); only a guard
//!                         against hanging, never an assertion.
//! record-server-pings     record PINGs the server sends on its own. By default
//!                         they are answered with PONG and not recorded: when
//!                         they come is a matter of timing (nats-server pings
//!                         a client about a second after CONNECT).
//! ```
//!
//! In ARGS and config TEXT, `{dir}` is the server's private temp directory and
//! `{NAME.KEY}` is `host:port` of the first URL under KEY (`nats`, `cluster`,
//! `monitoring`, ...) in the ports file of an earlier-declared server NAME.
//!
//! Steps:
//!
//! ```text
//! connect C [SERVER]  open connection C (to SERVER, default: the first one) and
//!                     read the one greeting line (INFO).
//! open C [SERVER]     open connection C without reading anything.
//! send C BYTES        send BYTES verbatim after escape processing:
//!                     \r \n \t \\ \xHH (\x20 for a trailing space).
//! sendn C N BYTES     send BYTES repeated N times (large payloads).
//! ping C              send `PING\r\n`, then read lines up to and including
//!                     `PONG`. This is the synchronisation barrier.
//! pong C              read lines up to and including `PONG` (no PING sent).
//! lines C N           read exactly N lines.
//! eof C               read lines until the server closes the connection.
//! close C             close C from the client side.
//! ```
//!
//! Reading understands `MSG`/`HMSG`: the payload that follows one is read as a
//! single block of the announced size (+ CRLF), so payload bytes are never
//! taken for a `PONG` or a `PING`.
//!
//! Every read stops early if the server closes the connection; that is
//! recorded as `<closed>`, and later steps on that connection record nothing.
//! Hitting the deadline is recorded as `<timeout>` (and also ends the
//! connection), so a difference in hanging behaviour still shows up as a diff.
//!
//! Multi-connection scenarios must be deterministic: e.g. SUB on A, `ping A`,
//! PUB on B, `ping B`, then `ping A` to collect what A received.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Server, ServerSpec};

/// Fields of the `INFO` JSON whose *values* legitimately differ between two
/// servers (or two runs of the same server). Their presence is still compared.
pub const INFO_IGNORED_VALUES: &[(&str, &str)] = &[
    ("server_id", "random per server start"),
    ("server_name", "defaults to the server id"),
    ("version", "different products"),
    ("git_commit", "different builds"),
    ("go", "Go toolchain version; tribune is not built with Go"),
    ("port", "random listen port (-p -1)"),
    (
        "client_id",
        "per-connection counter; depends on earlier connections",
    ),
    ("nonce", "random per connection"),
    ("xkey", "random curve key per server start"),
    ("connect_urls", "contain random ports"),
    ("ws_connect_urls", "contain random ports"),
];

/// Fields of the `INFO` JSON whose presence is not compared either (only their
/// value when both sides send them). Empty: every key must match. Put a key
/// here, with the reason, only after deciding tribune need not send it.
pub const INFO_OPTIONAL_KEYS: &[(&str, &str)] = &[(
    "api_lvl",
    "the JetStream API level: Tribune announces it once JetStream exists (issue 6)",
)];

/// [`INFO_OPTIONAL_KEYS`] plus the comma-separated keys of the environment
/// variable `DIFF_INFO_OPTIONAL` (an exploration aid: look past INFO
/// differences to the rest of a recording; not for CI).
fn info_optional(key: &str) -> bool {
    static EXTRA: std::sync::OnceLock<Vec<String>> = std::sync::OnceLock::new();
    let extra = EXTRA.get_or_init(|| {
        std::env::var("DIFF_INFO_OPTIONAL")
            .unwrap_or_default()
            .split(',')
            .map(|k| k.trim().to_string())
            .filter(|k| !k.is_empty())
            .collect()
    });
    INFO_OPTIONAL_KEYS.iter().any(|(k, _)| *k == key) || extra.iter().any(|k| k == key)
}

/// Default per-step read deadline.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(10);

#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: String,
    pub path: PathBuf,
    /// Declared servers, in start order: (name, args, config text).
    pub servers: Vec<ServerDecl>,
    pub steps: Vec<Step>,
    pub deadline: Duration,
    pub record_server_pings: bool,
}

#[derive(Clone, Debug)]
pub struct ServerDecl {
    pub name: String,
    pub args: Vec<String>,
    pub config: Option<String>,
}

#[derive(Clone, Debug)]
pub struct Step {
    /// 1-based line in the script, for messages.
    pub line: usize,
    /// The script text of the step, for messages.
    pub text: String,
    pub conn: String,
    pub action: Action,
}

#[derive(Clone, Debug)]
pub enum Action {
    Open {
        server: Option<String>,
        read_greeting: bool,
    },
    Send(Vec<u8>),
    Ping,
    Pong,
    Lines(usize),
    Eof,
    Close,
}

/// One thing recorded from a server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// A line, including its terminator (or the unterminated tail before close).
    Line(Vec<u8>),
    Closed,
    Timeout,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub conn: String,
    /// Script line of the step that read it.
    pub step_line: usize,
    pub event: Event,
}

/// Decode the escapes `\r \n \t \\ \xHH`.
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let bytes = s.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b != b'\\' {
            out.push(b);
            i += 1;
            continue;
        }
        match bytes.get(i + 1) {
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(b't') => out.push(b'\t'),
            Some(b'\\') => out.push(b'\\'),
            Some(b'x') => {
                let hex = s.get(i + 2..i + 4).ok_or("truncated \\x escape")?;
                out.push(u8::from_str_radix(hex, 16).map_err(|_| format!("bad \\x{hex}"))?);
                i += 2;
            }
            other => return Err(format!("unknown escape \\{:?}", other.map(|b| *b as char))),
        }
        i += 2;
    }
    Ok(out)
}

/// Render bytes readably: printable ASCII as is, `\r \n \t \\`, else `\xHH`.
pub fn escape(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\r' => s.push_str("\\r"),
            b'\n' => s.push_str("\\n"),
            b'\t' => s.push_str("\\t"),
            b'\\' => s.push_str("\\\\"),
            0x20..=0x7e => s.push(b as char),
            _ => {
                let _ = write!(s, "\\x{b:02x}");
            }
        }
    }
    s
}

impl Scenario {
    pub fn load(path: &Path) -> Result<Scenario, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        Scenario::parse(&name, path, &text).map_err(|e| format!("{}: {e}", path.display()))
    }

    pub fn parse(name: &str, path: &Path, text: &str) -> Result<Scenario, String> {
        let mut sc = Scenario {
            name: name.to_string(),
            path: path.to_path_buf(),
            servers: Vec::new(),
            steps: Vec::new(),
            deadline: DEFAULT_DEADLINE,
            record_server_pings: false,
        };
        let mut configs: Vec<(String, String)> = Vec::new();
        for (idx, raw) in text.lines().enumerate() {
            let line = idx + 1;
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let err = |m: &str| format!("line {line}: {m}: {raw:?}");
            let (cmd, rest) = split_word(trimmed);
            match cmd {
                "server" => {
                    let mut words = rest.split_whitespace();
                    let name = words.next().ok_or_else(|| err("server needs a name"))?;
                    sc.servers.push(ServerDecl {
                        name: name.to_string(),
                        args: words.map(String::from).collect(),
                        config: None,
                    });
                }
                "config" => {
                    let (server, text) = split_word(rest);
                    let text = unescape(text).map_err(|e| err(&e))?;
                    configs.push((
                        server.to_string(),
                        String::from_utf8_lossy(&text).into_owned(),
                    ));
                }
                "record-server-pings" => sc.record_server_pings = true,
                "deadline" => {
                    let secs: f64 = rest.trim().parse().map_err(|_| err("bad deadline"))?;
                    sc.deadline = Duration::from_secs_f64(secs);
                }
                _ => {
                    let (conn, arg) = split_word(rest);
                    if conn.is_empty() {
                        return Err(err("missing connection name"));
                    }
                    let action = match cmd {
                        "connect" | "open" => Action::Open {
                            server: Some(arg.trim()).filter(|s| !s.is_empty()).map(String::from),
                            read_greeting: cmd == "connect",
                        },
                        // Everything after "send C " is data; only the line end is dropped.
                        "send" => Action::Send(unescape(arg).map_err(|e| err(&e))?),
                        "sendn" => {
                            let (n, data) = split_word(arg);
                            let n: usize = n.parse().map_err(|_| err("bad count"))?;
                            Action::Send(unescape(data).map_err(|e| err(&e))?.repeat(n))
                        }
                        "ping" => Action::Ping,
                        "pong" => Action::Pong,
                        "lines" => Action::Lines(arg.trim().parse().map_err(|_| err("bad count"))?),
                        "eof" => Action::Eof,
                        "close" => Action::Close,
                        _ => return Err(err("unknown step")),
                    };
                    sc.steps.push(Step {
                        line,
                        text: trimmed.trim_end().to_string(),
                        conn: conn.to_string(),
                        action,
                    });
                }
            }
        }
        if sc.servers.is_empty() {
            sc.servers.push(ServerDecl {
                name: "s".into(),
                args: Vec::new(),
                config: None,
            });
        }
        for (server, text) in configs {
            let decl = sc
                .servers
                .iter_mut()
                .find(|d| d.name == server)
                .ok_or_else(|| format!("config for undeclared server {server:?}"))?;
            decl.config = Some(text);
        }
        for step in &sc.steps {
            if let Action::Open {
                server: Some(s), ..
            } = &step.action
            {
                if !sc.servers.iter().any(|d| &d.name == s) {
                    return Err(format!("line {}: unknown server {s:?}", step.line));
                }
            }
        }
        if sc.steps.is_empty() {
            return Err("no steps".into());
        }
        Ok(sc)
    }

    /// Start this scenario's servers with `bin` and run the steps.
    /// Returns the recording, or a setup error (server failed to start...).
    pub fn run(&self, bin: &Path) -> Result<Run, String> {
        let mut servers: Vec<(String, Server)> = Vec::new();
        for decl in &self.servers {
            let subst = |s: &str| substitute(s, &servers);
            let mut spec = ServerSpec::new(bin).args(decl.args.iter().map(|a| subst(a)));
            if let Some(c) = &decl.config {
                spec = spec.config(subst(c));
            }
            let server = spec.start()?;
            servers.push((decl.name.clone(), server));
        }
        let records = self.run_steps(&servers);
        Ok(Run { records, servers })
    }

    fn run_steps(&self, servers: &[(String, Server)]) -> Vec<Record> {
        let mut conns: HashMap<String, Conn> = HashMap::new();
        let mut out = Vec::new();
        for step in &self.steps {
            let mut rec = |event: Event| {
                out.push(Record {
                    conn: step.conn.clone(),
                    step_line: step.line,
                    event,
                })
            };
            if let Action::Open {
                server,
                read_greeting,
            } = &step.action
            {
                let port = match server {
                    Some(name) => servers.iter().find(|(n, _)| n == name).map(|(_, s)| s.port),
                    None => servers.first().map(|(_, s)| s.port),
                }
                .expect("server validated at parse time");
                let mut conn = Conn::open(port, self.deadline, self.record_server_pings);
                if *read_greeting {
                    conn.read_lines(1, &mut rec);
                }
                conns.insert(step.conn.clone(), conn);
                continue;
            }
            let Some(conn) = conns.get_mut(&step.conn) else {
                panic!(
                    "{}:{}: connection {:?} used before `connect`",
                    self.path.display(),
                    step.line,
                    step.conn
                );
            };
            match &step.action {
                Action::Open { .. } => unreachable!(),
                Action::Send(bytes) => conn.send(bytes),
                Action::Ping => {
                    conn.send(b"PING\r\n");
                    conn.read_until_pong(&mut rec);
                }
                Action::Pong => conn.read_until_pong(&mut rec),
                Action::Lines(n) => conn.read_lines(*n, &mut rec),
                Action::Eof => conn.read_until_eof(&mut rec),
                Action::Close => conn.close(),
            }
        }
        out
    }
}

fn split_word(s: &str) -> (&str, &str) {
    let s = s.trim_start();
    match s.find(char::is_whitespace) {
        // Skip exactly one separator so that `send` data may start with spaces.
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    }
}

/// Replace `{NAME.KEY}` with `host:port` from an earlier server's ports file.
fn substitute(s: &str, servers: &[(String, Server)]) -> String {
    let mut out = s.to_string();
    for (name, server) in servers {
        for key in server.ports.keys() {
            let pat = format!("{{{name}.{key}}}");
            if out.contains(&pat) {
                if let Some(addr) = server.addr_of(key) {
                    out = out.replace(&pat, &addr);
                }
            }
        }
    }
    out
}

/// The outcome of one run: the records and the servers (still running, so
/// their logs can be shown; they stop when this is dropped).
pub struct Run {
    pub records: Vec<Record>,
    pub servers: Vec<(String, Server)>,
}

impl Run {
    pub fn log_excerpts(&self) -> String {
        self.servers
            .iter()
            .map(|(name, s)| format!("[server {name}]\n{}", s.log_excerpt()))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// A client connection with its own read buffer.
struct Conn {
    stream: Option<TcpStream>,
    buf: Vec<u8>,
    deadline: Duration,
    /// Set once the connection closed or timed out: later steps record nothing.
    done: bool,
    /// Set when connecting failed.
    error: Option<String>,
    /// After a MSG/HMSG control line: the payload size + 2 still to read.
    payload_due: Option<usize>,
    record_server_pings: bool,
}

impl Conn {
    fn open(port: u16, deadline: Duration, record_server_pings: bool) -> Conn {
        let (stream, error) = match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                (Some(s), None)
            }
            Err(e) => (None, Some(e.to_string())),
        };
        Conn {
            stream,
            buf: Vec::new(),
            deadline,
            done: false,
            error,
            payload_due: None,
            record_server_pings,
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        if self.done {
            return;
        }
        if let Some(s) = &mut self.stream {
            // A write error means the server closed; the next read reports it.
            let _ = s.write_all(bytes);
        }
    }

    fn close(&mut self) {
        if let Some(s) = self.stream.take() {
            let _ = s.shutdown(Shutdown::Both);
        }
        self.done = true;
    }

    /// Read the next protocol line and record it, answering (and by default
    /// not recording) PINGs from the server. Returns whether it was `PONG`;
    /// `None` means the connection ended and that has been recorded.
    fn next_recorded(&mut self, until: Instant, rec: &mut impl FnMut(Event)) -> Option<bool> {
        loop {
            let (line, is_payload) = self.next_line(until, rec)?;
            if !is_payload && line == b"PING\r\n" && !self.record_server_pings {
                self.send(b"PONG\r\n");
                continue;
            }
            let is_pong = !is_payload && line == b"PONG\r\n";
            rec(Event::Line(line));
            return Some(is_pong);
        }
    }

    /// Read one line (through `\n`), or the payload block announced by the
    /// previous MSG/HMSG line (then the flag is true). `None` means the
    /// connection ended and that has been recorded.
    fn next_line(
        &mut self,
        until: Instant,
        rec: &mut impl FnMut(Event),
    ) -> Option<(Vec<u8>, bool)> {
        if self.done {
            return None;
        }
        loop {
            if let Some(n) = self.payload_due {
                if self.buf.len() >= n {
                    self.payload_due = None;
                    return Some((self.buf.drain(..n).collect(), true));
                }
            } else if let Some(i) = self.buf.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = self.buf.drain(..=i).collect();
                self.payload_due = payload_size(&line).map(|n| n + 2);
                return Some((line, false));
            }
            let Some(stream) = self.stream.as_mut() else {
                self.done = true;
                if let Some(e) = &self.error {
                    rec(Event::Line(format!("<connect failed: {e}>").into_bytes()));
                }
                rec(Event::Closed);
                return None;
            };
            let now = Instant::now();
            if now >= until {
                self.flush_partial(rec);
                rec(Event::Timeout);
                self.done = true;
                return None;
            }
            let _ = stream.set_read_timeout(Some(until - now));
            let mut chunk = [0u8; 16 * 1024];
            match stream.read(&mut chunk) {
                Ok(0) => return self.ended(rec),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                // Reset, aborted...: the server went away. Same as EOF for us.
                Err(_) => return self.ended(rec),
            }
        }
    }

    fn ended<T>(&mut self, rec: &mut impl FnMut(Event)) -> Option<T> {
        self.flush_partial(rec);
        rec(Event::Closed);
        self.done = true;
        self.stream = None;
        None
    }

    fn flush_partial(&mut self, rec: &mut impl FnMut(Event)) {
        if !self.buf.is_empty() {
            rec(Event::Line(std::mem::take(&mut self.buf)));
        }
    }

    fn read_lines(&mut self, n: usize, rec: &mut impl FnMut(Event)) {
        let until = Instant::now() + self.deadline;
        for _ in 0..n {
            if self.next_recorded(until, rec).is_none() {
                return;
            }
        }
    }

    fn read_until_pong(&mut self, rec: &mut impl FnMut(Event)) {
        let until = Instant::now() + self.deadline;
        while let Some(is_pong) = self.next_recorded(until, rec) {
            if is_pong {
                return;
            }
        }
    }

    fn read_until_eof(&mut self, rec: &mut impl FnMut(Event)) {
        let until = Instant::now() + self.deadline;
        while self.next_recorded(until, rec).is_some() {}
    }
}

/// For a `MSG subject sid [reply] size` or `HMSG subject sid [reply] hdr_size
/// total_size` line, the payload size (the last argument).
fn payload_size(line: &[u8]) -> Option<usize> {
    if !(line.starts_with(b"MSG ") || line.starts_with(b"HMSG ")) {
        return None;
    }
    let text = std::str::from_utf8(line).ok()?;
    text.split_ascii_whitespace().last()?.parse().ok()
}

/// Normalise one record to the string that is compared.
///
/// `INFO {json}` lines: the JSON is parsed, values of [`INFO_IGNORED_VALUES`]
/// replaced by `"<ignored>"`, keys of [`INFO_OPTIONAL_KEYS`] dropped, and the
/// object re-serialised with sorted keys (key order is not significant).
/// The bytes around the JSON are kept. Every other line is compared
/// byte-for-byte.
pub fn normalise(r: &Record) -> String {
    let body = match &r.event {
        Event::Closed => "<closed>".to_string(),
        Event::Timeout => "<timeout>".to_string(),
        Event::Line(l) => normalise_line(l),
    };
    format!("{}< {}", r.conn, body)
}

fn normalise_line(l: &[u8]) -> String {
    if let Some(rest) = l.strip_prefix(b"INFO ") {
        if let (Some(start), Some(end)) = (
            rest.iter().position(|&b| b == b'{'),
            rest.iter().rposition(|&b| b == b'}'),
        ) {
            if let Ok(serde_json::Value::Object(map)) =
                serde_json::from_slice::<serde_json::Value>(&rest[start..=end])
            {
                let mut sorted: BTreeMap<String, serde_json::Value> = BTreeMap::new();
                for (k, v) in map {
                    if info_optional(&k) {
                        continue;
                    }
                    let v = if INFO_IGNORED_VALUES.iter().any(|(i, _)| *i == k) {
                        serde_json::Value::String("<ignored>".into())
                    } else {
                        v
                    };
                    sorted.insert(k, v);
                }
                let json = serde_json::to_string(&sorted).expect("serialise");
                return format!(
                    "INFO {}{}{}",
                    escape(&rest[..start]),
                    json,
                    escape(&rest[end + 1..])
                );
            }
        }
    }
    escape(l)
}

/// Render a recording, one record per line, for humans.
pub fn render(records: &[Record]) -> String {
    let mut s = String::new();
    for r in records {
        let _ = writeln!(s, "  L{:<3} {}", r.step_line, normalise(r));
    }
    s
}

/// Compare two recordings. `None` if equal after normalisation, otherwise a
/// readable report: the first difference, then both recordings side by side
/// with differing entries marked.
pub fn compare(
    sc: &Scenario,
    left_label: &str,
    left: &[Record],
    right_label: &str,
    right: &[Record],
) -> Option<String> {
    let l: Vec<String> = left.iter().map(normalise).collect();
    let r: Vec<String> = right.iter().map(normalise).collect();
    if l == r {
        return None;
    }
    let first = (0..l.len().max(r.len()))
        .find(|&i| l.get(i) != r.get(i))
        .expect("some entry differs");
    let step_line = left
        .get(first)
        .or_else(|| right.get(first))
        .map(|x| x.step_line)
        .unwrap_or(0);
    let step_text = sc
        .steps
        .iter()
        .find(|s| s.line == step_line)
        .map(|s| s.text.as_str())
        .unwrap_or("?");
    let w = left_label.len().max(right_label.len());
    let none = "(nothing)".to_string();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "scenario {} ({}): first difference at entry #{first}, step on line {step_line}: `{step_text}`",
        sc.name,
        sc.path.display()
    );
    let _ = writeln!(out, "  {left_label:>w$}: {}", l.get(first).unwrap_or(&none));
    let _ = writeln!(
        out,
        "  {right_label:>w$}: {}",
        r.get(first).unwrap_or(&none)
    );
    if let (Some(a), Some(b)) = (l.get(first), r.get(first)) {
        if let Some(delta) = info_delta(a, b, left_label, right_label) {
            let _ = writeln!(out, "  INFO: {delta}");
        }
    }
    let _ = writeln!(
        out,
        "full recordings (' ' both, '-' only {left_label}, '+' only {right_label}):"
    );
    for (tag, idx) in diff_lines(&l, &r) {
        let (rec, text) = match tag {
            '+' => (&right[idx], &r[idx]),
            _ => (&left[idx], &l[idx]),
        };
        let _ = writeln!(out, "{tag} L{:<3} {text}", rec.step_line);
    }
    Some(out)
}

/// All `*.txt` scenario files under `dir`, sorted by name.
pub fn scenario_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
}

/// A minimal line diff (longest common subsequence): `(' ', i)` for a line
/// in both (index into `a`), `('-', i)` only in `a`, `('+', j)` only in `b`.
fn diff_lines(a: &[String], b: &[String]) -> Vec<(char, usize)> {
    let (n, m) = (a.len(), b.len());
    // lcs[i][j] = LCS length of a[i..] and b[j..]
    let mut lcs = vec![vec![0usize; m + 1]; n + 1];
    for i in (0..n).rev() {
        for j in (0..m).rev() {
            lcs[i][j] = if a[i] == b[j] {
                lcs[i + 1][j + 1] + 1
            } else {
                lcs[i + 1][j].max(lcs[i][j + 1])
            };
        }
    }
    let (mut i, mut j) = (0, 0);
    let mut out = Vec::with_capacity(n.max(m));
    while i < n || j < m {
        if i < n && j < m && a[i] == b[j] {
            out.push((' ', i));
            i += 1;
            j += 1;
        } else if i < n && (j == m || lcs[i + 1][j] >= lcs[i][j + 1]) {
            out.push(('-', i));
            i += 1;
        } else {
            out.push(('+', j));
            j += 1;
        }
    }
    out
}

/// For two normalised `INFO` records, which keys and values differ.
fn info_delta(a: &str, b: &str, left_label: &str, right_label: &str) -> Option<String> {
    type Obj = serde_json::Map<String, serde_json::Value>;
    let parse = |s: &str| -> Option<Obj> {
        let start = s.find("INFO {")? + 5;
        let end = s.rfind('}')?;
        serde_json::from_str(&s[start..=end]).ok()
    };
    let (a, b) = (parse(a)?, parse(b)?);
    let only = |x: &Obj, y: &Obj| -> Vec<String> {
        x.keys().filter(|k| !y.contains_key(*k)).cloned().collect()
    };
    let mut parts = Vec::new();
    let only_a = only(&a, &b);
    if !only_a.is_empty() {
        parts.push(format!("keys only in {left_label}: {}", only_a.join(", ")));
    }
    let only_b = only(&b, &a);
    if !only_b.is_empty() {
        parts.push(format!("keys only in {right_label}: {}", only_b.join(", ")));
    }
    for (k, v) in &a {
        if let Some(w) = b.get(k) {
            if v != w {
                parts.push(format!("{k}: {v} vs {w}"));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join("; "))
}
