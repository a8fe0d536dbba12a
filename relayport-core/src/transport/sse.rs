//! The SSE side of the link layer: an incremental, bounded `text/event-stream` parser.
//!
//! The WHATWG rules: `field: value` lines, `:` comments, a blank line ends an event, CR, LF and
//! CRLF line ends, a leading byte-order mark ignored, `id` values containing NUL ignored.
//!
//! Every byte comes from the network, so the work and memory are bounded: each byte is scanned
//! once (feeding a stream in any chunking costs time linear in its length), and neither an
//! unterminated line nor one event's accumulated fields may exceed [`SseParser::max_event_bytes`]
//! ([`DEFAULT_MAX_EVENT_BYTES`] unless set with [`SseParser::with_max_event_bytes`]). Past it,
//! [`SseParser::feed`] returns an [`SseError`] and the stream should be dropped.
//!
//! Hand-written rather than `eventsource-stream`: that crate buffers lines and events without
//! any bound, which is exactly what a hostile server exploits.

/// The default bound on one event (its fields together) and on one unterminated line: 1 MiB.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The UTF-8 byte-order mark a stream may start with.
const BOM: &[u8] = "\u{feff}".as_bytes();

/// One event of a `text/event-stream`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` field (`message` when absent).
    pub event: String,
    /// The `data:` lines, joined with `\n`.
    pub data: String,
    /// The last `id:` field seen so far on the stream (it persists across events), if any.
    pub id: Option<String>,
}

/// Why [`SseParser::feed`] gave up on a stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SseError {
    /// A line grew past the bound without a line end.
    #[error("an SSE line is longer than {limit} bytes")]
    LineTooLong {
        /// The bound, in bytes.
        limit: usize,
    },
    /// One event's fields together grew past the bound.
    #[error("an SSE event is larger than {limit} bytes")]
    EventTooLarge {
        /// The bound, in bytes.
        limit: usize,
    },
}

/// An incremental `text/event-stream` parser; see the [module docs](self).
#[derive(Debug)]
pub struct SseParser {
    /// Bytes not yet consumed: the start of an unterminated line.
    buf: Vec<u8>,
    /// How much of `buf` is known to hold no line end (so it is never scanned twice).
    scanned: usize,
    event: Option<String>,
    data: String,
    has_data: bool,
    id: Option<String>,
    /// Bytes of fields accumulated for the current event.
    event_bytes: usize,
    max_event_bytes: usize,
    /// Whether the stream's first bytes have been seen (for the byte-order mark).
    started: bool,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_max_event_bytes(DEFAULT_MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that refuses lines and events larger than `max_event_bytes`.
    pub fn with_max_event_bytes(max_event_bytes: usize) -> Self {
        Self {
            buf: Vec::new(),
            scanned: 0,
            event: None,
            data: String::new(),
            has_data: false,
            id: None,
            event_bytes: 0,
            max_event_bytes,
            started: false,
        }
    }

    /// The bound on one line and on one event, in bytes.
    pub fn max_event_bytes(&self) -> usize {
        self.max_event_bytes
    }

    /// Feeds bytes; returns the events they completed, or the bound they broke (the events
    /// completed before it are lost with the stream, which the caller drops).
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        self.buf.extend_from_slice(bytes);
        if !self.started {
            // A byte-order mark may open the stream, possibly split across reads.
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return Ok(Vec::new());
            }
            self.started = true;
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
            }
        }
        let mut out = Vec::new();
        let mut start = 0;
        loop {
            let from = start.max(self.scanned);
            let Some(offset) = self.buf[from..]
                .iter()
                .position(|b| *b == b'\n' || *b == b'\r')
            else {
                self.scanned = self.buf.len();
                break;
            };
            let end = from + offset;
            // A CR at the very end of the buffer may be half of a CRLF: wait for more.
            if self.buf[end] == b'\r' && end + 1 == self.buf.len() {
                self.scanned = end;
                break;
            }
            let skip = if self.buf[end] == b'\r' && self.buf.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line = String::from_utf8_lossy(&self.buf[start..end]).into_owned();
            start = end + skip;
            // On an error the state is already cleared (`fail`): nothing left to drain.
            if let Some(event) = self.line(&line)? {
                out.push(event);
            }
        }
        self.buf.drain(..start);
        self.scanned = self.scanned.saturating_sub(start);
        if self.buf.len() > self.max_event_bytes {
            return Err(self.fail(SseError::LineTooLong {
                limit: self.max_event_bytes,
            }));
        }
        Ok(out)
    }

    /// Forgets everything buffered (the stream is over) and returns `error`.
    fn fail(&mut self, error: SseError) -> SseError {
        self.buf.clear();
        self.scanned = 0;
        self.event = None;
        self.data.clear();
        self.has_data = false;
        self.event_bytes = 0;
        error
    }

    fn line(&mut self, line: &str) -> Result<Option<SseEvent>, SseError> {
        if line.is_empty() {
            let event = SseEvent {
                event: self.event.take().unwrap_or_else(|| "message".into()),
                data: std::mem::take(&mut self.data),
                id: self.id.clone(),
            };
            self.event_bytes = 0;
            let had = std::mem::take(&mut self.has_data);
            return Ok(had.then_some(event));
        }
        if line.starts_with(':') {
            return Ok(None);
        }
        self.event_bytes += line.len();
        if self.event_bytes > self.max_event_bytes {
            return Err(self.fail(SseError::EventTooLarge {
                limit: self.max_event_bytes,
            }));
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.has_data {
                    self.data.push('\n');
                }
                self.data.push_str(value);
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(event: &str, data: &str, id: Option<&str>) -> SseEvent {
        SseEvent {
            event: event.into(),
            data: data.into(),
            id: id.map(Into::into),
        }
    }

    #[test]
    fn parses_fields_comments_and_every_line_end() {
        let mut p = SseParser::default();
        let got = p
            .feed(b"\xef\xbb\xbf: hi\r\nevent: a\rdata: 1\ndata:2\r\nid: 7\n\ndata: x\n\n")
            .expect("valid");
        assert_eq!(
            got,
            vec![ev("a", "1\n2", Some("7")), ev("message", "x", Some("7"))]
        );
    }

    #[test]
    fn a_byte_order_mark_split_across_reads_is_ignored() {
        let mut p = SseParser::default();
        let mut got = Vec::new();
        for b in b"\xef\xbb\xbfdata: a\n\n" {
            got.extend(p.feed(&[*b]).expect("valid"));
        }
        assert_eq!(got, vec![ev("message", "a", None)]);
    }

    #[test]
    fn an_event_without_data_is_not_dispatched() {
        let mut p = SseParser::default();
        assert!(p.feed(b"event: ping\n\n").expect("valid").is_empty());
    }

    #[test]
    fn a_crlf_split_across_chunks_is_one_line_end() {
        let mut p = SseParser::default();
        assert!(p.feed(b"data: a\r").expect("valid").is_empty());
        assert!(p.feed(b"\n").expect("valid").is_empty());
        assert_eq!(
            p.feed(b"\r\n").expect("valid"),
            vec![ev("message", "a", None)]
        );
    }

    #[test]
    fn a_line_at_the_bound_passes_and_one_byte_past_fails() {
        let limit = 64;
        // `data: ` + payload = exactly the bound, fed without its line end first.
        let line = format!("data: {}", "x".repeat(limit - 6));
        let mut p = SseParser::with_max_event_bytes(limit);
        assert!(p.feed(line.as_bytes()).expect("at the bound").is_empty());
        assert_eq!(p.feed(b"\n\n").expect("valid").len(), 1);

        let mut p = SseParser::with_max_event_bytes(limit);
        let past = format!("{line}x");
        assert_eq!(
            p.feed(past.as_bytes()),
            Err(SseError::LineTooLong { limit })
        );
    }

    #[test]
    fn an_event_at_the_bound_passes_and_one_byte_past_fails() {
        let limit = 100;
        // Two data lines of 50 bytes each: 100 bytes of fields.
        let half = format!("data: {}\n", "y".repeat(44));
        let mut p = SseParser::with_max_event_bytes(limit);
        let got = p
            .feed(format!("{half}{half}\n").as_bytes())
            .expect("at the bound");
        assert_eq!(got.len(), 1);

        let mut p = SseParser::with_max_event_bytes(limit);
        let more = format!("data: {}\n", "y".repeat(45));
        assert_eq!(
            p.feed(format!("{half}{more}\n").as_bytes()),
            Err(SseError::EventTooLarge { limit })
        );
    }

    /// Linear work: a stream of many short lines arriving in one read is scanned once. The
    /// step count is the number of bytes `position` looks at, counted through `scanned`: here
    /// it is checked indirectly by feeding a large input byte by byte and in one piece and
    /// comparing, plus a size that would take minutes if each line re-scanned the buffer.
    #[test]
    fn many_lines_in_one_read_parse_in_linear_time() {
        let n = 200_000;
        let input = "data: a\n\n".repeat(n);
        let mut p = SseParser::default();
        assert_eq!(p.feed(input.as_bytes()).expect("valid").len(), n);
        assert!(p.buf.is_empty());
    }

    #[test]
    fn a_long_unterminated_line_is_not_rescanned_per_chunk() {
        let mut p = SseParser::with_max_event_bytes(1 << 20);
        for _ in 0..1000 {
            assert!(p.feed(&[b'z'; 1000]).expect("under the bound").is_empty());
            assert_eq!(p.scanned, p.buf.len());
        }
    }
}
