//! A bounded parser of `text/event-stream` (the W3C Server-Sent Events format), for the A2A
//! server the worker side reads: it buffers at most one event, and refuses a bigger one.

/// Largest event (its data lines and any partial line) the parser holds, bytes. An A2A update
/// carries parts of at most 48 KiB inline; this leaves room for several and for JSON escaping.
pub const MAX_EVENT_BYTES: usize = 1024 * 1024;

/// One event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    /// The `event:` name (`message` when none was given).
    pub name: String,
    /// The `data:` lines, joined by `\n`.
    pub data: String,
}

/// The stream broke the bound or the format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SseError {
    /// An event over [`MAX_EVENT_BYTES`] (or the parser's own bound).
    #[error("an event is over {0} bytes")]
    TooLarge(usize),
    /// A line that is not UTF-8.
    #[error("the event stream is not UTF-8")]
    NotUtf8,
}

/// Parses chunks as they arrive; see [`SseParser::push`].
#[derive(Debug)]
pub struct SseParser {
    /// The bytes of the line not yet ended.
    line: Vec<u8>,
    name: Option<String>,
    data: Vec<String>,
    /// Bytes held in `line` and `data`.
    held: usize,
    max: usize,
}

impl Default for SseParser {
    fn default() -> Self {
        Self::with_limit(MAX_EVENT_BYTES)
    }
}

impl SseParser {
    /// A parser that holds at most `max` bytes of one event.
    pub fn with_limit(max: usize) -> Self {
        Self {
            line: Vec::new(),
            name: None,
            data: Vec::new(),
            held: 0,
            max,
        }
    }

    /// Feeds a chunk; answers the events it completed.
    ///
    /// # Errors
    ///
    /// [`SseError::TooLarge`] when one event outgrows the bound, [`SseError::NotUtf8`].
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<SseEvent>, SseError> {
        let mut events = Vec::new();
        for &byte in chunk {
            if byte != b'\n' {
                self.line.push(byte);
                self.held += 1;
                if self.held > self.max {
                    return Err(SseError::TooLarge(self.max));
                }
                continue;
            }
            let mut line = std::mem::take(&mut self.line);
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8(line).map_err(|_| SseError::NotUtf8)?;
            if let Some(event) = self.line_done(&line) {
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Handles one complete line; an empty line ends the event.
    fn line_done(&mut self, line: &str) -> Option<SseEvent> {
        if line.is_empty() {
            let data = std::mem::take(&mut self.data);
            let name = self.name.take();
            self.held = 0;
            return (!data.is_empty()).then(|| SseEvent {
                name: name.unwrap_or_else(|| "message".into()),
                data: data.join("\n"),
            });
        }
        if line.starts_with(':') {
            // A comment (keep-alive): it held bytes only while it was a partial line.
            self.held = self.data.iter().map(String::len).sum();
            return None;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "data" => self.data.push(value.to_string()),
            "event" => self.name = Some(value.to_string()),
            _ => {}
        }
        self.held = self.data.iter().map(String::len).sum();
        None
    }
}
