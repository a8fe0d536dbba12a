//! Parsing the request bodies: form-encoded (pusher-js) or JSON.

use axum::http::{HeaderMap, header};
use relayport_core::Channel;
use serde::Deserialize;
use serde_json::Value;

/// How channel names in form-encoded requests are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Names {
    /// Neutral names (`private:room:1`).
    Neutral,
    /// Pusher names (`private-room-1`), mapped back by relayport-pusher's rule.
    #[cfg_attr(not(feature = "pusher"), allow(dead_code))]
    Pusher,
}

/// A parsed channel auth request.
#[derive(Debug)]
pub(super) struct Parsed {
    pub socket_id: String,
    pub channel: Channel,
    /// The member info the client asked for (JSON requests only).
    pub client_info: Option<Value>,
}

#[derive(Deserialize)]
struct FormBody {
    socket_id: Option<String>,
    channel_name: Option<String>,
}

#[derive(Deserialize)]
struct JsonUser {
    #[serde(default)]
    info: Value,
}

#[derive(Deserialize)]
struct JsonBody {
    socket_id: Option<String>,
    #[serde(alias = "channel")]
    channel_name: Option<String>,
    #[serde(default)]
    user: Option<JsonUser>,
}

/// The longest socket id accepted.
const MAX_SOCKET_ID: usize = 128;

fn is_form(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.trim()
                .to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
}

fn socket_id(value: Option<String>) -> Result<String, String> {
    let id = value.ok_or("`socket_id` is missing")?;
    if id.is_empty() || id.len() > MAX_SOCKET_ID || !id.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(format!(
            "`socket_id` must be 1 to {MAX_SOCKET_ID} printable ASCII characters"
        ));
    }
    Ok(id)
}

fn channel(name: Option<String>, names: Names) -> Result<Channel, String> {
    let name = name.ok_or("`channel_name` is missing")?;
    let parsed = match names {
        Names::Neutral => Channel::parse(&name),
        #[cfg(feature = "pusher")]
        Names::Pusher => relayport_pusher::names::from_wire(&name),
        #[cfg(not(feature = "pusher"))]
        Names::Pusher => Channel::parse(&name),
    };
    parsed.map_err(|e| e.to_string())
}

/// Parses a channel auth request.
pub(super) fn parse_auth(headers: &HeaderMap, body: &[u8], names: Names) -> Result<Parsed, String> {
    if is_form(headers) {
        let form: FormBody =
            serde_urlencoded::from_bytes(body).map_err(|e| format!("malformed form body: {e}"))?;
        Ok(Parsed {
            socket_id: socket_id(form.socket_id)?,
            channel: channel(form.channel_name, names)?,
            client_info: None,
        })
    } else {
        let json: JsonBody =
            serde_json::from_slice(body).map_err(|e| format!("malformed JSON body: {e}"))?;
        Ok(Parsed {
            socket_id: socket_id(json.socket_id)?,
            channel: channel(json.channel_name, Names::Neutral)?,
            client_info: json.user.map(|u| u.info).filter(|v| !v.is_null()),
        })
    }
}

#[derive(Deserialize)]
struct SigninBody {
    socket_id: Option<String>,
}

/// Parses a user sign-in request: the socket id.
#[cfg_attr(not(feature = "pusher"), allow(dead_code))]
pub(super) fn parse_signin(headers: &HeaderMap, body: &[u8]) -> Result<String, String> {
    let parsed: SigninBody = if is_form(headers) {
        serde_urlencoded::from_bytes(body).map_err(|e| format!("malformed form body: {e}"))?
    } else {
        serde_json::from_slice(body).map_err(|e| format!("malformed JSON body: {e}"))?
    };
    socket_id(parsed.socket_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn form() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        h
    }

    #[test]
    fn form_bodies_map_pusher_names_back() {
        let p = parse_auth(
            &form(),
            b"socket_id=123.456&channel_name=private-room-1&extra=1",
            Names::Pusher,
        )
        .unwrap();
        assert_eq!(p.socket_id, "123.456");
        assert_eq!(p.channel.to_string(), "private:room-1");
        let p = parse_auth(
            &form(),
            b"socket_id=1.2&channel_name=presence%3Alobby",
            Names::Neutral,
        )
        .unwrap();
        assert_eq!(p.channel.to_string(), "presence:lobby");
    }

    #[test]
    fn json_bodies_are_neutral_and_carry_client_info() {
        let p = parse_auth(
            &HeaderMap::new(),
            br#"{"socket_id":"n.1","channel_name":"presence:room:1","user":{"id":"ignored","info":{"n":1}}}"#,
            Names::Pusher,
        )
        .unwrap();
        assert_eq!(p.channel.to_string(), "presence:room:1");
        assert_eq!(p.client_info, Some(serde_json::json!({"n": 1})));
    }

    #[test]
    fn malformed_bodies_are_refused_with_a_reason() {
        let cases: [(&HeaderMap, &[u8], &str); 6] = [
            (&HeaderMap::new(), b"not json", "malformed JSON"),
            (
                &HeaderMap::new(),
                br#"{"channel_name":"private:a"}"#,
                "socket_id",
            ),
            (&HeaderMap::new(), br#"{"socket_id":"1.2"}"#, "channel_name"),
            (
                &HeaderMap::new(),
                br#"{"socket_id":"1 2","channel_name":"private:a"}"#,
                "socket_id",
            ),
            (
                &form(),
                b"socket_id=1.2&channel_name=private%20a",
                "invalid channel",
            ),
            (
                &form(),
                b"socket_id=1.2&channel_name=private:a",
                "Invalid channel",
            ),
        ];
        for (headers, body, expect) in cases {
            let e = parse_auth(headers, body, Names::Pusher).unwrap_err();
            assert!(e.contains(expect), "{e:?} should mention {expect}");
        }
    }
}
