//! The client's pushes, encoded as realtime-js encodes them: text frames for everything but
//! broadcasts on vsn 2.0.0, which go out as binary kind-3 frames (JSON or binary payload).

use serde::Serialize;
use serde_json::Value;

use crate::frame::{
    FrameError, OutgoingText, ProtocolVersion, UserBroadcastPush, UserPayload, encode_text,
    encode_user_broadcast_push,
};
use crate::join::JoinParams;
use crate::topic::PHOENIX_TOPIC;

/// One push from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientPush {
    /// `phx_join`.
    Join(JoinParams),
    /// `phx_leave`.
    Leave,
    /// `heartbeat` on the `phoenix` topic.
    Heartbeat,
    /// Presence `track` with the member's state.
    Track(Value),
    /// Presence `untrack`.
    Untrack,
    /// `access_token` refresh.
    AccessToken(String),
    /// A user broadcast.
    Broadcast {
        /// The user event.
        event: String,
        /// The payload.
        payload: UserPayload,
        /// kind-3 metadata (`{"persist": …}`), vsn 2.0.0 only.
        metadata: Option<Value>,
    },
}

/// An encoded frame.
#[derive(Debug, Clone, PartialEq)]
pub enum WireFrame {
    /// A text frame.
    Text(String),
    /// A binary frame.
    Binary(Vec<u8>),
}

#[derive(Serialize)]
struct Typed<'a, P: Serialize> {
    #[serde(rename = "type")]
    ty: &'a str,
    event: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payload: Option<P>,
}

fn typed<P: Serialize>(ty: &str, event: &str, payload: Option<P>) -> Result<String, FrameError> {
    serde_json::to_string(&Typed { ty, event, payload })
        .map_err(|e| FrameError::Malformed(e.to_string()))
}

impl ClientPush {
    /// The Phoenix event name.
    pub fn event(&self) -> &'static str {
        match self {
            Self::Join(_) => "phx_join",
            Self::Leave => "phx_leave",
            Self::Heartbeat => "heartbeat",
            Self::Track(_) | Self::Untrack => "presence",
            Self::AccessToken(_) => "access_token",
            Self::Broadcast { .. } => "broadcast",
        }
    }

    /// Encodes the push. `topic` is ignored for heartbeats (always `phoenix`, no join ref).
    ///
    /// ```
    /// use relayport_supabase::frame::ProtocolVersion;
    /// use relayport_supabase::push::{ClientPush, WireFrame};
    /// let f = ClientPush::Leave.encode(ProtocolVersion::V2, Some("6"), "13", "realtime:room1").unwrap();
    /// assert_eq!(f, WireFrame::Text(r#"["6","13","realtime:room1","phx_leave",{}]"#.into()));
    /// ```
    pub fn encode(
        &self,
        vsn: ProtocolVersion,
        join_ref: Option<&str>,
        ref_: &str,
        topic: &str,
    ) -> Result<WireFrame, FrameError> {
        let (join_ref, topic) = match self {
            Self::Heartbeat => (None, PHOENIX_TOPIC),
            _ => (join_ref, topic),
        };
        let payload = match self {
            Self::Join(p) => p.payload_json(),
            Self::Leave | Self::Heartbeat => "{}".to_owned(),
            Self::Track(state) => typed("presence", "track", Some(state))?,
            Self::Untrack => typed::<Value>("presence", "untrack", None)?,
            Self::AccessToken(t) => serde_json::json!({ "access_token": t }).to_string(),
            Self::Broadcast {
                event,
                payload,
                metadata,
            } => match vsn {
                ProtocolVersion::V2 => {
                    return encode_user_broadcast_push(&UserBroadcastPush {
                        join_ref: join_ref.unwrap_or_default().to_owned(),
                        ref_: ref_.to_owned(),
                        topic: topic.to_owned(),
                        user_event: event.clone(),
                        metadata: metadata.clone(),
                        payload: payload.clone(),
                    })
                    .map(WireFrame::Binary);
                }
                ProtocolVersion::V1 => match payload {
                    UserPayload::Json(v) => typed("broadcast", event, Some(v))?,
                    UserPayload::Binary(_) => {
                        return Err(FrameError::Malformed(
                            "binary broadcast payloads need vsn 2.0.0".into(),
                        ));
                    }
                },
            },
        };
        Ok(WireFrame::Text(encode_text(
            vsn,
            &OutgoingText {
                join_ref,
                ref_,
                topic,
                event: self.event(),
                payload_json: &payload,
            },
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn binary_payloads_need_vsn_2() {
        let push = ClientPush::Broadcast {
            event: "e".into(),
            payload: UserPayload::Binary(vec![1]),
            metadata: None,
        };
        assert!(
            push.encode(ProtocolVersion::V1, Some("1"), "2", "realtime:r")
                .is_err()
        );
        assert!(matches!(
            push.encode(ProtocolVersion::V2, Some("1"), "2", "realtime:r"),
            Ok(WireFrame::Binary(_))
        ));
        let json_push = ClientPush::Broadcast {
            event: "e".into(),
            payload: UserPayload::Json(json!({"a": 1})),
            metadata: None,
        };
        assert_eq!(
            json_push.encode(ProtocolVersion::V1, Some("1"), "2", "realtime:r").unwrap(),
            WireFrame::Text(
                r#"{"topic":"realtime:r","event":"broadcast","payload":{"type":"broadcast","event":"e","payload":{"a":1}},"ref":"2","join_ref":"1"}"#.into()
            )
        );
    }

    #[test]
    fn heartbeats_ignore_the_topic_and_join_ref() {
        assert_eq!(
            ClientPush::Heartbeat
                .encode(ProtocolVersion::V2, Some("9"), "3", "realtime:x")
                .unwrap(),
            WireFrame::Text(r#"[null,"3","phoenix","heartbeat",{}]"#.into())
        );
    }
}
