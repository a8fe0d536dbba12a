//! Engine.IO v4 / Socket.IO v5 frames as the Socket.IO client reads them: a text frame, then
//! the binary frames of its attachments.
//!
//! Input layout: the text frame, then each binary frame, separated by NUL bytes (a text frame
//! cannot contain NUL in practice; a binary frame may, so the split is only an approximation
//! of what the wire can carry, which is all a fuzzer needs).

use relayport_socketio::packet::{
    Arg, Assembler, EnginePacket, Packet, PacketType, decode_frames,
};

use crate::json::any_float;

/// Decodes the frames; an event or ack that decodes re-encodes to frames that decode to the
/// same packet, and the stateful [`Assembler`] agrees with the stateless decoder.
pub fn check_frames(data: &[u8]) {
    let mut parts = data.split(|b| *b == 0);
    let Some(Ok(text)) = parts.next().map(std::str::from_utf8) else {
        return;
    };
    let binaries: Vec<&[u8]> = parts.collect();
    let Ok(packets) = decode_frames(text, &binaries) else {
        return;
    };
    for packet in packets {
        assert!(packet.attachments.len() <= relayport_socketio::packet::MAX_ATTACHMENTS);
        let round_trip = match packet.kind {
            PacketType::Event | PacketType::BinaryEvent => {
                let event = packet.event_data().expect("checked by decode_frames");
                let args = placeholders_free(&event.args);
                args.then(|| Packet::event(&packet.namespace, &event.name, event.args, packet.id))
            }
            PacketType::Ack | PacketType::BinaryAck => {
                let args = packet.args().expect("checked by decode_frames");
                let id = packet.id.expect("an ack has an id");
                placeholders_free(&args).then(|| Packet::ack(&packet.namespace, id, args))
            }
            _ => None,
        };
        let Some(again) = round_trip else { continue };
        let (text, binaries) = again.encode();
        let EnginePacket::Message(body) = EnginePacket::decode(&text).expect("our own frame")
        else {
            panic!("an encoded packet is not a message: {text:?}");
        };
        let mut assembler = Assembler::new();
        let mut decoded = assembler.text(body).expect("our own frame decodes");
        for b in &binaries {
            assert!(decoded.is_none(), "complete before its attachments: {text:?}");
            decoded = assembler.binary(b).expect("our own attachment");
        }
        let decoded = decoded.expect("complete after its attachments");
        assert_eq!(decoded.namespace, again.namespace, "{text:?}");
        assert_eq!(decoded.id, again.id, "{text:?}");
        assert_eq!(decoded.attachments, again.attachments, "{text:?}");
        assert_eq!(decoded.data, again.data, "{text:?}");
    }
}

/// Whether the arguments can round-trip exactly: no float (serde_json may move one ULP) and
/// no nested placeholder (kept as JSON, it would be re-numbered by a re-encoding).
fn placeholders_free(args: &[Arg]) -> bool {
    let json: Vec<&serde_json::Value> = args.iter().filter_map(Arg::as_json).collect();
    !any_float(json.iter().copied())
        && !json
            .iter()
            .any(|v| v.to_string().contains("_placeholder"))
}
