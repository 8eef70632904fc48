//! The native lane's stream relay: a port of the Python path's pieces for an
//! OpenAI-family stream sent to an OpenAI client with nothing to restore
//! (`adapters/sse.py` `SseParser.blocks` and `parse_block`,
//! `adapters/openai.py` `OpenAIPassthroughDecoder`, and the client encoder's
//! `finish` and `error` of `api_chat.py`). The provider's event bytes go out as
//! they came; each event is still read for usage, the end marker, error events
//! and the characters that estimate a cut stream's output.
use serde_json::{Map, Value};

const TEMPLATE_KEYS: [&str; 4] = ["id", "object", "created", "model"];
const NULL_USAGE_TAIL: &[u8] = b",\"usage\":null}";

/// Python's truth value of a JSON value.
pub(crate) fn truthy(v: Option<&Value>) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|x| x != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(o)) => !o.is_empty(),
    }
}

fn count(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// `usage.usage_from_openai`.
pub(crate) fn usage_from_openai(u: &Value) -> Option<[u64; 4]> {
    let u = u.as_object()?;
    let pd = u.get("prompt_tokens_details").and_then(Value::as_object);
    let cd = u
        .get("completion_tokens_details")
        .and_then(Value::as_object);
    Some([
        count(u.get("prompt_tokens")),
        pd.map_or(0, |d| count(d.get("cached_tokens"))),
        count(u.get("completion_tokens")),
        cd.map_or(0, |d| count(d.get("reasoning_tokens"))),
    ])
}

fn text_len(v: Option<&Value>) -> u64 {
    match v {
        Some(Value::String(s)) => s.chars().count() as u64,
        Some(Value::Array(a)) => a.len() as u64,
        _ => 0,
    }
}

/// `adapters.openai.stream_chars`.
fn stream_chars(chunk: &Map<String, Value>) -> u64 {
    let mut n = 0;
    if let Some(Value::Array(choices)) = chunk.get("choices") {
        for choice in choices {
            let delta = choice.get("delta");
            if !truthy(delta) {
                continue;
            }
            let Some(delta) = delta else { continue };
            if truthy(delta.get("content")) {
                n += text_len(delta.get("content"));
            }
            if let Some(Value::Array(calls)) = delta.get("tool_calls") {
                for call in calls {
                    let args = call.get("function").and_then(|f| f.get("arguments"));
                    if truthy(args) {
                        n += text_len(args);
                    }
                }
            }
        }
    }
    n
}

/// `adapters.openai.openai_error_message`.
pub(crate) fn error_message(raw: &[u8]) -> String {
    let fallback = || String::from_utf8_lossy(&raw[..raw.len().min(200)]).into_owned();
    let Ok(data) = serde_json::from_slice::<Value>(raw) else {
        return fallback();
    };
    match data.as_object().and_then(|o| o.get("error")) {
        Some(Value::Object(err)) => match err.get("message") {
            Some(Value::String(m)) => m.clone(),
            _ => fallback(),
        },
        Some(Value::String(s)) => s.clone(),
        _ => fallback(),
    }
}

/// `adapters.sse.parse_block`: the joined `data:` lines, or None for a block
/// with neither data nor an event name.
fn parse_block(block: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    let mut event = false;
    let mut data: Vec<&str> = Vec::new();
    for line in text.split('\n') {
        if let Some(rest) = line.strip_prefix("data:") {
            data.push(rest.strip_prefix(' ').unwrap_or(rest));
        } else if let Some(rest) = line.strip_prefix("event:") {
            event = !rest.trim().is_empty();
        }
    }
    if data.is_empty() && !event {
        return None;
    }
    Some(data.join("\n"))
}

/// What a stream read amounted to.
pub(crate) struct Fed {
    /// Event bytes for the client (already SSE-framed), joined.
    pub out: Vec<u8>,
    /// Events read (dropped ones included): non-zero means the stream has started.
    pub events: usize,
}

#[derive(Default)]
pub(crate) struct Decoder {
    buf: Vec<u8>,
    pub hide_usage: bool,
    pub usage: Option<[u64; 4]>,
    pub finished: bool,
    pub saw_usage: bool,
    pub chars: u64,
    /// `(key, compact JSON)` of id, object, created, model of the first chunk with any.
    pub template: Vec<(String, String)>,
}

impl Decoder {
    pub(crate) fn new(hide_usage: bool) -> Self {
        Decoder {
            hide_usage,
            ..Decoder::default()
        }
    }

    /// `SseParser.blocks`: complete events, CRLF made LF, without their blank line.
    fn blocks(&mut self, data: &[u8]) -> Vec<Vec<u8>> {
        let mut buf = std::mem::take(&mut self.buf);
        buf.extend_from_slice(data);
        if buf.contains(&b'\r') {
            let mut fixed = Vec::with_capacity(buf.len());
            let mut i = 0;
            while i < buf.len() {
                if buf[i] == b'\r' && buf.get(i + 1) == Some(&b'\n') {
                    fixed.push(b'\n');
                    i += 2;
                } else {
                    fixed.push(buf[i]);
                    i += 1;
                }
            }
            buf = fixed;
        }
        let mut blocks = Vec::new();
        let mut start = 0;
        let mut i = 0;
        while i + 1 < buf.len() {
            if buf[i] == b'\n' && buf[i + 1] == b'\n' {
                blocks.push(buf[start..i].to_vec());
                start = i + 2;
                i += 2;
            } else {
                i += 1;
            }
        }
        self.buf = buf[start..].to_vec();
        blocks
    }

    /// `OpenAIPassthroughDecoder.feed`; `Err` is an error event from the
    /// provider (its message).
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Fed, String> {
        let mut fed = Fed {
            out: Vec::new(),
            events: 0,
        };
        for block in self.blocks(data) {
            let (mut payload, mut raw): (Vec<u8>, bool) = if block.starts_with(b"data: ")
                && !block.contains(&b'\n')
                && !block.contains(&b'\r')
            {
                (block[6..].to_vec(), true)
            } else {
                match parse_block(&block) {
                    Some(text) => (text.into_bytes(), false),
                    None => continue,
                }
            };
            if payload == b"[DONE]" {
                self.finished = true;
                continue;
            }
            let chunk = match serde_json::from_slice::<Value>(&payload) {
                Ok(v) => v,
                Err(_) => {
                    // As the Python decoder reads it: invalid UTF-8 replaced.
                    let fixed = String::from_utf8_lossy(&payload).into_owned().into_bytes();
                    match serde_json::from_slice::<Value>(&fixed) {
                        Ok(v) => {
                            payload = fixed;
                            raw = false;
                            v
                        }
                        Err(_) => continue,
                    }
                }
            };
            let Value::Object(mut chunk) = chunk else {
                continue;
            };
            if chunk.contains_key("error") && !chunk.contains_key("choices") {
                return Err(error_message(&payload));
            }
            if self.template.is_empty() {
                for key in TEMPLATE_KEYS {
                    if let Some(v) = chunk.get(key) {
                        self.template.push((key.to_owned(), v.to_string()));
                    }
                }
            }
            if let Some(usage) = chunk.get("usage") {
                let null = usage.is_null();
                if truthy(Some(usage)) {
                    self.usage = usage_from_openai(usage);
                    self.saw_usage = true;
                }
                if self.hide_usage {
                    if !truthy(chunk.get("choices")) {
                        fed.events += 1; // the usage chunk asked for on the client's behalf
                        continue;
                    }
                    if raw
                        && null
                        && payload.ends_with(NULL_USAGE_TAIL)
                        && payload.windows(7).filter(|w| w == b"\"usage\"").count() == 1
                    {
                        self.chars += stream_chars(&chunk);
                        fed.out.extend_from_slice(b"data: ");
                        fed.out
                            .extend_from_slice(&payload[..payload.len() - NULL_USAGE_TAIL.len()]);
                        fed.out.extend_from_slice(b"}\n\n");
                        fed.events += 1;
                        continue;
                    }
                    chunk.remove("usage");
                    raw = false;
                }
            }
            self.chars += stream_chars(&chunk);
            if raw {
                fed.out.extend_from_slice(&block);
                fed.out.extend_from_slice(b"\n\n");
            } else {
                fed.out.extend_from_slice(b"data: ");
                fed.out.extend_from_slice(
                    &serde_json::to_vec(&Value::Object(chunk)).unwrap_or_default(),
                );
                fed.out.extend_from_slice(b"\n\n");
            }
            fed.events += 1;
        }
        Ok(fed)
    }

    /// The stream's end for the client (`_OpenAIStream.finish`): the usage chunk
    /// a client that asked for usage did not get from the provider, then `[DONE]`.
    pub(crate) fn finish(&self, client_usage: bool, usage: &[u64; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        if client_usage && !self.saw_usage {
            let [input, cached, output, reasoning] = *usage;
            let mut text = String::from("{");
            let mut has_object = false;
            for (key, value) in &self.template {
                if key == "object" {
                    has_object = true;
                    text.push_str("\"object\":\"chat.completion.chunk\",");
                } else {
                    text.push_str(&format!("\"{key}\":{value},"));
                }
            }
            if !has_object {
                text.push_str("\"object\":\"chat.completion.chunk\",");
            }
            text.push_str(&format!(
                "\"choices\":[],\"usage\":{{\"prompt_tokens\":{input},\"completion_tokens\":{output},\
                 \"total_tokens\":{},\"prompt_tokens_details\":{{\"cached_tokens\":{cached}}},\
                 \"completion_tokens_details\":{{\"reasoning_tokens\":{reasoning}}}}}}}",
                input + output
            ));
            out.extend_from_slice(b"data: ");
            out.extend_from_slice(text.as_bytes());
            out.extend_from_slice(b"\n\n");
        }
        out.extend_from_slice(b"data: [DONE]\n\n");
        out
    }
}

/// `api_chat.openai_error` framed as an event (`_OpenAIStream.error`).
pub(crate) fn error_event(message: &str, kind: &str, code: &str) -> Vec<u8> {
    format!(
        "data: {{\"error\":{{\"message\":{},\"type\":\"{kind}\",\"param\":null,\"code\":\"{code}\"}}}}\n\n",
        Value::String(message.to_owned())
    )
    .into_bytes()
}

/// Incremental `transfer-encoding: chunked` body decoding.
#[derive(Default)]
pub(crate) struct Dechunker {
    /// Bytes left of the current chunk's data (then its CRLF).
    left: usize,
    in_data: bool,
    /// After the last (empty) chunk: reading the trailers, up to an empty line.
    trailers: bool,
    pub done: bool,
    pending: Vec<u8>,
}

impl Dechunker {
    /// The body ended and nothing followed it: the connection can carry the
    /// next request.
    pub(crate) fn exact(&self) -> bool {
        self.done && self.pending.is_empty()
    }

    /// Decodes what `data` completes; `Err` on a malformed body.
    pub(crate) fn feed(&mut self, data: &[u8]) -> Result<Vec<u8>, ()> {
        let mut buf = std::mem::take(&mut self.pending);
        buf.extend_from_slice(data);
        let mut out = Vec::new();
        let mut at = 0;
        while !self.done {
            if self.in_data {
                if self.left > 0 {
                    let take = self.left.min(buf.len() - at);
                    out.extend_from_slice(&buf[at..at + take]);
                    at += take;
                    self.left -= take;
                    if self.left > 0 {
                        break;
                    }
                }
                if buf.len() - at < 2 {
                    break;
                }
                if &buf[at..at + 2] != b"\r\n" {
                    return Err(());
                }
                at += 2;
                self.in_data = false;
                continue;
            }
            let Some(nl) = buf[at..].windows(2).position(|w| w == b"\r\n") else {
                if buf.len() - at > 1024 {
                    return Err(());
                }
                break;
            };
            if self.trailers {
                at += nl + 2;
                self.done = nl == 0; // trailer lines are skipped; an empty one ends the body
                continue;
            }
            let line = &buf[at..at + nl];
            let size = line.split(|&b| b == b';').next().unwrap_or(b"");
            let size = std::str::from_utf8(size).map_err(|_| ())?.trim();
            let size = usize::from_str_radix(size, 16).map_err(|_| ())?;
            at += nl + 2;
            if size == 0 {
                self.trailers = true;
                continue;
            }
            self.left = size;
            self.in_data = true;
        }
        self.pending = buf[at..].to_vec();
        Ok(out)
    }
}
