//! The `CONNECT` document a client sends after the server's `INFO`.

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Go's decoder leaves a field at its default when the JSON says `null`,
/// and clients (async-nats among them) do send `"name":null`. Do the same.
fn null_is_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// For the fields whose default is true (verbose, pedantic, echo).
fn null_is_true<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    Ok(Option::<bool>::deserialize(d)?.unwrap_or(true))
}

/// Client options from `CONNECT`. Fields a client omits keep nats-server's
/// defaults: verbose, pedantic and echo all start out true, so a bare
/// `CONNECT {}` is answered with `+OK` just as nats-server answers it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct ConnectOptions {
    #[serde(deserialize_with = "null_is_true")]
    pub verbose: bool,
    #[serde(deserialize_with = "null_is_true")]
    pub pedantic: bool,
    #[serde(deserialize_with = "null_is_default")]
    pub tls_required: bool,
    #[serde(deserialize_with = "null_is_true")]
    pub echo: bool,
    #[serde(deserialize_with = "null_is_default")]
    pub headers: bool,
    #[serde(deserialize_with = "null_is_default")]
    pub no_responders: bool,
    #[serde(deserialize_with = "null_is_default")]
    pub name: String,
    #[serde(deserialize_with = "null_is_default")]
    pub lang: String,
    #[serde(deserialize_with = "null_is_default")]
    pub version: String,
    #[serde(deserialize_with = "null_is_default")]
    pub protocol: i32,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub auth_token: Option<String>,
    pub nkey: Option<String>,
    pub sig: Option<String>,
    pub jwt: Option<String>,
    pub account: Option<String>,
    #[serde(deserialize_with = "null_is_default")]
    pub new_account: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            verbose: true,
            pedantic: true,
            tls_required: false,
            echo: true,
            headers: false,
            no_responders: false,
            name: String::new(),
            lang: String::new(),
            version: String::new(),
            protocol: 0,
            user: None,
            pass: None,
            auth_token: None,
            nkey: None,
            sig: None,
            jwt: None,
            account: None,
            new_account: false,
        }
    }
}

impl ConnectOptions {
    /// Parse a CONNECT argument. Unknown fields are ignored, as in Go.
    /// Only a JSON object is one: serde would also fill the struct from an
    /// array, field by field (`[false,false]`), which Go's decoder refuses
    /// and nats-server closes the connection for.
    pub fn parse(arg: &[u8]) -> Result<Self, ConnectError> {
        if arg.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[') {
            return Err(ConnectError(serde::de::Error::invalid_type(
                serde::de::Unexpected::Seq,
                &"a CONNECT object",
            )));
        }
        serde_json::from_slice(arg).map_err(ConnectError)
    }

    /// Parse a CONNECT onto the ones this connection sent before, as
    /// nats-server decodes each CONNECT into the options it already holds:
    /// a field the new one leaves out, or sends as `null`, keeps its earlier
    /// value, credentials included. So `CONNECT {}` after a login repeats
    /// that login; it does not become an anonymous one. `sent` is updated
    /// only when the CONNECT is valid.
    pub fn parse_onto(sent: &mut Map<String, Value>, arg: &[u8]) -> Result<Self, ConnectError> {
        let Ok(Value::Object(new)) = serde_json::from_slice::<Value>(arg) else {
            // Not JSON, or not an object: let the typed parser say why.
            return Self::parse(arg);
        };
        let mut merged = sent.clone();
        merged.extend(new.into_iter().filter(|(_, v)| !v.is_null()));
        let c = Self::deserialize(Value::Object(merged.clone())).map_err(ConnectError)?;
        *sent = merged;
        Ok(c)
    }
}

/// A CONNECT that is not valid JSON or has a field of the wrong type.
///
/// The error is logged, and serde's text quotes the offending value
/// (``invalid type: integer `123456`, expected a string``): for a
/// numeric password that is the password. The message keeps the kind of
/// value and where it was, not the value itself, as Go's decoder does.
#[derive(Debug)]
pub struct ConnectError(serde_json::Error);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.0.to_string();
        for prefix in ["invalid type: ", "invalid value: "] {
            let Some(rest) = text.strip_prefix(prefix) else {
                continue;
            };
            // `<kind> <value>, expected <what> at line L column C`: keep
            // the kind, drop the value.
            if let Some((got, expected)) = rest.rsplit_once(", expected ") {
                let kind = [" `", " \""]
                    .iter()
                    .filter_map(|q| got.find(q))
                    .min()
                    .map_or(got, |i| &got[..i]);
                return write!(f, "{prefix}{kind}, expected {expected}");
            }
        }
        f.write_str(&text)
    }
}

impl std::error::Error for ConnectError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_nats_server() {
        let c = ConnectOptions::parse(b"{}").unwrap();
        assert!(c.verbose && c.pedantic && c.echo && !c.headers);
        let c = ConnectOptions::parse(br#"{"verbose":false,"pedantic":false,"echo":false,"headers":true,"no_responders":true,"name":"n","lang":"rust","version":"1","protocol":1,"user":"u","pass":"p","extra":[1]}"#).unwrap();
        assert!(!c.verbose && !c.pedantic && !c.echo && c.headers && c.no_responders);
        assert_eq!(
            (c.name.as_str(), c.protocol, c.user.as_deref()),
            ("n", 1, Some("u"))
        );
        assert!(ConnectOptions::parse(b"").is_err());
        let c = ConnectOptions::parse(br#"{"name":null,"user":null,"echo":null,"protocol":null}"#)
            .unwrap();
        assert!(c.name.is_empty() && c.user.is_none() && c.echo && c.protocol == 0);
        assert!(ConnectOptions::parse(b"{\"verbose\":\"x\"}").is_err());
    }

    /// serde fills a struct from an array too; nats-server refuses one.
    #[test]
    fn an_array_is_not_a_connect() {
        for arg in [
            &b"[]"[..],
            b" [false,false]",
            b"[true,true,false,true,false,false,\"n\",\"l\",\"v\",1,\"u\",\"p\"]",
        ] {
            let e = ConnectOptions::parse(arg).unwrap_err().to_string();
            assert_eq!(e, "invalid type: sequence, expected a CONNECT object");
            assert!(ConnectOptions::parse_onto(&mut Map::new(), arg).is_err());
        }
    }

    /// A later CONNECT keeps what it does not say, as nats-server's decoding
    /// into the existing options does; a bad one changes nothing.
    #[test]
    fn later_connects_merge_onto_earlier_ones() {
        let mut sent = Map::new();
        let c =
            ConnectOptions::parse_onto(&mut sent, br#"{"user":"a","pass":"p","verbose":false}"#)
                .unwrap();
        assert_eq!(c.user.as_deref(), Some("a"));
        let c = ConnectOptions::parse_onto(&mut sent, b"{}").unwrap();
        assert_eq!(
            (c.user.as_deref(), c.pass.as_deref()),
            (Some("a"), Some("p"))
        );
        assert!(!c.verbose, "verbose stays off");
        let c = ConnectOptions::parse_onto(&mut sent, br#"{"user":null,"echo":false}"#).unwrap();
        assert_eq!(c.user.as_deref(), Some("a"), "null keeps the earlier value");
        assert!(!c.echo);
        let c = ConnectOptions::parse_onto(&mut sent, br#"{"user":"b","pass":"q"}"#).unwrap();
        assert_eq!(
            (c.user.as_deref(), c.pass.as_deref()),
            (Some("b"), Some("q"))
        );
        assert!(ConnectOptions::parse_onto(&mut sent, br#"{"verbose":"x","user":"c"}"#).is_err());
        assert!(ConnectOptions::parse_onto(&mut sent, b"[1]").is_err());
        assert!(ConnectOptions::parse_onto(&mut sent, b"{").is_err());
        let c = ConnectOptions::parse_onto(&mut sent, b"{}").unwrap();
        assert_eq!(
            c.user.as_deref(),
            Some("b"),
            "the bad CONNECTs changed nothing"
        );
    }

    /// Errors say what was wrong and where, never the value (it may be a
    /// password).
    #[test]
    fn errors_do_not_quote_values() {
        for (arg, want) in [
            (
                &br#"{"user":"a","pass":123456}"#[..],
                "invalid type: integer, expected a string at line 1 column 25",
            ),
            (
                br#"{"verbose":"s3cret"}"#,
                "invalid type: string, expected a boolean at line 1 column 19",
            ),
            (
                br#"{"auth_token":1.5}"#,
                "invalid type: floating point, expected a string at line 1 column 17",
            ),
        ] {
            let e = ConnectOptions::parse(arg).unwrap_err().to_string();
            assert_eq!(e, want);
        }
        let e = ConnectOptions::parse(b"{").unwrap_err().to_string();
        assert!(e.contains("EOF"), "{e}");
    }
}
