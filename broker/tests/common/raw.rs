//! A raw-protocol client for tests that need exact bytes: open a socket,
//! read the INFO greeting, send lines, and read what comes back until a
//! `PONG` or the server closing the connection.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use base64::Engine;

/// Only a guard against hanging, never an assertion about speed.
const READ_DEADLINE: Duration = Duration::from_secs(10);

/// Recorded when the server closed the connection.
pub const CLOSED: &str = "<closed>";

pub struct RawConn {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    /// The INFO greeting, parsed.
    pub info: serde_json::Value,
}

impl RawConn {
    /// Connect to `127.0.0.1:port` and read the INFO line.
    pub fn open(port: u16) -> RawConn {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(READ_DEADLINE)).unwrap();
        let mut reader = BufReader::new(stream.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).expect("INFO line");
        let info = serde_json::from_str(line.trim_start_matches("INFO ").trim())
            .unwrap_or_else(|e| panic!("INFO is JSON: {e}: {line:?}"));
        RawConn {
            stream,
            reader,
            info,
        }
    }

    /// The nonce this connection was sent (empty when none).
    pub fn nonce(&self) -> String {
        self.info["nonce"].as_str().unwrap_or_default().to_string()
    }

    /// Send bytes as they are; a write to a closed connection is ignored
    /// (what the server did before closing is what the test reads).
    pub fn send(&mut self, bytes: &str) -> &mut Self {
        let _ = self.stream.write_all(bytes.as_bytes());
        self
    }

    /// Read lines up to and including `PONG`, or until the server closes
    /// the connection (then the last entry is [`CLOSED`]). Message payloads
    /// are read as lines too; tests using this keep them single-line.
    pub fn until_pong(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) | Err(_) => {
                    out.push(CLOSED.to_string());
                    return out;
                }
                Ok(_) => {}
            }
            let done = line == "PONG\r\n";
            out.push(line);
            if done {
                return out;
            }
        }
    }

    /// Send `PING` and read up to its `PONG` (or the close).
    pub fn ping(&mut self) -> Vec<String> {
        self.send("PING\r\n");
        self.until_pong()
    }
}

/// An NKEY user's signature of `nonce`, as clients send it.
pub fn sign_nonce(kp: &nkeys::KeyPair, nonce: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(kp.sign(nonce.as_bytes()).unwrap())
}

/// One `MSG`/`HMSG` as the server wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMsg {
    pub subject: String,
    pub reply: Option<String>,
    /// The header block, byte for byte (empty for a `MSG`).
    pub headers: Vec<u8>,
    pub payload: Vec<u8>,
}

impl RawConn {
    /// Read the next message, answering the server's `PING`s and skipping
    /// `+OK`/`PONG`. Panics on anything else (an `-ERR`, a closed
    /// connection, a malformed frame): the tests using it expect messages.
    pub fn next_msg(&mut self) -> RawMsg {
        use std::io::Read;
        loop {
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => panic!("connection closed while waiting for a message"),
                Ok(_) => {}
                Err(e) => panic!("reading a message: {e}"),
            }
            let line = line.trim_end();
            match line {
                "PING" => {
                    self.send("PONG\r\n");
                    continue;
                }
                "PONG" | "+OK" => continue,
                _ => {}
            }
            let parts: Vec<&str> = line.split(' ').collect();
            let (hmsg, args) = match parts.first() {
                Some(&"MSG") => (false, &parts[1..]),
                Some(&"HMSG") => (true, &parts[1..]),
                _ => panic!("expected a message, got {line:?}"),
            };
            let num =
                |s: &str| -> usize { s.parse().unwrap_or_else(|_| panic!("bad size in {line:?}")) };
            let total = num(args[args.len() - 1]);
            let hdr_len = if hmsg { num(args[args.len() - 2]) } else { 0 };
            let sizes = if hmsg { 2 } else { 1 };
            // subject sid [reply] sizes...
            let reply = (args.len() == 2 + sizes).then(|| args[2].to_string());
            let mut body = vec![0u8; total + 2];
            self.reader
                .read_exact(&mut body)
                .unwrap_or_else(|e| panic!("reading the body of {line:?}: {e}"));
            body.truncate(total);
            let payload = body.split_off(hdr_len);
            return RawMsg {
                subject: args[0].to_string(),
                reply,
                headers: body,
                payload,
            };
        }
    }

    /// Read messages up to and including the first one on `subject`.
    pub fn until_msg_on(&mut self, subject: &str) -> Vec<RawMsg> {
        let mut out = Vec::new();
        loop {
            let m = self.next_msg();
            let done = m.subject == subject;
            out.push(m);
            if done {
                return out;
            }
        }
    }
}
