//! Query parameters with nats-server's decoding rules and 400 error texts.

use super::gofmt;

/// The decoded query string. Like Go's `url.Values.Get`, a parameter given
/// more than once yields its first value, and an empty value counts as absent.
#[derive(Debug, Default, Clone)]
pub struct Params(Vec<(String, String)>);

/// `state=` of `/connz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Open,
    Closed,
    Any,
}

impl Params {
    pub fn parse(query: Option<&str>) -> Params {
        let Some(q) = query else {
            return Params::default();
        };
        let uri: axum::http::Uri = match format!("/?{q}").parse() {
            Ok(u) => u,
            Err(_) => return Params::default(),
        };
        match axum::extract::Query::<Vec<(String, String)>>::try_from_uri(&uri) {
            Ok(axum::extract::Query(v)) => Params(v),
            Err(_) => Params::default(),
        }
    }

    /// Parameters given as pairs (a system account request's options,
    /// translated to the names the HTTP endpoint reads).
    pub fn from_pairs(pairs: Vec<(String, String)>) -> Params {
        Params(pairs)
    }

    /// `key` set to `value`, whatever the parameters said (a system
    /// request's subject names the account its options may not change).
    pub fn with(mut self, key: &str, value: &str) -> Params {
        self.0.insert(0, (key.to_string(), value.to_string()));
        self
    }

    /// The first value of `key`, or "".
    pub fn get(&self, key: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == key)
            .map_or("", |(_, v)| v.as_str())
    }

    /// nats-server's `decodeBool`.
    pub fn bool(&self, key: &str) -> Result<bool, String> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(false);
        }
        gofmt::parse_bool(v).map_err(|e| format!("Error decoding boolean for '{key}': {e}"))
    }

    /// nats-server's `decodeInt`.
    pub fn int(&self, key: &str) -> Result<i64, String> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(0);
        }
        gofmt::atoi(v).map_err(|e| format!("Error decoding int for '{key}': {e}"))
    }

    /// nats-server's `decodeUint64`.
    pub fn uint64(&self, key: &str) -> Result<u64, String> {
        let v = self.get(key);
        if v.is_empty() {
            return Ok(0);
        }
        gofmt::parse_uint64(v).map_err(|e| format!("Error decoding uint64 for '{key}': {e}"))
    }

    /// nats-server's `decodeState`.
    pub fn state(&self) -> Result<ConnState, String> {
        let v = self.get("state");
        if v.is_empty() {
            return Ok(ConnState::Open);
        }
        match v.to_lowercase().as_str() {
            "open" => Ok(ConnState::Open),
            "closed" => Ok(ConnState::Closed),
            "any" | "all" => Ok(ConnState::Any),
            _ => Err(format!("Error decoding state for {v}")),
        }
    }

    /// nats-server's `decodeSubs`: `(subs, subs_detail)`.
    pub fn subs(&self) -> Result<(bool, bool), String> {
        if self.get("subs").eq_ignore_ascii_case("detail") {
            return Ok((false, true));
        }
        Ok((self.bool("subs")?, false))
    }
}

/// Clamp `offset`/`limit` to a list of `len` items, as nats-server pages.
pub fn page_bounds(offset: usize, limit: usize, len: usize) -> (usize, usize) {
    let lo = offset.min(len);
    (lo, lo + limit.min(len - lo))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_value_wins_and_decoding() {
        let p = Params::parse(Some("subs=detail&limit=5&limit=7&user=a+b%21&auth="));
        assert_eq!(p.subs(), Ok((false, true)));
        assert_eq!(p.int("limit"), Ok(5));
        assert_eq!(p.get("user"), "a b!");
        assert_eq!(p.bool("auth"), Ok(false));
        assert_eq!(p.get("missing"), "");
    }

    #[test]
    fn errors_match_nats_server() {
        let p = Params::parse(Some("auth=x&offset=y&cid=-1&state=xx&subs=maybe"));
        assert_eq!(
            p.bool("auth").unwrap_err(),
            r#"Error decoding boolean for 'auth': strconv.ParseBool: parsing "x": invalid syntax"#
        );
        assert_eq!(
            p.int("offset").unwrap_err(),
            r#"Error decoding int for 'offset': strconv.Atoi: parsing "y": invalid syntax"#
        );
        assert_eq!(
            p.uint64("cid").unwrap_err(),
            r#"Error decoding uint64 for 'cid': strconv.ParseUint: parsing "-1": invalid syntax"#
        );
        assert_eq!(p.state().unwrap_err(), "Error decoding state for xx");
        assert_eq!(
            p.subs().unwrap_err(),
            r#"Error decoding boolean for 'subs': strconv.ParseBool: parsing "maybe": invalid syntax"#
        );
        assert_eq!(Params::parse(Some("state=ALL")).state(), Ok(ConnState::Any));
        assert_eq!(Params::parse(None).state(), Ok(ConnState::Open));
    }

    #[test]
    fn paging() {
        assert_eq!(page_bounds(0, 1024, 3), (0, 3));
        assert_eq!(page_bounds(1, 1, 3), (1, 2));
        assert_eq!(page_bounds(5, 2, 3), (3, 3));
        assert_eq!(page_bounds(2, 10, 3), (2, 3));
    }
}
