//! The REST side: locations as URLs (`{db}/{root}/{…}.json`), credentials on requests, and
//! HTTP answers as values or typed errors.
//!
//! An ID token can only travel in the `auth=` query parameter (the REST API has no header for
//! it), so request URLs are never logged and transport errors are stripped of their URL. An
//! OAuth access token travels in the `Authorization` header instead.

use futures_util::StreamExt;
use relayport_core::{Channel, RealtimeError, Result};
use serde_json::Value;
use url::Url;

use crate::token::{AccessToken, TokenKind};

/// The largest answer body read (an error's, or a history page's).
pub const MAX_BODY_BYTES: usize = 8 << 20;

/// The URL of the location `segments` (already database keys) below `base`, with `query`.
pub fn location_url(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Result<Url> {
    let mut url = base.clone();
    {
        let mut path = url
            .path_segments_mut()
            .map_err(|()| RealtimeError::Config("the database URL cannot be a base".into()))?;
        path.pop_if_empty();
        match segments.split_last() {
            None => {
                path.push(".json");
            }
            Some((last, parents)) => {
                path.extend(parents);
                path.push(&format!("{last}.json"));
            }
        }
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    Ok(url)
}

/// Adds the credential to a request: `auth=` for an ID token, a bearer header for an access
/// token.
pub fn with_token(
    request: reqwest::RequestBuilder,
    token: Option<&AccessToken>,
) -> reqwest::RequestBuilder {
    match token {
        None => request,
        Some(t) if t.kind == TokenKind::AccessToken => request.bearer_auth(&t.token),
        Some(t) => request.query(&[(t.kind.param(), t.token.as_str())]),
    }
}

/// A transport failure, without its URL (which may hold the token).
pub fn connection(error: reqwest::Error) -> RealtimeError {
    RealtimeError::Connection(format!("firebase: {}", error.without_url()))
}

/// Reads at most [`MAX_BODY_BYTES`] of a body.
pub async fn read_body(response: reqwest::Response) -> Result<Vec<u8>> {
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(connection)?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(RealtimeError::Protocol(format!(
                "an answer larger than {MAX_BODY_BYTES} bytes"
            )));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// The error an HTTP status and Firebase's `{"error": "…"}` body amount to.
pub fn status_error(status: u16, body: &[u8], channel: Option<&Channel>) -> RealtimeError {
    let message = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v.get("error").and_then(Value::as_str).map(str::to_owned))
        .unwrap_or_else(|| format!("HTTP {status}"));
    let credential = {
        let m = message.to_ascii_lowercase();
        m.contains("token") || m.contains("credential") || m.contains("expired")
    };
    match status {
        401 | 403 if credential => RealtimeError::Unauthorized(message),
        401 | 403 => match channel {
            Some(c) => relayport_core::auth::forbidden(c, message),
            None => RealtimeError::Unauthorized(message),
        },
        413 => RealtimeError::provider("firebase", 413, message, false),
        429 => RealtimeError::RateLimited(message),
        500..=599 => RealtimeError::provider("firebase", i64::from(status), message, true),
        _ => RealtimeError::provider("firebase", i64::from(status), message, false),
    }
}

/// The JSON value of a successful answer, or the error a failed one amounts to.
pub async fn json_answer(response: reqwest::Response, channel: Option<&Channel>) -> Result<Value> {
    let status = response.status().as_u16();
    let body = read_body(response).await?;
    if !(200..300).contains(&status) {
        return Err(status_error(status, &body, channel));
    }
    if body.is_empty() {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&body)
        .map_err(|e| RealtimeError::Protocol(format!("firebase answered non-JSON: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use relayport_core::ErrorKind;

    #[test]
    fn locations_are_percent_encoded_json_paths() {
        let base = Url::parse("https://db.example.test/").expect("url");
        let url = location_url(
            &base,
            &["realtime", "a%2Eb c", "messages"],
            &[("orderBy", "\"$key\"")],
        )
        .expect("url");
        assert_eq!(
            url.as_str(),
            "https://db.example.test/realtime/a%252Eb%20c/messages.json?orderBy=%22%24key%22"
        );
        assert_eq!(
            location_url(&base, &[], &[]).expect("url").as_str(),
            "https://db.example.test/.json"
        );
    }

    #[test]
    fn statuses_map_to_kinds() {
        let ch = Channel::public("a");
        let kind = |s, b: &str| status_error(s, b.as_bytes(), Some(&ch)).kind();
        assert_eq!(
            kind(401, r#"{"error":"Permission denied"}"#),
            ErrorKind::Forbidden
        );
        assert_eq!(
            kind(401, r#"{"error":"Auth token is expired"}"#),
            ErrorKind::Unauthorized
        );
        assert_eq!(kind(429, "{}"), ErrorKind::RateLimited);
        assert!(status_error(503, b"", None).is_retryable());
        assert!(!status_error(400, b"not json", None).is_retryable());
    }
}
