//! Ably realtime protocol messages (JSON protocol v6; this client does not use msgpack) as the
//! client reads them, and what it reads out of them: payload encoding chains, timeserials,
//! channel names, errors.

use relayport_ably::channels::{ably_name, from_ably_name};
use relayport_ably::connection::position_from_serial;
use relayport_ably::encoding::{Payload, decode};
use relayport_ably::errors::{Context, classify, to_realtime_error};
use relayport_ably::protocol::ProtocolMessage;
use serde_json::Value;

use crate::json::{any_float, has_float};

/// Parses `text` as a protocol message; one that parses serializes to JSON that parses back to
/// the same message, and every payload, serial, channel and error in it is checked.
pub fn check_protocol_message(text: &str) {
    let Ok(pm) = ProtocolMessage::parse(text) else {
        return;
    };
    let payloads = pm
        .messages
        .iter()
        .flatten()
        .flat_map(|m| m.data.iter().chain(m.extras.iter()))
        .chain(pm.presence.iter().flatten().flat_map(|p| p.data.iter()));
    if !any_float(payloads) {
        let json = pm.to_json();
        let again = ProtocolMessage::parse(&json)
            .unwrap_or_else(|e| panic!("{json:?} (from {text:?}) does not parse: {e}"));
        assert_eq!(again, pm, "round trip of {text:?}");
    }
    if let Some(name) = &pm.channel
        && let Ok(channel) = from_ably_name(name)
        && !channel.is_wildcard()
    {
        assert_eq!(
            ably_name(&channel).ok().as_deref(),
            Some(name.as_str()),
            "channel {name:?} → {channel:?}"
        );
    }
    if let Some(error) = &pm.error {
        let _ = to_realtime_error(error, pm.channel.as_deref());
        for context in [
            Context::ConnectionError,
            Context::DisconnectedWhileConnected,
            Context::DisconnectedWhileConnecting,
            Context::Connected,
        ] {
            let _ = classify(context, error);
        }
    }
    for serial in pm.channel_serial.iter().chain(pm.id.iter()) {
        check_serial(serial);
    }
    for m in pm.messages.into_iter().flatten() {
        if let Some(serial) = &m.serial {
            check_serial(serial);
        }
        check_payload(m.data, m.encoding.as_deref());
    }
    for p in pm.presence.into_iter().flatten() {
        check_payload(p.data, p.encoding.as_deref());
    }
}

/// A timeserial maps to a position only when its parts are in range.
pub fn check_serial(serial: &str) {
    if let Some(position) = position_from_serial(serial) {
        let ms: u64 = serial
            .split_once('-')
            .and_then(|(ms, _)| ms.parse().ok())
            .expect("a serial with a position starts with its milliseconds");
        assert_eq!(position.sequence / 1_000_000, ms, "position of {serial:?}");
    }
}

/// Undoes an encoding chain; a payload that decodes re-encodes (the way this client sends it)
/// to one that decodes to the same payload; one that does not names a prefix of the chain.
pub fn check_payload(data: Option<Value>, encoding: Option<&str>) {
    match decode(data, encoding) {
        Ok(payload) => {
            let _ = payload.size();
            let (data, encoding) = payload.encode();
            if !matches!(&payload, Payload::Json(v) if has_float(v)) {
                assert_eq!(
                    decode(data, encoding.as_deref()).ok().as_ref(),
                    Some(&payload),
                    "re-encoded payload ({encoding:?})"
                );
            }
            let _ = payload.into_value();
        }
        Err(undecodable) => {
            let chain = encoding.unwrap_or_default();
            assert!(
                chain.starts_with(&undecodable.remaining),
                "remaining {:?} is not a prefix of {chain:?}",
                undecodable.remaining
            );
            let _ = undecodable.partial.into_value();
        }
    }
}
