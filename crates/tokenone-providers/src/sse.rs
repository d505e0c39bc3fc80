//! Server-sent events: an incremental, bounded parser (any chunking, any line ending, lossy
//! UTF-8) and an encoder.

use bytes::Bytes;
use serde_json::Value;

/// The longest line the parser keeps; longer lines are dropped whole.
pub const MAX_LINE_BYTES: usize = 1 << 20;
/// The most data one event may accumulate over several `data:` lines; bigger events are dropped.
pub const MAX_EVENT_DATA_BYTES: usize = 8 << 20;

/// One server-sent event.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: Option<String>,
    pub data: String,
    pub id: Option<String>,
}

impl SseEvent {
    /// An unnamed event (OpenAI and Gemini streams).
    pub fn data(data: impl Into<String>) -> Self {
        SseEvent {
            event: None,
            data: data.into(),
            id: None,
        }
    }

    /// A named event (Anthropic streams).
    pub fn named(event: impl Into<String>, data: impl Into<String>) -> Self {
        SseEvent {
            event: Some(event.into()),
            data: data.into(),
            id: None,
        }
    }

    /// The data parsed as JSON, if it is JSON.
    pub fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.data).ok()
    }

    /// The wire form: `event:`/`id:` lines, one `data:` line per data line, a blank line.
    pub fn encode(&self) -> Bytes {
        let mut s = String::with_capacity(self.data.len() + 32);
        if let Some(e) = &self.event {
            s.push_str("event: ");
            s.push_str(&single_line(e));
            s.push('\n');
        }
        if let Some(id) = &self.id {
            s.push_str("id: ");
            s.push_str(&single_line(id));
            s.push('\n');
        }
        let normalised;
        let data = if self.data.contains('\r') {
            normalised = self.data.replace("\r\n", "\n").replace('\r', "\n");
            normalised.as_str()
        } else {
            self.data.as_str()
        };
        for line in data.split('\n') {
            s.push_str("data: ");
            s.push_str(line);
            s.push('\n');
        }
        s.push('\n');
        Bytes::from(s)
    }
}

fn single_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// Incremental SSE parser: feed it chunks as they arrive, in any split.
#[derive(Debug, Default)]
pub struct SseParser {
    line: Vec<u8>,
    line_overflow: bool,
    after_cr: bool,
    started: bool,
    event: Option<String>,
    data: String,
    has_data: bool,
    data_overflow: bool,
    id: Option<String>,
}

impl SseParser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<SseEvent> {
        let mut out = Vec::new();
        let mut rest = chunk;
        while !rest.is_empty() {
            if self.after_cr {
                self.after_cr = false;
                if rest.first() == Some(&b'\n') {
                    rest = &rest[1..];
                    continue;
                }
            }
            match rest.iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    self.append(&rest[..pos]);
                    self.after_cr = rest[pos] == b'\r';
                    self.end_line(&mut out);
                    rest = &rest[pos + 1..];
                }
                None => {
                    self.append(rest);
                    break;
                }
            }
        }
        out
    }

    /// Ends the stream: a last line without its line ending and a last event without its blank
    /// line are still delivered.
    pub fn finish(&mut self) -> Vec<SseEvent> {
        let mut out = Vec::new();
        if !self.line.is_empty() || self.line_overflow {
            self.end_line(&mut out);
        }
        self.dispatch(&mut out);
        self.after_cr = false;
        out
    }

    fn append(&mut self, bytes: &[u8]) {
        if self.line_overflow {
            return;
        }
        let room = MAX_LINE_BYTES.saturating_sub(self.line.len());
        if bytes.len() > room {
            self.line_overflow = true;
            self.line.clear();
            self.line.shrink_to(4096);
        } else {
            self.line.extend_from_slice(bytes);
        }
    }

    fn end_line(&mut self, out: &mut Vec<SseEvent>) {
        let overflow = std::mem::take(&mut self.line_overflow);
        let raw = std::mem::take(&mut self.line);
        let first = !self.started;
        self.started = true;
        if overflow {
            // An oversized line is dropped whole.
            return;
        }
        let text = String::from_utf8_lossy(&raw);
        let mut line: &str = &text;
        if first {
            line = line.strip_prefix('\u{feff}').unwrap_or(line);
        }
        if line.is_empty() {
            self.dispatch(out);
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (name, value) = match line.split_once(':') {
            Some((n, v)) => (n, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match name {
            "event" => self.event = Some(value.to_owned()),
            "data" => {
                if self.data.len() + value.len() + 1 > MAX_EVENT_DATA_BYTES {
                    self.data_overflow = true;
                    self.data = String::new();
                } else if !self.data_overflow {
                    if self.has_data {
                        self.data.push('\n');
                    }
                    self.data.push_str(value);
                }
                self.has_data = true;
            }
            "id" if !value.contains('\0') => self.id = Some(value.to_owned()),
            _ => {}
        }
    }

    fn dispatch(&mut self, out: &mut Vec<SseEvent>) {
        let event = self.event.take();
        let id = self.id.take();
        let data = std::mem::take(&mut self.data);
        let has_data = std::mem::take(&mut self.has_data);
        let overflow = std::mem::take(&mut self.data_overflow);
        if has_data && !overflow {
            out.push(SseEvent { event, data, id });
        }
    }
}
