//! The `phx_join` payload and the join reply.
//!
//! The payload is written exactly as realtime-js writes it: all four `config` keys in the order
//! `broadcast, presence, postgres_changes, private`, then `access_token` when there is one. The
//! broadcast object is `{"ack":false,"self":false}` when the application set nothing; set
//! options *replace* that default (realtime-js does not merge), in the order
//! `self, ack, replay`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use relayport_core::{Channel, RealtimeError};

use crate::errors::{ErrorContext, to_error};
use crate::postgres::PostgresChangesFilter;

/// Replay of stored broadcasts on join (private channels only; the server caps `limit` at 25).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Replay {
    /// Unix time in milliseconds from which to replay.
    pub since: u64,
    /// How many messages at most.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `config.broadcast`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BroadcastOptions {
    /// Also deliver my own broadcasts to me.
    #[serde(rename = "self", default, skip_serializing_if = "Option::is_none")]
    pub self_broadcast: Option<bool>,
    /// Ask the server to acknowledge each broadcast (the client then waits for the ack).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack: Option<bool>,
    /// Replay stored messages on join.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay: Option<Replay>,
}

/// Per-channel join options; anything left `None` follows the channel-name rule of
/// [`crate::topic`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ChannelOptions {
    /// `config.broadcast`; `None` sends realtime-js's default `{"ack":false,"self":false}`.
    pub broadcast: Option<BroadcastOptions>,
    /// Turn presence on (`Some(true)`) or off; `None`: on for `presence:` channels only.
    pub presence_enabled: Option<bool>,
    /// The presence key; `None`: from the channel authorization, the provider's configured
    /// key, or empty (the server then picks a UUID).
    pub presence_key: Option<String>,
    /// `config.private`; `None`: true for `private:` and `presence:` channels.
    pub private: Option<bool>,
    /// `config.postgres_changes`.
    pub postgres_changes: Vec<PostgresChangesFilter>,
}

impl ChannelOptions {
    /// Whether broadcasts on this channel are acknowledged.
    pub fn acked(&self) -> bool {
        self.broadcast.as_ref().and_then(|b| b.ack).unwrap_or(false)
    }
}

/// A fully resolved join: what goes into `phx_join`.
#[derive(Debug, Clone, PartialEq)]
pub struct JoinParams {
    /// `config.broadcast` (`None`: the default).
    pub broadcast: Option<BroadcastOptions>,
    /// `config.presence.key`.
    pub presence_key: String,
    /// `config.presence.enabled`.
    pub presence_enabled: bool,
    /// `config.postgres_changes`.
    pub postgres_changes: Vec<PostgresChangesFilter>,
    /// `config.private`.
    pub private: bool,
    /// The JWT for RLS and claims; omitted when `None` (the server then uses the API key).
    pub access_token: Option<String>,
}

#[derive(Serialize)]
struct DefaultBroadcast {
    ack: bool,
    #[serde(rename = "self")]
    self_: bool,
}

#[derive(Serialize)]
#[serde(untagged)]
enum BroadcastSer<'a> {
    Default(DefaultBroadcast),
    Set(&'a BroadcastOptions),
}

#[derive(Serialize)]
struct PresenceSer<'a> {
    key: &'a str,
    enabled: bool,
}

#[derive(Serialize)]
struct ConfigSer<'a> {
    broadcast: BroadcastSer<'a>,
    presence: PresenceSer<'a>,
    postgres_changes: &'a [PostgresChangesFilter],
    private: bool,
}

#[derive(Serialize)]
struct JoinSer<'a> {
    config: ConfigSer<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<&'a str>,
}

impl JoinParams {
    /// The `phx_join` payload as JSON text.
    ///
    /// ```
    /// use relayport_supabase::join::JoinParams;
    /// let p = JoinParams { broadcast: None, presence_key: String::new(), presence_enabled: false,
    ///     postgres_changes: vec![], private: false, access_token: None };
    /// assert_eq!(p.payload_json(), r#"{"config":{"broadcast":{"ack":false,"self":false},"presence":{"key":"","enabled":false},"postgres_changes":[],"private":false}}"#);
    /// ```
    pub fn payload_json(&self) -> String {
        let ser = JoinSer {
            config: ConfigSer {
                broadcast: match &self.broadcast {
                    None => BroadcastSer::Default(DefaultBroadcast {
                        ack: false,
                        self_: false,
                    }),
                    Some(b) => BroadcastSer::Set(b),
                },
                presence: PresenceSer {
                    key: &self.presence_key,
                    enabled: self.presence_enabled,
                },
                postgres_changes: &self.postgres_changes,
                private: self.private,
            },
            access_token: self.access_token.as_deref(),
        };
        // Serializing these plain structs cannot fail.
        serde_json::to_string(&ser).unwrap_or_default()
    }
}

/// A reply's `status` and `response`.
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    /// `ok` or `error`.
    pub status: String,
    /// The response: an object, or a bare string for broadcast ack errors.
    pub response: Value,
}

impl Reply {
    /// Reads a `phx_reply` payload.
    pub fn from_payload(payload: &Value) -> Result<Self, RealtimeError> {
        let status = payload
            .get("status")
            .and_then(Value::as_str)
            .ok_or_else(|| RealtimeError::Protocol(format!("reply without a status: {payload}")))?;
        Ok(Self {
            status: status.to_owned(),
            response: payload.get("response").cloned().unwrap_or(Value::Null),
        })
    }

    /// Whether the status is `ok`.
    pub fn is_ok(&self) -> bool {
        self.status == "ok"
    }

    /// The error text: `response.reason`, or the response itself when it is a bare string.
    pub fn reason(&self) -> String {
        match &self.response {
            Value::String(s) => s.clone(),
            v => v
                .get("reason")
                .and_then(Value::as_str)
                .map_or_else(|| v.to_string(), str::to_owned),
        }
    }
}

/// Reads a join reply: on `ok`, the server ids of the postgres_changes filters, matched by
/// position (realtime-js fails the join when they differ); on `error`, the mapped reason.
pub fn parse_join_reply(
    reply: &Reply,
    channel: &Channel,
    filters: &[PostgresChangesFilter],
) -> Result<Vec<u64>, RealtimeError> {
    if !reply.is_ok() {
        return Err(to_error(
            &reply.reason(),
            ErrorContext {
                channel: Some(channel),
                ..Default::default()
            },
        ));
    }
    let server = match reply.response.get("postgres_changes") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => items.clone(),
        Some(other) => {
            return Err(RealtimeError::Protocol(format!(
                "join reply postgres_changes is not a list: {other}"
            )));
        }
    };
    if server.len() != filters.len() {
        return Err(mismatch(channel));
    }
    let mut ids = Vec::with_capacity(filters.len());
    for (ours, theirs) in filters.iter().zip(&server) {
        let field = |k: &str| theirs.get(k).and_then(Value::as_str);
        let same = field("event") == Some(ours.event.as_str())
            && field("schema") == Some(ours.schema.as_str())
            && field("table") == ours.table.as_deref()
            && field("filter") == ours.filter.as_deref();
        let id = theirs.get("id").and_then(Value::as_u64);
        match (same, id) {
            (true, Some(id)) => ids.push(id),
            _ => return Err(mismatch(channel)),
        }
    }
    Ok(ids)
}

fn mismatch(channel: &Channel) -> RealtimeError {
    RealtimeError::Protocol(format!(
        "mismatch between server and client bindings for postgres changes on `{channel}`"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::postgres::PostgresEvent;
    use serde_json::json;

    #[test]
    fn set_broadcast_options_replace_the_default() {
        let p = JoinParams {
            broadcast: Some(BroadcastOptions {
                self_broadcast: Some(true),
                ack: Some(true),
                replay: None,
            }),
            presence_key: "k".into(),
            presence_enabled: true,
            postgres_changes: vec![],
            private: true,
            access_token: Some("t".into()),
        };
        assert_eq!(
            p.payload_json(),
            r#"{"config":{"broadcast":{"self":true,"ack":true},"presence":{"key":"k","enabled":true},"postgres_changes":[],"private":true},"access_token":"t"}"#
        );
    }

    #[test]
    fn join_reply_ids_are_matched_by_position() {
        let ch = Channel::public("db");
        let filters = vec![
            PostgresChangesFilter::new(PostgresEvent::Insert, "public").table("todos"),
            PostgresChangesFilter::new(PostgresEvent::All, "public"),
        ];
        let ok = Reply::from_payload(&json!({"status":"ok","response":{"postgres_changes":[
            {"event":"INSERT","schema":"public","table":"todos","id":1},
            {"event":"*","schema":"public","id":2}]}}))
        .unwrap();
        assert_eq!(parse_join_reply(&ok, &ch, &filters).unwrap(), vec![1, 2]);
        let swapped = Reply::from_payload(&json!({"status":"ok","response":{"postgres_changes":[
            {"event":"*","schema":"public","id":2},
            {"event":"INSERT","schema":"public","table":"todos","id":1}]}}))
        .unwrap();
        assert!(parse_join_reply(&swapped, &ch, &filters).is_err());
        let short = Reply::from_payload(&json!({"status":"ok","response":{}})).unwrap();
        assert!(parse_join_reply(&short, &ch, &filters).is_err());
        assert!(parse_join_reply(&short, &ch, &[]).unwrap().is_empty());
        let no_id = Reply::from_payload(&json!({"status":"ok","response":{"postgres_changes":[
            {"event":"*","schema":"public"}]}}))
        .unwrap();
        assert!(parse_join_reply(&no_id, &ch, &filters[1..]).is_err());
        assert!(Reply::from_payload(&json!({"response":{}})).is_err());
        assert_eq!(
            Reply::from_payload(&json!({"status":"error","response":"payload_size_exceeded"}))
                .unwrap()
                .reason(),
            "payload_size_exceeded"
        );
    }
}
