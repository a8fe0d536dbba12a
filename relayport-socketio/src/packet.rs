//! The codec: Engine.IO v4 packets (over WebSocket frames) and Socket.IO v5 packets inside them,
//! binary attachments included. Pure functions and one small state machine ([`Assembler`]);
//! no I/O. Every malformed input is a [`PacketError`], never a panic.
//!
//! Engine.IO over a WebSocket: a text frame is one packet, its type a digit (`0` open, `1`
//! close, `2` ping, `3` pong, `4` message, `5` upgrade, `6` noop) followed by its data; a
//! binary frame is a message carrying bytes (a Socket.IO attachment).
//!
//! Socket.IO inside an Engine.IO message:
//! `<type>[<attachments>-][/<namespace>,][<ack id>][<JSON data>]`, types `0` CONNECT,
//! `1` DISCONNECT, `2` EVENT, `3` ACK, `4` CONNECT_ERROR, `5` BINARY_EVENT, `6` BINARY_ACK.
//! Binary arguments travel as `{"_placeholder":true,"num":N}` in the JSON, followed by one
//! binary frame per attachment, in order.

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The most attachments one packet may announce (socket.io-client sends one per binary
/// argument; a larger count is taken as garbage rather than a reason to wait forever).
pub const MAX_ATTACHMENTS: usize = 1000;

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PacketError(pub String);

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PacketError {}

fn bad(why: impl Into<String>) -> PacketError {
    PacketError(why.into())
}

// ---- Engine.IO ---------------------------------------------------------------------------

/// One Engine.IO packet received in a text frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnginePacket<'a> {
    /// `0`: the handshake, a JSON object (see [`OpenPacket`]).
    Open(&'a str),
    /// `1`: the server closes the transport.
    Close,
    /// `2`: the server's heartbeat (answered with a pong).
    Ping,
    /// `3`: a pong.
    Pong,
    /// `4`: a message: a Socket.IO packet.
    Message(&'a str),
    /// `5`: upgrade (polling transports only).
    Upgrade,
    /// `6`: noop (polling transports only).
    Noop,
}

impl<'a> EnginePacket<'a> {
    /// Decodes a text frame.
    pub fn decode(text: &'a str) -> Result<Self, PacketError> {
        let mut chars = text.char_indices();
        let Some((_, kind)) = chars.next() else {
            return Err(bad("an empty Engine.IO packet"));
        };
        let rest = &text[kind.len_utf8()..];
        Ok(match kind {
            '0' => Self::Open(rest),
            '1' => Self::Close,
            '2' => Self::Ping,
            '3' => Self::Pong,
            '4' => Self::Message(rest),
            '5' => Self::Upgrade,
            '6' => Self::Noop,
            other => return Err(bad(format!("unknown Engine.IO packet type `{other}`"))),
        })
    }
}

/// The pong a client answers a ping with.
pub const ENGINE_PONG: &str = "3";

/// The Engine.IO handshake (the `0` packet).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenPacket {
    /// The Engine.IO session id.
    pub sid: String,
    /// Transports the server would upgrade to (empty over WebSocket).
    #[serde(default)]
    pub upgrades: Vec<String>,
    /// How often the server pings, in milliseconds.
    pub ping_interval: u64,
    /// How long the server waits for the pong, in milliseconds.
    pub ping_timeout: u64,
    /// The largest packet the server accepts, in bytes.
    #[serde(default)]
    pub max_payload: Option<u64>,
}

impl OpenPacket {
    /// Parses the handshake's JSON.
    pub fn parse(json: &str) -> Result<Self, PacketError> {
        let open: Self = serde_json::from_str(json)
            .map_err(|e| bad(format!("a malformed Engine.IO handshake: {e}")))?;
        if open.sid.is_empty() {
            return Err(bad("an Engine.IO handshake without a session id"));
        }
        Ok(open)
    }
}

// ---- Socket.IO ---------------------------------------------------------------------------

/// A Socket.IO packet type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PacketType {
    /// `0`: connect to a namespace (client: with the `auth` payload; server: `{sid, pid?}`).
    Connect,
    /// `1`: leave a namespace.
    Disconnect,
    /// `2`: an event: `["name", ...args]`.
    Event,
    /// `3`: the answer to an event with an ack id: `[...args]`.
    Ack,
    /// `4`: the server refused the connection to a namespace: `{message, data?}`.
    ConnectError,
    /// `5`: an event with binary attachments.
    BinaryEvent,
    /// `6`: an ack with binary attachments.
    BinaryAck,
}

impl PacketType {
    fn from_char(c: char) -> Option<Self> {
        Some(match c {
            '0' => Self::Connect,
            '1' => Self::Disconnect,
            '2' => Self::Event,
            '3' => Self::Ack,
            '4' => Self::ConnectError,
            '5' => Self::BinaryEvent,
            '6' => Self::BinaryAck,
            _ => return None,
        })
    }

    fn digit(self) -> char {
        match self {
            Self::Connect => '0',
            Self::Disconnect => '1',
            Self::Event => '2',
            Self::Ack => '3',
            Self::ConnectError => '4',
            Self::BinaryEvent => '5',
            Self::BinaryAck => '6',
        }
    }

    fn is_binary(self) -> bool {
        matches!(self, Self::BinaryEvent | Self::BinaryAck)
    }
}

/// One argument of an event or an ack: JSON, or bytes (a binary attachment).
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// A JSON value. A binary value nested inside it (`{file: <Buffer>}`) arrives in Node's
    /// JSON form of a Buffer, `{"type":"Buffer","data":[bytes…]}`.
    Json(Value),
    /// Bytes: a top-level binary argument (a Node `Buffer`, an `ArrayBuffer`).
    Binary(Vec<u8>),
}

impl Arg {
    /// The JSON value, if this is one.
    pub fn as_json(&self) -> Option<&Value> {
        match self {
            Self::Json(v) => Some(v),
            Self::Binary(_) => None,
        }
    }

    /// The bytes, if this is a binary argument.
    pub fn as_bytes(&self) -> Option<&[u8]> {
        match self {
            Self::Binary(b) => Some(b),
            Self::Json(_) => None,
        }
    }
}

impl From<Value> for Arg {
    fn from(v: Value) -> Self {
        Self::Json(v)
    }
}

impl From<Vec<u8>> for Arg {
    fn from(b: Vec<u8>) -> Self {
        Self::Binary(b)
    }
}

/// A decoded Socket.IO packet (attachments already joined, for the binary types).
#[derive(Debug, Clone, PartialEq)]
pub struct Packet {
    /// The type.
    pub kind: PacketType,
    /// The namespace (`/` by default).
    pub namespace: String,
    /// The ack id, for an event that wants an answer or an ack answering one.
    pub id: Option<u64>,
    /// The JSON data as sent (placeholders included).
    pub data: Option<Value>,
    /// The binary attachments, in order.
    pub attachments: Vec<Vec<u8>>,
}

/// An event's name and arguments.
#[derive(Debug, Clone, PartialEq)]
pub struct EventData {
    /// The event name.
    pub name: String,
    /// The arguments after the name.
    pub args: Vec<Arg>,
}

impl Packet {
    /// An EVENT (or BINARY_EVENT when an argument is binary).
    pub fn event(namespace: &str, name: &str, args: Vec<Arg>, id: Option<u64>) -> Self {
        let mut all = Vec::with_capacity(args.len() + 1);
        all.push(Arg::Json(Value::String(name.to_owned())));
        all.extend(args);
        Self::with_args(PacketType::Event, namespace, all, id)
    }

    /// An ACK (or BINARY_ACK) answering `id`.
    pub fn ack(namespace: &str, id: u64, args: Vec<Arg>) -> Self {
        Self::with_args(PacketType::Ack, namespace, args, Some(id))
    }

    /// A CONNECT to `namespace` with an `auth` payload.
    pub fn connect(namespace: &str, auth: Option<Value>) -> Self {
        Self {
            kind: PacketType::Connect,
            namespace: namespace.to_owned(),
            id: None,
            data: auth,
            attachments: Vec::new(),
        }
    }

    /// A DISCONNECT from `namespace`.
    pub fn disconnect(namespace: &str) -> Self {
        Self {
            kind: PacketType::Disconnect,
            namespace: namespace.to_owned(),
            id: None,
            data: None,
            attachments: Vec::new(),
        }
    }

    /// An EVENT whose JSON arguments already hold placeholders ([`placeholder_value`]) for
    /// `attachments`, so that bytes can sit anywhere inside them (`{"data": <bytes>}`), as
    /// socket.io-parser's `deconstructPacket` places them; a BINARY_EVENT when there are
    /// attachments. The caller numbers the placeholders `0..attachments.len()`.
    pub fn event_with_attachments(
        namespace: &str,
        name: &str,
        args: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        id: Option<u64>,
    ) -> Self {
        let mut data = Vec::with_capacity(args.len() + 1);
        data.push(Value::String(name.to_owned()));
        data.extend(args);
        Self::assemble(PacketType::Event, namespace, data, attachments, id)
    }

    fn with_args(kind: PacketType, namespace: &str, args: Vec<Arg>, id: Option<u64>) -> Self {
        let mut attachments = Vec::new();
        let data = args
            .into_iter()
            .map(|a| match a {
                Arg::Json(v) => v,
                Arg::Binary(b) => {
                    let num = attachments.len();
                    attachments.push(b);
                    placeholder_value(num)
                }
            })
            .collect();
        Self::assemble(kind, namespace, data, attachments, id)
    }

    /// The packet of `kind` with `data`, promoted to its binary type when it has attachments.
    fn assemble(
        kind: PacketType,
        namespace: &str,
        data: Vec<Value>,
        attachments: Vec<Vec<u8>>,
        id: Option<u64>,
    ) -> Self {
        let kind = match (kind, attachments.is_empty()) {
            (PacketType::Event, false) => PacketType::BinaryEvent,
            (PacketType::Ack, false) => PacketType::BinaryAck,
            (k, _) => k,
        };
        Self {
            kind,
            namespace: namespace.to_owned(),
            id,
            data: Some(Value::Array(data)),
            attachments,
        }
    }

    /// The Engine.IO text frame (`4…`) and the binary frames that follow it.
    pub fn encode(&self) -> (String, Vec<Vec<u8>>) {
        let mut out = String::from("4");
        out.push(self.kind.digit());
        if self.kind.is_binary() {
            out.push_str(&self.attachments.len().to_string());
            out.push('-');
        }
        if self.namespace != "/" && !self.namespace.is_empty() {
            out.push_str(&self.namespace);
            out.push(',');
        }
        if let Some(id) = self.id {
            out.push_str(&id.to_string());
        }
        if let Some(data) = &self.data {
            out.push_str(&data.to_string());
        }
        (out, self.attachments.clone())
    }

    /// Decodes a Socket.IO packet (the text after the Engine.IO `4`). A binary type comes back
    /// with [`Decoded::NeedsAttachments`]: feed the next binary frames to an [`Assembler`].
    pub fn decode(text: &str) -> Result<Decoded, PacketError> {
        let mut rest = text;
        let Some(first) = rest.chars().next() else {
            return Err(bad("an empty Socket.IO packet"));
        };
        let kind = PacketType::from_char(first)
            .ok_or_else(|| bad(format!("unknown Socket.IO packet type `{first}`")))?;
        rest = &rest[first.len_utf8()..];
        let mut expected = 0;
        if kind.is_binary() {
            let dash = rest
                .find('-')
                .ok_or_else(|| bad("a binary packet without its attachment count"))?;
            let count = &rest[..dash];
            if count.is_empty() || !count.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad("a malformed attachment count"));
            }
            expected = count
                .parse::<usize>()
                .ok()
                .filter(|n| *n <= MAX_ATTACHMENTS)
                .ok_or_else(|| bad("too many attachments"))?;
            rest = &rest[dash + 1..];
        }
        let mut namespace = "/".to_owned();
        if rest.starts_with('/') {
            let end = rest.find(',').unwrap_or(rest.len());
            namespace = rest[..end].to_owned();
            rest = rest.get(end + 1..).unwrap_or("");
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let id = if digits > 0 {
            let id = rest[..digits]
                .parse::<u64>()
                .map_err(|_| bad("an ack id out of range"))?;
            rest = &rest[digits..];
            Some(id)
        } else {
            None
        };
        let data = if rest.is_empty() {
            None
        } else {
            Some(
                serde_json::from_str::<Value>(rest)
                    .map_err(|e| bad(format!("malformed packet data: {e}")))?,
            )
        };
        check_payload(kind, id, data.as_ref())?;
        let packet = Packet {
            kind,
            namespace,
            id,
            data,
            attachments: Vec::new(),
        };
        Ok(if expected == 0 {
            Decoded::Complete(packet)
        } else {
            Decoded::NeedsAttachments(packet, expected)
        })
    }

    /// The event's name and arguments (top-level placeholders replaced by their bytes), for
    /// EVENT and BINARY_EVENT.
    pub fn event_data(&self) -> Result<EventData, PacketError> {
        let mut args = self.args()?;
        if args.is_empty() {
            return Err(bad("an event without a name"));
        }
        let name = match args.remove(0) {
            Arg::Json(Value::String(s)) => s,
            Arg::Json(Value::Number(n)) => n.to_string(),
            _ => return Err(bad("an event name that is not a string")),
        };
        Ok(EventData { name, args })
    }

    /// The arguments, for events and acks: a top-level placeholder becomes [`Arg::Binary`], a
    /// nested one Node's JSON form of a Buffer (`{"type":"Buffer","data":[…]}`).
    pub fn args(&self) -> Result<Vec<Arg>, PacketError> {
        let Some(Value::Array(items)) = &self.data else {
            return Err(bad("packet data that is not an array"));
        };
        items.iter().map(|v| self.resolve(v)).collect()
    }

    /// One value of this packet's data, as an argument: a placeholder becomes
    /// [`Arg::Binary`] with its attachment's bytes, anything else JSON with nested
    /// placeholders in Node's JSON form of a Buffer. A placeholder for an attachment that
    /// never came is an error. [`Packet::args`] resolves the top level this way; the channel
    /// convention resolves a message's `data` field this way, so that bytes published as
    /// `{"data": <Buffer>}` arrive as bytes.
    pub fn resolve(&self, v: &Value) -> Result<Arg, PacketError> {
        match placeholder(v) {
            Some(num) => self.attachment(num).map(|b| Arg::Binary(b.to_vec())),
            None => self.resolve_nested(v, 0).map(Arg::Json),
        }
    }

    fn attachment(&self, num: usize) -> Result<&[u8], PacketError> {
        self.attachments
            .get(num)
            .map(Vec::as_slice)
            .ok_or_else(|| bad(format!("a placeholder for missing attachment {num}")))
    }

    /// `v` with every nested placeholder replaced by the Buffer JSON of its bytes.
    fn resolve_nested(&self, v: &Value, depth: usize) -> Result<Value, PacketError> {
        // serde_json refuses nesting deeper than 128 levels, so this recursion is bounded.
        if self.attachments.is_empty() || depth > 128 {
            return Ok(v.clone());
        }
        if let Some(num) = placeholder(v) {
            let bytes = self.attachment(num)?;
            return Ok(json!({"type": "Buffer", "data": bytes}));
        }
        Ok(match v {
            Value::Array(items) => Value::Array(
                items
                    .iter()
                    .map(|i| self.resolve_nested(i, depth + 1))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, i)| Ok((k.clone(), self.resolve_nested(i, depth + 1)?)))
                    .collect::<Result<_, PacketError>>()?,
            ),
            other => other.clone(),
        })
    }
}

/// The JSON that stands for attachment `num` in a binary packet:
/// `{"_placeholder":true,"num":num}`.
pub fn placeholder_value(num: usize) -> Value {
    json!({"_placeholder": true, "num": num})
}

/// The attachment number of a placeholder object.
fn placeholder(v: &Value) -> Option<usize> {
    let o: &Map<String, Value> = v.as_object()?;
    if o.get("_placeholder") != Some(&Value::Bool(true)) {
        return None;
    }
    o.get("num")?.as_u64().and_then(|n| usize::try_from(n).ok())
}

/// The payload rules of socket.io-parser: what each packet type may carry.
fn check_payload(
    kind: PacketType,
    id: Option<u64>,
    data: Option<&Value>,
) -> Result<(), PacketError> {
    let ok = match kind {
        PacketType::Connect => data.is_none_or(Value::is_object),
        PacketType::Disconnect => data.is_none(),
        PacketType::ConnectError => data.is_some_and(|d| d.is_object() || d.is_string()),
        PacketType::Event | PacketType::BinaryEvent => data.is_some_and(|d| {
            d.as_array()
                .and_then(|a| a.first())
                .is_some_and(|n| n.is_string() || n.is_number())
        }),
        PacketType::Ack | PacketType::BinaryAck => {
            id.is_some() && data.is_some_and(Value::is_array)
        }
    };
    if ok {
        Ok(())
    } else {
        Err(bad(format!("invalid payload for a {kind:?} packet")))
    }
}

/// What [`Packet::decode`] produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A whole packet.
    Complete(Packet),
    /// A binary packet still waiting for this many binary frames.
    NeedsAttachments(Packet, usize),
}

/// Joins binary packets with the binary frames that follow them.
#[derive(Debug, Default)]
pub struct Assembler {
    partial: Option<(Packet, usize)>,
}

impl Assembler {
    /// A fresh assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a binary packet is waiting for attachments.
    pub fn is_waiting(&self) -> bool {
        self.partial.is_some()
    }

    /// A Socket.IO packet from a text frame. A text packet while attachments are awaited is an
    /// error (the partial packet is dropped with it).
    pub fn text(&mut self, text: &str) -> Result<Option<Packet>, PacketError> {
        if self.partial.take().is_some() {
            return Err(bad("a text packet while binary attachments were expected"));
        }
        match Packet::decode(text)? {
            Decoded::Complete(p) => Ok(Some(p)),
            Decoded::NeedsAttachments(p, n) => {
                self.partial = Some((p, n));
                Ok(None)
            }
        }
    }

    /// One binary frame: an attachment of the packet being assembled.
    pub fn binary(&mut self, bytes: &[u8]) -> Result<Option<Packet>, PacketError> {
        let Some((mut packet, expected)) = self.partial.take() else {
            return Err(bad("a binary frame nobody expected"));
        };
        packet.attachments.push(bytes.to_vec());
        if packet.attachments.len() == expected {
            Ok(Some(packet))
        } else {
            self.partial = Some((packet, expected));
            Ok(None)
        }
    }
}

/// Decodes one whole frame sequence without state, for fuzzing and tests: a text frame and
/// the binary frames after it. Never panics.
pub fn decode_frames(text: &str, binaries: &[&[u8]]) -> Result<Vec<Packet>, PacketError> {
    let mut out = Vec::new();
    match EnginePacket::decode(text)? {
        EnginePacket::Open(json) => {
            OpenPacket::parse(json)?;
        }
        EnginePacket::Message(m) => {
            let mut assembler = Assembler::new();
            if let Some(p) = assembler.text(m)? {
                out.push(p);
            }
            for b in binaries {
                if let Some(p) = assembler.binary(b)? {
                    out.push(p);
                }
            }
        }
        _ => {}
    }
    for p in &out {
        match p.kind {
            PacketType::Event | PacketType::BinaryEvent => {
                p.event_data()?;
            }
            PacketType::Ack | PacketType::BinaryAck => {
                p.args()?;
            }
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(text: &str) -> Packet {
        match Packet::decode(text) {
            Ok(Decoded::Complete(p)) => p,
            other => panic!("{text}: {other:?}"),
        }
    }

    #[test]
    fn engine_packets() {
        assert_eq!(EnginePacket::decode("2"), Ok(EnginePacket::Ping));
        assert_eq!(EnginePacket::decode("3probe"), Ok(EnginePacket::Pong));
        assert_eq!(EnginePacket::decode("40"), Ok(EnginePacket::Message("0")));
        assert_eq!(EnginePacket::decode("1"), Ok(EnginePacket::Close));
        assert!(EnginePacket::decode("").is_err());
        assert!(EnginePacket::decode("9").is_err());
        assert!(EnginePacket::decode("é").is_err());
        let open = OpenPacket::parse(
            r#"{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":[],"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}"#,
        )
        .unwrap();
        assert_eq!(open.sid, "lv_VI97HAXpY6yYWAAAC");
        assert_eq!((open.ping_interval, open.ping_timeout), (25000, 20000));
        assert_eq!(open.max_payload, Some(1_000_000));
        assert!(OpenPacket::parse(r#"{"sid":"","pingInterval":1,"pingTimeout":1}"#).is_err());
        assert!(OpenPacket::parse("[]").is_err());
    }

    // The examples of the Socket.IO v5 protocol description, encoded and decoded.
    #[test]
    fn encodes_like_the_protocol_examples() {
        assert_eq!(Packet::connect("/", None).encode().0, "40");
        assert_eq!(
            Packet::connect("/admin", Some(json!({"token": "123"})))
                .encode()
                .0,
            r#"40/admin,{"token":"123"}"#
        );
        assert_eq!(Packet::disconnect("/admin").encode().0, "41/admin,");
        assert_eq!(
            Packet::event("/", "foo", vec![], None).encode().0,
            r#"42["foo"]"#
        );
        assert_eq!(
            Packet::event("/admin", "bar", vec![], Some(12)).encode().0,
            r#"42/admin,12["bar"]"#
        );
        assert_eq!(
            Packet::ack("/admin", 13, vec![Arg::Json(json!("bar"))])
                .encode()
                .0,
            r#"43/admin,13["bar"]"#
        );
        let (text, bins) =
            Packet::event("/", "baz", vec![Arg::Binary(vec![1, 2, 3, 4])], None).encode();
        assert_eq!(text, r#"451-["baz",{"_placeholder":true,"num":0}]"#);
        assert_eq!(bins, vec![vec![1, 2, 3, 4]]);
        let (text, bins) = Packet::ack("/admin", 15, vec![Arg::Binary(vec![9])]).encode();
        assert_eq!(text, r#"461-/admin,15[{"_placeholder":true,"num":0}]"#);
        assert_eq!(bins.len(), 1);
    }

    #[test]
    fn decodes_every_type() {
        let p = complete(r#"0/admin,{"sid":"oSO0OpakMV_3jnilAAAA","pid":"p1"}"#);
        assert_eq!(
            (p.kind, p.namespace.as_str()),
            (PacketType::Connect, "/admin")
        );
        assert_eq!(
            p.data,
            Some(json!({"sid": "oSO0OpakMV_3jnilAAAA", "pid": "p1"}))
        );
        let p = complete("1/admin,");
        assert_eq!(
            (p.kind, p.namespace.as_str(), p.data),
            (PacketType::Disconnect, "/admin", None)
        );
        let p = complete(r#"2["hello",1]"#);
        let ev = p.event_data().unwrap();
        assert_eq!(ev.name, "hello");
        assert_eq!(ev.args, vec![Arg::Json(json!(1))]);
        let p = complete(r#"3/chat,7[{"ok":true}]"#);
        assert_eq!(
            (p.kind, p.id, p.namespace.as_str()),
            (PacketType::Ack, Some(7), "/chat")
        );
        let p = complete(r#"4{"message":"Not authorized","data":{"reason":"x"}}"#);
        assert_eq!(p.kind, PacketType::ConnectError);
        let p = complete(r#"4/nope,"Invalid namespace""#);
        assert_eq!(p.data, Some(json!("Invalid namespace")));
    }

    #[test]
    fn joins_attachments_in_order() {
        let mut a = Assembler::new();
        assert_eq!(
            a.text(r#"52-/chat,4["up",{"_placeholder":true,"num":1},{"_placeholder":true,"num":0},"x"]"#),
            Ok(None)
        );
        assert!(a.is_waiting());
        assert_eq!(a.binary(b"first"), Ok(None));
        let p = a.binary(b"second").unwrap().expect("complete");
        assert_eq!(p.id, Some(4));
        let ev = p.event_data().unwrap();
        assert_eq!(ev.name, "up");
        assert_eq!(
            ev.args,
            vec![
                Arg::Binary(b"second".to_vec()),
                Arg::Binary(b"first".to_vec()),
                Arg::Json(json!("x"))
            ]
        );
        assert!(!a.is_waiting());
        // A binary frame out of the blue, and text while attachments are due, are errors.
        assert!(a.binary(b"x").is_err());
        assert_eq!(
            a.text(r#"51-["e",{"_placeholder":true,"num":0}]"#),
            Ok(None)
        );
        assert!(a.text(r#"2["e"]"#).is_err());
        assert!(!a.is_waiting(), "the broken packet is dropped");
    }

    #[test]
    fn nested_binary_arrives_as_buffer_json() {
        let mut a = Assembler::new();
        assert_eq!(
            a.text(r#"51-["up",{"name":"f","file":{"_placeholder":true,"num":0}}]"#),
            Ok(None)
        );
        let p = a.binary(&[7, 8]).unwrap().expect("complete");
        assert_eq!(
            p.event_data().unwrap().args,
            vec![Arg::Json(
                json!({"name": "f", "file": {"type": "Buffer", "data": [7, 8]}})
            )]
        );
        let p = Packet {
            kind: PacketType::BinaryEvent,
            namespace: "/".into(),
            id: None,
            data: Some(json!(["up", [{"_placeholder": true, "num": 3}]])),
            attachments: vec![vec![1]],
        };
        assert!(p.event_data().is_err(), "attachment 3 never came");
    }

    // How the provider publishes bytes on a channel: the message object's `data` is the
    // placeholder, the bytes its one attachment (socket.io-parser's `deconstructPacket` layout).
    #[test]
    fn encodes_a_placeholder_payload_inside_an_object() {
        let body = json!({"channel": "news", "event": "img", "data": placeholder_value(0)});
        let (text, bins) = Packet::event_with_attachments(
            "/chat",
            "rp:publish",
            vec![body],
            vec![vec![0, 255]],
            Some(7),
        )
        .encode();
        assert_eq!(
            text,
            r#"451-/chat,7["rp:publish",{"channel":"news","data":{"_placeholder":true,"num":0},"event":"img"}]"#
        );
        assert_eq!(bins, vec![vec![0, 255]]);
        // An empty buffer is an attachment too (an empty binary frame).
        let (text, bins) = Packet::event_with_attachments(
            "/",
            "rp:publish",
            vec![json!({"data": placeholder_value(0)})],
            vec![vec![]],
            None,
        )
        .encode();
        assert_eq!(
            text,
            r#"451-["rp:publish",{"data":{"_placeholder":true,"num":0}}]"#
        );
        assert_eq!(bins, vec![Vec::<u8>::new()]);
        // Without attachments it stays a plain EVENT.
        let (text, bins) = Packet::event_with_attachments(
            "/",
            "rp:publish",
            vec![json!({"data": 1})],
            vec![],
            None,
        )
        .encode();
        assert_eq!(text, r#"42["rp:publish",{"data":1}]"#);
        assert!(bins.is_empty());
    }

    #[test]
    fn resolves_a_nested_placeholder_to_bytes() {
        let mut a = Assembler::new();
        assert_eq!(
            a.text(r#"51-["rp:message",{"channel":"news","data":{"_placeholder":true,"num":0}}]"#),
            Ok(None)
        );
        let p = a.binary(&[]).unwrap().expect("complete");
        let raw = &p.data.as_ref().unwrap()[1];
        assert_eq!(p.resolve(&raw["data"]), Ok(Arg::Binary(vec![])));
        assert_eq!(p.resolve(&raw["channel"]), Ok(Arg::Json(json!("news"))));
        // Through `args` the same bytes are Node's Buffer JSON (nested), not bytes.
        assert_eq!(
            p.event_data().unwrap().args,
            vec![Arg::Json(
                json!({"channel": "news", "data": {"type": "Buffer", "data": []}})
            )]
        );
        assert!(
            p.resolve(&placeholder_value(1)).is_err(),
            "attachment 1 never came"
        );
    }

    #[test]
    fn round_trips_binary_acks() {
        let packet = Packet::ack(
            "/",
            3,
            vec![Arg::Json(json!({"a": 1})), Arg::Binary(vec![0, 255])],
        );
        let (text, bins) = packet.encode();
        let mut a = Assembler::new();
        let engine = EnginePacket::decode(&text).unwrap();
        let EnginePacket::Message(m) = engine else {
            panic!("{engine:?}")
        };
        assert_eq!(a.text(m), Ok(None));
        let back = a.binary(&bins[0]).unwrap().expect("complete");
        assert_eq!(back.kind, PacketType::BinaryAck);
        assert_eq!(
            back.args().unwrap(),
            vec![Arg::Json(json!({"a": 1})), Arg::Binary(vec![0, 255])]
        );
    }

    #[test]
    fn refuses_malformed_packets() {
        for garbage in [
            "",
            "7",
            "2",
            "2[]",
            "2[{}]",
            "2{\"a\":1}",
            "3[1]",
            "3x",
            "1{}",
            "4",
            "0[]",
            "5[\"x\"]",
            "5-[\"x\"]",
            "5a-[\"x\"]",
            "599999999999999999999-[\"x\"]",
            "51001-[\"x\"]",
            "2/chat,99999999999999999999999[\"e\"]",
            "2[\"unterminated",
        ] {
            assert!(Packet::decode(garbage).is_err(), "{garbage:?} decoded");
        }
        let p = complete(r#"2["e",{"_placeholder":true,"num":3}]"#);
        assert!(p.event_data().is_err(), "a placeholder without attachments");
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_garbage(text in ".{0,64}", bins in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..8), 0..3)) {
            let refs: Vec<&[u8]> = bins.iter().map(Vec::as_slice).collect();
            let _ = decode_frames(&text, &refs);
            let _ = decode_frames(&format!("4{text}"), &refs);
            let _ = decode_frames(&format!("45{text}"), &refs);
        }

        #[test]
        fn events_round_trip(name in "[a-z:]{1,12}", n in proptest::num::i64::ANY, id in proptest::option::of(0u64..1_000_000), ns in "(/|/[a-z]{1,8})") {
            let (text, _) = Packet::event(&ns, &name, vec![Arg::Json(json!(n))], id).encode();
            let EnginePacket::Message(m) = EnginePacket::decode(&text).unwrap() else { panic!() };
            let p = complete(m);
            proptest::prop_assert_eq!(p.id, id);
            proptest::prop_assert_eq!(&p.namespace, &ns);
            let ev = p.event_data().unwrap();
            proptest::prop_assert_eq!(ev.name, name);
            proptest::prop_assert_eq!(ev.args, vec![Arg::Json(json!(n))]);
        }
    }
}
