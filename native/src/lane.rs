//! The native lane: the sidecar's most common request served end to end here,
//! on one thread of its own, with no Python on the request's path.
//!
//! What it serves: a `POST /v1/chat/completions`, whole or streamed (the
//! stream relay is `lane_sse.rs`), whose `model` names a route the Python side
//! published with `set_routes` (an OpenAI-family model, by its name or an alias, on a plain-HTTP
//! endpoint, in a table without rules, PII policy or shadow, on a budget
//! credit when the team has a budget;
//! `sidecar/switchman_sidecar/lane.py` decides which). The client's bytes go
//! upstream as the Python path sends them (the model renamed, `include_usage`
//! asked for), the provider's answer comes back unchanged with the same
//! decision and cost headers, and the usage goes to Python as an event after
//! the client has its answer (Python then settles cost, metrics, logs and the
//! usage record, the same `Pipeline.finish`).
//!
//! Everything else is handed to Python with the connection itself: the socket
//! and the bytes read so far (`Event::Handoff`); the Python server adopts the
//! connection and keeps it. That includes every request this module does not
//! fully understand (other paths, odd HTTP, invalid or unusual JSON,
//! unknown models, a request not complete within the header timeout) and a
//! failed attempt (connect error, reset, timeout, a status other than 200)
//! before anything was sent to the client: Python then runs the request
//! through its failover path as if it had just arrived, and is told what
//! failed so the lane stops using that route for a while.
//!
//! The thread never touches Python objects: events are queued under a mutex
//! and announced with one byte on a pipe the event loop watches.
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, IntoRawFd, RawFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token, Waker};
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};
use serde_json::Value;

use crate::lane_sse::{error_event, Dechunker, Decoder};
use crate::request::{fields, request_line};

const LISTENER: Token = Token(0);
const WAKER: Token = Token(1);
const FIRST: usize = 2;
const MAX_HEAD: usize = 64 * 1024;
const READ_CHUNK: usize = 16 * 1024;
const MAX_IDLE_PER_ADDR: usize = 64;
const MAX_ANSWER: usize = 64 * 1024 * 1024;
/// Bytes of a stream buffered towards a slow client before the provider is read
/// no further (the Python server's write high-water mark).
const STREAM_BACKLOG: usize = 256 * 1024;

/// One model the lane may send to, by the name clients use for it.
struct Route {
    model: String,
    /// The upstream's name for the model as a JSON string, when it is not the
    /// name clients use (the body's `model` is then replaced, nothing else).
    rename: Option<Vec<u8>>,
    addr: SocketAddr,
    /// Request line, `host` and the provider's headers (`name: value\r\n` each).
    head: Vec<u8>,
    /// The answer's decision header lines after the request id.
    tail: Vec<u8>,
    input_price: f64,
    cached_price: f64,
    output_price: f64,
    context_window: u64,
    per_try: Duration,
    /// `(input_price, output_price, max_output_tokens)` of the model and its
    /// fallbacks: a request's worst-case cost against the budget credit.
    chain: Vec<(f64, f64, u64)>,
}

/// What the lane may still commit of the team's budget (`lane.py` grants it).
struct Credit {
    /// None: no budget state, nothing to hold. Else the grant less what the
    /// lane's finished requests cost.
    limit: Option<f64>,
    /// Worst-case cost of the requests in flight.
    held: f64,
}

struct Routes {
    by_name: HashMap<Vec<u8>, Arc<Route>>,
    /// Lower-case prefixes of client headers passed upstream.
    forward: Vec<Vec<u8>>,
}

enum Event {
    Done(Done),
    Handoff {
        fd: RawFd,
        data: Vec<u8>,
        failure: Option<Failure>,
    },
    Dead(String),
}

/// The lane's failed attempt, for Python's failover to count (`lane.py`).
struct Failure {
    model: String,
    /// `connect`, `reset`, `timeout` or `http` (then `status`, `headers`, `body`).
    cause: String,
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

struct Done {
    request_id: String,
    requested: String,
    usage: [u64; 4],
    estimated: bool,
    input_estimate: u64,
    status: u16,
    /// `success`, `upstream_error` or `client_aborted` (usage_pb2's outcomes).
    outcome: &'static str,
    streamed: bool,
    /// A stream that failed after its start (the Python path counts it apart).
    mid_stream: bool,
    started: f64,
    /// Until the answer (a stream: its first event).
    upstream_ms: f64,
}

/// How a request of the lane ended (the rest of its `Done` comes from its `Job`).
struct End {
    status: u16,
    outcome: &'static str,
    streamed: bool,
    mid_stream: bool,
    upstream_ms: f64,
}

impl End {
    fn new(status: u16, outcome: &'static str, upstream_ms: f64) -> End {
        End {
            status,
            outcome,
            streamed: false,
            mid_stream: false,
            upstream_ms,
        }
    }
}

struct Outbox {
    items: Vec<Event>,
    signalled: bool,
    /// The oldest `Done` not announced yet (they are announced in batches).
    since: Option<Instant>,
}

/// `Done` events announced at once, whatever their age.
const SETTLE_BATCH: usize = 64;

struct Shared {
    routes: Mutex<Option<Arc<Routes>>>,
    outbox: Mutex<Outbox>,
    stop: AtomicBool,
    /// Requests taken (sent upstream) whose `Done` or hand-over is not queued yet.
    busy: AtomicUsize,
    credit: Mutex<Credit>,
    /// How long a finished request may wait to be announced (see `push`).
    settle_delay: Duration,
    notify_fd: RawFd,
}

impl Shared {
    /// A request of the lane ended: its credit is settled, its `Done` queued,
    /// and it no longer counts as in flight (in that order: see `Lane::busy`).
    fn finished(&self, job: Job, usage: [u64; 4], estimated: bool, end: End) {
        self.settle_credit(job.worst, cost_of(&job.route, &usage));
        self.push(Event::Done(Done {
            request_id: job.request_id,
            requested: job.requested,
            usage,
            estimated,
            input_estimate: job.input_estimate,
            status: end.status,
            outcome: end.outcome,
            streamed: end.streamed,
            mid_stream: end.mid_stream,
            started: job.started,
            upstream_ms: end.upstream_ms,
        }));
        self.busy.fetch_sub(1, Ordering::SeqCst);
    }

    /// A request of the lane ended: its worst case is no longer held, what it
    /// cost comes off the credit.
    fn settle_credit(&self, worst: f64, cost: f64) {
        let mut credit = self.credit.lock().unwrap_or_else(|e| e.into_inner());
        credit.held = (credit.held - worst).max(0.0);
        if let Some(limit) = credit.limit.as_mut() {
            *limit -= cost;
        }
    }

    /// Queues an event for Python. A hand-over (a client waits on it) is
    /// announced at once; finished requests are announced `settle_delay` after
    /// the oldest of them (or at `SETTLE_BATCH`), so the event loop wakes once
    /// per batch instead of once per request, between the lane's requests.
    fn push(&self, event: Event) {
        let urgent = !matches!(event, Event::Done(_));
        let mut out = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        out.items.push(event);
        if out.signalled {
            return;
        }
        if urgent || self.settle_delay.is_zero() || out.items.len() >= SETTLE_BATCH {
            self.signal(&mut out);
        } else if out.since.is_none() {
            out.since = Some(Instant::now());
        }
    }

    fn signal(&self, out: &mut Outbox) {
        out.signalled = true;
        out.since = None;
        let byte = [1u8];
        // SAFETY: a valid pipe fd owned by the Python side for the lane's life;
        // a full pipe (EAGAIN) already holds a wake-up.
        unsafe { libc::write(self.notify_fd, byte.as_ptr().cast(), 1) };
    }

    /// Announces finished requests whose batch is due; when the next one is.
    fn settle_due(&self) -> Option<Instant> {
        let mut out = self.outbox.lock().unwrap_or_else(|e| e.into_inner());
        let since = out.since?;
        let due = since + self.settle_delay;
        if Instant::now() >= due && !out.signalled {
            self.signal(&mut out);
            return None;
        }
        Some(due)
    }
}

fn monotonic() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out-pointer; CLOCK_MONOTONIC is what Python's perf_counter reads.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

struct Config {
    max_body: usize,
    header_timeout: Duration,
    keepalive_timeout: Duration,
    boot: String,
}

/// A request sent upstream, waiting for its answer.
struct Job {
    route: Arc<Route>,
    request: Vec<u8>,
    upstream_bytes: Vec<u8>,
    request_id: String,
    requested: String,
    input_estimate: u64,
    started: f64,
    sent: Instant,
    deadline: Instant,
    upstream: Option<usize>,
    retried: bool,
    /// Its worst-case cost, held against the budget credit until it ends.
    worst: f64,
    /// A streamed request's relay (`lane_sse.rs`); None for a whole answer.
    stream: Option<Box<Relay>>,
}

/// How an upstream answer's body ends.
enum BodyEnd {
    Chunked(Dechunker),
    Length(usize),
    Close,
}

/// A stream being relayed: the client's encoder state, the provider's events.
struct Relay {
    client_usage: bool,
    dec: Decoder,
    /// The upstream's head was read (a 200).
    head: bool,
    body: Option<BodyEnd>,
    upstream_close: bool,
    /// The client has the head: failover is over.
    started: bool,
    first_ms: f64,
    /// Reading upstream waits while the client is this far behind.
    paused: bool,
}

#[derive(PartialEq)]
enum Phase {
    Reading,
    Waiting,
    /// Relaying a stream (the head is out; events follow as they come).
    Streaming,
    Writing,
}

struct Client {
    sock: TcpStream,
    buf: Vec<u8>,
    first_byte: Option<Instant>,
    idle_since: Instant,
    phase: Phase,
    out: Vec<u8>,
    out_at: usize,
    keep_alive: bool,
    job: Option<Job>,
    /// Readable while busy (pipelined bytes, or the client closed): read once
    /// the answer is out. (Edge-triggered: that event will not come again.)
    pending_read: bool,
}

struct Upstream {
    sock: TcpStream,
    addr: SocketAddr,
    connecting: bool,
    reused: bool,
    out: Vec<u8>,
    out_at: usize,
    inbuf: Vec<u8>,
    client: Option<usize>,
    eof: bool,
}

enum Conn {
    Client(Client),
    Upstream(Upstream),
}

enum Parsed {
    More,
    Handoff,
    Go(Job, bool),
}

/// What an upstream's bytes amount to so far.
enum Answer {
    More,
    Failed(String),
    Whole {
        status: u16,
        /// Lower-case names; collected for answers other than 200 only.
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        reusable: bool,
    },
}

struct Core {
    poll: Poll,
    listener: Option<TcpListener>,
    slots: Vec<Option<Conn>>,
    free: Vec<usize>,
    idle: HashMap<SocketAddr, Vec<usize>>,
    shared: Arc<Shared>,
    cfg: Config,
    counter: u64,
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn would_block(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
}

fn trim(v: &[u8]) -> &[u8] {
    let s = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let e = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(s, |i| i + 1);
    &v[s..e.max(s)]
}

/// A positive JSON integer as Python's `usage._int` reads it, else 0.
fn usage_of(data: &serde_json::Map<String, Value>) -> Option<[u64; 4]> {
    crate::lane_sse::usage_from_openai(data.get("usage")?)
}

fn str_chars(v: Option<&Value>) -> u64 {
    v.and_then(Value::as_str)
        .map_or(0, |s| s.chars().count() as u64)
}

/// `api_chat._result_chars`: the characters of the answer's content and tool arguments.
fn result_chars(data: &serde_json::Map<String, Value>) -> u64 {
    let mut n = 0;
    if let Some(choices) = data.get("choices").and_then(Value::as_array) {
        for choice in choices {
            let Some(message) = choice.get("message") else {
                continue;
            };
            n += str_chars(message.get("content"));
            if let Some(calls) = message.get("tool_calls").and_then(Value::as_array) {
                for call in calls {
                    n += str_chars(call.get("function").and_then(|f| f.get("arguments")));
                }
            }
        }
    }
    n
}

fn positive_int(v: &Value) -> bool {
    matches!(v, Value::Number(n) if n.as_u64().is_some_and(|x| x >= 1))
}

/// `api_chat.validate_chat` as a yes/no, plus the model and `stream`: a request it
/// would reject goes to Python, which answers with the error.
fn valid_chat(v: &Value) -> Option<(&str, bool)> {
    let o = v.as_object()?;
    let model = o.get("model")?.as_str()?;
    if model.is_empty() {
        return None;
    }
    let messages = o.get("messages")?.as_array()?;
    if messages.is_empty() {
        return None;
    }
    for m in messages {
        let m = m.as_object()?;
        m.get("role")?.as_str()?;
        match m.get("content") {
            None | Some(Value::Null | Value::String(_) | Value::Array(_)) => {}
            _ => return None,
        }
    }
    let stream = match o.get("stream") {
        None => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return None,
    };
    for key in ["max_tokens", "max_completion_tokens", "n"] {
        match o.get(key) {
            None | Some(Value::Null) => {}
            Some(v) if positive_int(v) => {}
            _ => return None,
        }
    }
    match o.get("temperature") {
        None | Some(Value::Null | Value::Number(_)) => {}
        _ => return None,
    }
    match o.get("tools") {
        None | Some(Value::Null | Value::Array(_)) => {}
        _ => return None,
    }
    match o.get("stream_options") {
        None | Some(Value::Null | Value::Object(_)) => {}
        _ => return None,
    }
    Some((model, stream))
}

/// An upstream answer's head, as both the whole-answer and the stream paths read it.
struct Head {
    status: u16,
    /// Lower-case names; collected for answers other than 200 only (Python
    /// classifies those: `Pipeline._classify`).
    headers: Vec<(String, String)>,
    body_at: usize,
    end: BodyEnd,
    /// The upstream closes the connection after this answer.
    close: bool,
}

/// The head of an upstream answer in `data`: None while incomplete, `Err` for
/// one the lane does not read (a 1xx, odd framing, a malformed line).
fn parse_head(data: &[u8]) -> Option<Result<Head, ()>> {
    let head_end = find(data, b"\r\n\r\n")?;
    let mut lines = data[..head_end]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or(b"");
    let mut close = match status_line.get(..9) {
        Some(b"HTTP/1.1 ") => false,
        Some(b"HTTP/1.0 ") => true,
        _ => return Some(Err(())),
    };
    let status: u16 = match status_line
        .get(9..12)
        .and_then(|c| std::str::from_utf8(c).ok())
        .and_then(|c| c.parse().ok())
    {
        Some(s) if s >= 200 => s, // no 1xx: nothing asked for one
        _ => return Some(Err(())),
    };
    let mut headers = Vec::new();
    let mut length: Option<usize> = None;
    let mut chunked = false;
    for line in lines {
        let colon = match line.iter().position(|&b| b == b':') {
            Some(c) => c,
            None => return Some(Err(())),
        };
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if status != 200 {
            headers.push((
                String::from_utf8_lossy(name).to_ascii_lowercase(),
                String::from_utf8_lossy(value).into_owned(),
            ));
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            match std::str::from_utf8(value)
                .ok()
                .and_then(|t| t.parse::<usize>().ok())
            {
                Some(n) if length.is_none_or(|l| l == n) && n <= MAX_ANSWER => length = Some(n),
                _ => return Some(Err(())),
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Some(Err(()));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                close = true;
            } else if value.eq_ignore_ascii_case(b"keep-alive") {
                close = false;
            }
        }
    }
    let end = if status == 204 || status == 304 {
        BodyEnd::Length(0)
    } else if chunked {
        BodyEnd::Chunked(Dechunker::default())
    } else if let Some(n) = length {
        BodyEnd::Length(n)
    } else {
        close = true;
        BodyEnd::Close
    };
    Some(Ok(Head {
        status,
        headers,
        body_at: head_end + 4,
        end,
        close,
    }))
}

/// Reads a whole upstream answer from `data` (`eof`: the upstream closed).
fn read_answer(data: &[u8], eof: bool) -> Answer {
    let head = match parse_head(data) {
        None if eof || data.len() > MAX_HEAD => return Answer::Failed("reset".into()),
        None => return Answer::More,
        Some(Err(())) => return Answer::Failed("reset".into()),
        Some(Ok(head)) => head,
    };
    let rest = &data[head.body_at..];
    let (body, exact) = match head.end {
        BodyEnd::Chunked(mut d) => match d.feed(rest) {
            Ok(body) if d.done => (body, d.exact()),
            Ok(body) if body.len() <= MAX_ANSWER && !eof => return Answer::More,
            _ => return Answer::Failed("reset".into()),
        },
        BodyEnd::Length(n) if rest.len() >= n => (rest[..n].to_vec(), rest.len() == n),
        BodyEnd::Length(_) if eof => return Answer::Failed("reset".into()),
        BodyEnd::Length(_) => return Answer::More,
        BodyEnd::Close if eof => (rest.to_vec(), false),
        BodyEnd::Close if rest.len() > MAX_ANSWER => return Answer::Failed("reset".into()),
        BodyEnd::Close => return Answer::More,
    };
    Answer::Whole {
        status: head.status,
        headers: head.headers,
        body,
        reusable: exact && !head.close,
    }
}

/// Where the top-level values of a JSON object sit in its bytes (a repeated
/// key: its last occurrence, the one a JSON reader keeps).
fn value_spans(body: &[u8]) -> Option<HashMap<&str, (usize, usize)>> {
    let text = std::str::from_utf8(body).ok()?;
    let map: HashMap<&str, &serde_json::value::RawValue> = serde_json::from_str(text).ok()?;
    Some(
        map.into_iter()
            .map(|(k, raw)| {
                let start = raw.get().as_ptr() as usize - text.as_ptr() as usize;
                (k, (start, start + raw.get().len()))
            })
            .collect(),
    )
}

/// What the Python path sends for a request (`OpenAIAdapter.chat_call`): the
/// client's bytes, the model value replaced by the upstream's name where they
/// differ and, for a stream that did not ask for usage, `include_usage` set.
/// None when the body cannot be edited in place (Python then takes it).
fn upstream_body<'a>(
    body: &'a [u8],
    json: &Value,
    rename: Option<&[u8]>,
    ask_usage: bool,
) -> Option<std::borrow::Cow<'a, [u8]>> {
    if rename.is_none() && !ask_usage {
        return Some(std::borrow::Cow::Borrowed(body));
    }
    let spans = value_spans(body)?;
    let mut edits: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    if let Some(name) = rename {
        let (start, end) = *spans.get("model")?;
        edits.push((start, end, name.to_vec()));
    }
    if ask_usage {
        let mut opts = match json.get("stream_options") {
            Some(Value::Object(o)) => o.clone(),
            _ => serde_json::Map::new(),
        };
        opts.insert("include_usage".into(), Value::Bool(true));
        let value = serde_json::to_vec(&Value::Object(opts)).ok()?;
        match spans.get("stream_options") {
            Some(&(start, end)) => edits.push((start, end, value)),
            None => {
                // Before the object's closing brace (it has other keys: model, messages).
                let close = body.iter().rposition(|&b| b == b'}')?;
                let mut added = b",\"stream_options\":".to_vec();
                added.extend_from_slice(&value);
                edits.push((close, close, added));
            }
        }
    }
    edits.sort_by_key(|e| e.0);
    let mut out = Vec::with_capacity(body.len() + 64);
    let mut at = 0;
    for (start, end, value) in edits {
        if start < at {
            return None;
        }
        out.extend_from_slice(&body[at..start]);
        out.extend_from_slice(&value);
        at = end;
    }
    out.extend_from_slice(&body[at..]);
    Some(std::borrow::Cow::Owned(out))
}

/// `api_chat._stream_usage`: the provider's usage, or an estimate where it
/// reported none or the stream was cut short of what it reported.
fn stream_usage(dec: &Decoder, input_estimate: u64, complete: bool) -> ([u64; 4], bool) {
    let out_estimate = dec.chars.div_ceil(4);
    match dec.usage {
        None => ([input_estimate, 0, out_estimate, 0], true),
        Some([0, _, 0, _]) => ([input_estimate, 0, out_estimate, 0], true),
        Some([i, c, o, r]) if !complete && o < out_estimate => ([i, c, out_estimate, r], true),
        Some(u) => (u, false),
    }
}

/// A response head as the Python server writes one (`ResponseWriter._head`): the
/// status and content lines, the decision lines, then `lines` (framing, cost).
fn answer_head(first: &[u8], job: &Job, lines: &[u8], keep_alive: bool) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    head.extend_from_slice(first);
    head.extend_from_slice(b"x-switchman-request-id: ");
    head.extend_from_slice(job.request_id.as_bytes());
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(&job.route.tail);
    head.extend_from_slice(lines);
    if !keep_alive {
        head.extend_from_slice(b"connection: close\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head
}

fn cost_of(route: &Route, usage: &[u64; 4]) -> f64 {
    let [input, cached, output, _] = *usage;
    let cached = cached.min(input);
    ((input - cached) as f64 * route.input_price
        + cached as f64 * route.cached_price
        + output as f64 * route.output_price)
        / 1_000_000.0
}

impl Core {
    fn token_of(idx: usize) -> Token {
        Token(idx + FIRST)
    }

    fn insert(&mut self, conn: Conn) -> usize {
        if let Some(idx) = self.free.pop() {
            self.slots[idx] = Some(conn);
            idx
        } else {
            self.slots.push(Some(conn));
            self.slots.len() - 1
        }
    }

    fn remove(&mut self, idx: usize) -> Option<Conn> {
        let conn = self.slots.get_mut(idx)?.take();
        if conn.is_some() {
            self.free.push(idx);
        }
        conn
    }

    fn client(&mut self, idx: usize) -> Option<&mut Client> {
        match self.slots.get_mut(idx) {
            Some(Some(Conn::Client(c))) => Some(c),
            _ => None,
        }
    }

    fn upstream(&mut self, idx: usize) -> Option<&mut Upstream> {
        match self.slots.get_mut(idx) {
            Some(Some(Conn::Upstream(u))) => Some(u),
            _ => None,
        }
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            match listener.accept() {
                Ok((mut sock, _)) => {
                    let _ = sock.set_nodelay(true);
                    let idx = self.free.last().copied().unwrap_or(self.slots.len());
                    if self
                        .poll
                        .registry()
                        .register(&mut sock, Self::token_of(idx), Interest::READABLE)
                        .is_err()
                    {
                        continue;
                    }
                    let got = self.insert(Conn::Client(Client {
                        sock,
                        buf: Vec::new(),
                        first_byte: None,
                        idle_since: Instant::now(),
                        phase: Phase::Reading,
                        out: Vec::new(),
                        out_at: 0,
                        keep_alive: true,
                        job: None,
                        pending_read: false,
                    }));
                    debug_assert_eq!(got, idx);
                }
                Err(e) if would_block(&e) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return, // EMFILE and the like: try again at the next event
            }
        }
    }

    fn close_client(&mut self, idx: usize) {
        if let Some(Conn::Client(mut c)) = self.remove(idx) {
            let _ = self.poll.registry().deregister(&mut c.sock);
            if let Some(job) = c.job {
                // Not reached (a job ends in `answer` or `fail_with`); kept exact anyway.
                self.shared.busy.fetch_sub(1, Ordering::SeqCst);
                if let Some(up) = job.upstream {
                    self.close_upstream(up);
                }
            }
        }
    }

    fn close_upstream(&mut self, idx: usize) {
        if let Some(Conn::Upstream(mut u)) = self.remove(idx) {
            let _ = self.poll.registry().deregister(&mut u.sock);
            if let Some(list) = self.idle.get_mut(&u.addr) {
                list.retain(|&i| i != idx);
            }
        }
    }

    /// Gives the connection to Python with `data` (what it must parse first).
    fn handoff(&mut self, idx: usize, data: Vec<u8>, failure: Option<Failure>) {
        let Some(Conn::Client(mut c)) = self.remove(idx) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut c.sock);
        if let Some(up) = c.job.take().and_then(|j| j.upstream) {
            self.close_upstream(up);
        }
        let fd = c.sock.into_raw_fd();
        self.shared.push(Event::Handoff { fd, data, failure });
    }

    fn on_client(&mut self, idx: usize, readable: bool, writable: bool, closed: bool) {
        if writable {
            self.flush_client(idx);
        }
        if readable {
            self.read_client(idx, closed);
        }
    }

    /// Reads what the client sent. A read shorter than the buffer drained the
    /// socket (new bytes bring a new event), so no read is made just to see
    /// EAGAIN, unless the peer closed (`closed`: then read to the end).
    fn read_client(&mut self, idx: usize, closed: bool) {
        let max = self.cfg.max_body + MAX_HEAD;
        let Some(c) = self.client(idx) else { return };
        if c.phase != Phase::Reading {
            c.pending_read = true; // read again once the answer is out
            return;
        }
        let mut eof = false;
        let mut chunk = [0u8; READ_CHUNK];
        loop {
            match c.sock.read(&mut chunk) {
                Ok(0) => {
                    eof = true;
                    break;
                }
                Ok(n) => {
                    if c.first_byte.is_none() {
                        c.first_byte = Some(Instant::now());
                    }
                    c.buf.extend_from_slice(&chunk[..n]);
                    if c.buf.len() > max || (n < READ_CHUNK && !closed) {
                        break;
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    eof = true;
                    break;
                }
            }
        }
        if eof {
            // The client closed (or half-closed): Python answers what it already
            // sent, if anything, as its server does; nothing pending is just closed.
            let c = self.client(idx).expect("client");
            if c.buf.is_empty() {
                self.close_client(idx);
            } else {
                let data = std::mem::take(&mut c.buf);
                self.handoff(idx, data, None);
            }
            return;
        }
        self.try_request(idx);
    }

    fn parse(&mut self, buf: &[u8]) -> Parsed {
        let max_body = self.cfg.max_body;
        let Some(head_end) = find(buf, b"\r\n\r\n") else {
            return if buf.len() > MAX_HEAD {
                Parsed::Handoff
            } else {
                Parsed::More
            };
        };
        // How long the message is: its content-length (anything unusual: Python).
        let mut length = 0usize;
        for line in buf[..head_end].split(|&b| b == b'\n').skip(1) {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if let Some(colon) = line.iter().position(|&b| b == b':') {
                let name = &line[..colon];
                if name.eq_ignore_ascii_case(b"expect")
                    || name.eq_ignore_ascii_case(b"transfer-encoding")
                {
                    return Parsed::Handoff; // waits for a 100, or no length: Python
                }
                if name.eq_ignore_ascii_case(b"content-length") {
                    match std::str::from_utf8(trim(&line[colon + 1..]))
                        .ok()
                        .and_then(|t| t.parse::<usize>().ok())
                    {
                        Some(n) if n <= max_body => length = n,
                        _ => return Parsed::Handoff,
                    }
                }
            }
        }
        let total = head_end + 4 + length;
        if buf.len() < total {
            return Parsed::More;
        }
        if buf.len() > total {
            return Parsed::Handoff; // pipelined: Python serves them in order
        }
        let routes = self
            .shared
            .routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(routes) = routes else {
            return Parsed::Handoff;
        };
        let Some((method, target, at)) = request_line(buf) else {
            return Parsed::Handoff;
        };
        let Some(head) = fields(buf, at, max_body) else {
            return Parsed::Handoff;
        };
        let path = target.split(|&b| b == b'?').next().unwrap_or(b"");
        if method != b"POST" || (path != b"/v1/chat/completions" && path != b"/chat/completions") {
            return Parsed::Handoff;
        }
        let body = &buf[head.body_at..];
        let Ok(json) = serde_json::from_slice::<Value>(body) else {
            return Parsed::Handoff;
        };
        let Some((model, stream)) = valid_chat(&json) else {
            return Parsed::Handoff;
        };
        let opts = json.get("stream_options").and_then(Value::as_object);
        // `api_chat.serve_chat`'s `client_usage`, and `_asks_usage` of the adapter.
        let client_usage =
            stream && opts.is_some_and(|o| crate::lane_sse::truthy(o.get("include_usage")));
        let asks_usage = opts.is_some_and(|o| o.get("include_usage") == Some(&Value::Bool(true)));
        let Some(route) = routes.by_name.get(model.as_bytes()) else {
            return Parsed::Handoff;
        };
        let input_estimate = (body.len() as u64).div_ceil(4);
        if route.context_window > 0 && input_estimate > route.context_window {
            return Parsed::Handoff;
        }
        // `Pipeline.prepare`'s worst case: the prompt's estimate and the output cap
        // (the request's, else the model's, else 4,096) at the dearest candidate.
        let max_out = ["max_completion_tokens", "max_tokens", "max_output_tokens"]
            .iter()
            .find_map(|k| json.get(*k).filter(|v| crate::lane_sse::truthy(Some(v))));
        let max_out = match max_out {
            None => None,
            Some(v) => match v.as_u64() {
                Some(n) => Some(n),
                None => return Parsed::Handoff, // not an integer: Python decides
            },
        };
        let worst = route
            .chain
            .iter()
            .map(|&(ip, op, model_max)| {
                let out = max_out.unwrap_or(if model_max > 0 { model_max } else { 4096 });
                (input_estimate as f64 * ip + out as f64 * op) / 1_000_000.0
            })
            .fold(0.0, f64::max);
        // Header names are case-insensitive; a repeated header keeps its last
        // value at the place of its first (as the Python server's dict).
        let mut request_id: Option<&[u8]> = None;
        let mut fwd: Vec<(Vec<u8>, &[u8])> = Vec::new();
        for (name, value) in &head.headers {
            let lower = name.to_ascii_lowercase();
            if lower == b"x-request-id" {
                request_id = Some(value);
            }
            if !routes.forward.is_empty() && routes.forward.iter().any(|p| lower.starts_with(p)) {
                match fwd.iter_mut().find(|(n, _)| *n == lower) {
                    Some(slot) => slot.1 = value,
                    None => fwd.push((lower, value)),
                }
            }
        }
        let request_id = match request_id {
            Some(v) if !v.is_empty() => {
                // ASCII (the parser checked), so bytes are characters.
                String::from_utf8_lossy(&v[..v.len().min(128)]).into_owned()
            }
            _ => {
                self.counter += 1;
                format!("{}-l{}", self.cfg.boot, self.counter)
            }
        };
        let Some(body) = upstream_body(body, &json, route.rename.as_deref(), stream && !asks_usage)
        else {
            return Parsed::Handoff;
        };
        let mut up = Vec::with_capacity(route.head.len() + body.len() + 64);
        up.extend_from_slice(&route.head);
        for (name, value) in &fwd {
            up.extend_from_slice(name);
            up.extend_from_slice(b": ");
            up.extend_from_slice(value);
            up.extend_from_slice(b"\r\n");
        }
        up.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        up.extend_from_slice(&body);
        {
            let mut credit = self.shared.credit.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(limit) = credit.limit {
                if credit.held + worst > limit {
                    return Parsed::Handoff; // Python admits, downgrades or refuses
                }
            }
            credit.held += worst;
        }
        let now = Instant::now();
        Parsed::Go(
            Job {
                route: route.clone(),
                upstream_bytes: up,
                request: Vec::new(),
                request_id,
                requested: model.to_owned(),
                input_estimate,
                started: monotonic(),
                sent: now,
                deadline: now + route.per_try,
                upstream: None,
                retried: false,
                worst,
                stream: stream.then(|| {
                    Box::new(Relay {
                        client_usage,
                        dec: Decoder::new(!client_usage),
                        head: false,
                        body: None,
                        upstream_close: false,
                        started: false,
                        first_ms: 0.0,
                        paused: false,
                    })
                }),
            },
            head.keep_alive,
        )
    }

    fn try_request(&mut self, idx: usize) {
        let Some(c) = self.client(idx) else { return };
        let buf = std::mem::take(&mut c.buf);
        match self.parse(&buf) {
            Parsed::More => {
                if let Some(c) = self.client(idx) {
                    c.buf = buf;
                }
            }
            Parsed::Handoff => self.handoff(idx, buf, None),
            Parsed::Go(mut job, keep_alive) => {
                self.shared.busy.fetch_add(1, Ordering::SeqCst);
                job.request = buf;
                let Some(c) = self.client(idx) else { return };
                c.phase = Phase::Waiting;
                c.first_byte = None;
                c.keep_alive = keep_alive;
                c.job = Some(job);
                self.send_upstream(idx);
            }
        }
    }

    /// Sends the client's job on an idle keep-alive connection, or a new one.
    fn send_upstream(&mut self, cidx: usize) {
        let Some(c) = self.client(cidx) else { return };
        let job = c.job.as_ref().expect("job");
        let addr = job.route.addr;
        let bytes = job.upstream_bytes.clone();
        let fresh_only = job.retried;
        let mut reuse = None;
        if !fresh_only {
            if let Some(list) = self.idle.get_mut(&addr) {
                reuse = list.pop();
            }
        }
        let uidx = match reuse {
            Some(u) => {
                let up = self.upstream(u).expect("idle upstream");
                up.reused = true;
                up.client = Some(cidx);
                up.out = bytes;
                up.out_at = 0;
                up.inbuf.clear();
                up.eof = false;
                u
            }
            None => {
                let mut sock = match TcpStream::connect(addr) {
                    Ok(s) => s,
                    Err(_) => {
                        self.fail(cidx, "connect");
                        return;
                    }
                };
                let _ = sock.set_nodelay(true);
                let u = self.free.last().copied().unwrap_or(self.slots.len());
                if self
                    .poll
                    .registry()
                    .register(
                        &mut sock,
                        Self::token_of(u),
                        Interest::READABLE | Interest::WRITABLE,
                    )
                    .is_err()
                {
                    self.fail(cidx, "connect");
                    return;
                }
                let got = self.insert(Conn::Upstream(Upstream {
                    sock,
                    addr,
                    connecting: true,
                    reused: false,
                    out: bytes,
                    out_at: 0,
                    inbuf: Vec::new(),
                    client: Some(cidx),
                    eof: false,
                }));
                debug_assert_eq!(got, u);
                u
            }
        };
        if let Some(c) = self.client(cidx) {
            if let Some(job) = c.job.as_mut() {
                job.upstream = Some(uidx);
            }
        }
        if reuse.is_some() {
            self.flush_upstream(uidx);
        }
    }

    /// The attempt failed before anything reached the client: Python takes the
    /// request (and the connection) and runs its failover.
    fn fail(&mut self, cidx: usize, cause: &str) {
        self.fail_with(cidx, cause, 0, Vec::new(), Vec::new());
    }

    fn fail_with(
        &mut self,
        cidx: usize,
        cause: &str,
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) {
        let Some(c) = self.client(cidx) else { return };
        let Some(job) = c.job.take() else { return };
        if let Some(u) = job.upstream {
            self.close_upstream(u);
        }
        self.shared.settle_credit(job.worst, 0.0);
        let failure = Some(Failure {
            model: job.route.model.clone(),
            cause: cause.to_owned(),
            status,
            headers,
            body,
        });
        self.handoff(cidx, job.request, failure);
        self.shared.busy.fetch_sub(1, Ordering::SeqCst);
    }

    fn flush_upstream(&mut self, uidx: usize) {
        let Some(u) = self.upstream(uidx) else { return };
        let client = u.client;
        let mut broke: Option<&str> = None;
        if u.connecting {
            match (u.sock.take_error(), u.sock.peer_addr()) {
                (Ok(None), Ok(_)) => u.connecting = false,
                (Ok(None), Err(e)) if e.kind() == io::ErrorKind::NotConnected => return,
                _ => broke = Some("connect"),
            }
        }
        if broke.is_none() {
            while u.out_at < u.out.len() {
                match u.sock.write(&u.out[u.out_at..]) {
                    Ok(n) => u.out_at += n,
                    Err(e) if would_block(&e) => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        broke = Some("reset");
                        break;
                    }
                }
            }
            if broke.is_none() && !u.out.is_empty() {
                u.out = Vec::new();
                u.out_at = 0;
            }
        }
        if let Some(cause) = broke {
            self.upstream_broke(uidx, client, cause);
        }
    }

    /// The upstream connection broke: a reused one that had not answered is
    /// retried once on a fresh connection (nothing was processed), else the
    /// attempt failed.
    fn upstream_broke(&mut self, uidx: usize, client: Option<usize>, cause: &str) {
        let (reused, answered) = match self.upstream(uidx) {
            Some(u) => (u.reused, !u.inbuf.is_empty()),
            None => (false, false),
        };
        self.close_upstream(uidx);
        let Some(cidx) = client else { return };
        let Some(c) = self.client(cidx) else { return };
        let Some(job) = c.job.as_mut() else { return };
        job.upstream = None;
        if reused && !answered && !job.retried {
            job.retried = true;
            self.send_upstream(cidx);
        } else {
            self.fail(cidx, cause);
        }
    }

    fn on_upstream(&mut self, uidx: usize, readable: bool, writable: bool, closed: bool) {
        if writable {
            self.flush_upstream(uidx);
        }
        if !readable {
            return;
        }
        let client = self.upstream(uidx).and_then(|u| u.client);
        if let Some(cidx) = client {
            if self.relay(cidx).is_some_and(|r| r.paused) {
                return; // the client is behind: read once it has caught up
            }
        }
        let Some(u) = self.upstream(uidx) else { return };
        let mut chunk = [0u8; READ_CHUNK];
        let mut broke = false;
        loop {
            match u.sock.read(&mut chunk) {
                Ok(0) => {
                    u.eof = true;
                    break;
                }
                Ok(n) => {
                    u.inbuf.extend_from_slice(&chunk[..n]);
                    if u.inbuf.len() > MAX_ANSWER + MAX_HEAD {
                        broke = true;
                        break;
                    }
                    if n < READ_CHUNK && !closed {
                        break; // drained (see `read_client`)
                    }
                }
                Err(e) if would_block(&e) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    broke = true;
                    break;
                }
            }
        }
        let Some(cidx) = u.client else {
            // Idle in the pool: the server closed it (or sent what it should not).
            self.close_upstream(uidx);
            return;
        };
        let eof = u.eof || broke;
        match self.relay(cidx).map(|r| r.head) {
            Some(true) => {
                self.stream_body(uidx, cidx, eof);
                return;
            }
            Some(false) => {
                let u = self.upstream(uidx).expect("upstream");
                // A 200 starts the relay; anything else is read whole below.
                if let Some(Ok(head)) =
                    parse_head(&u.inbuf).filter(|h| matches!(h, Ok(h) if h.status == 200))
                {
                    u.inbuf.drain(..head.body_at);
                    let relay = self.relay(cidx).expect("relay");
                    relay.head = true;
                    relay.body = Some(head.end);
                    relay.upstream_close = head.close;
                    self.stream_body(uidx, cidx, eof);
                    return;
                }
            }
            None => {}
        }
        let Some(u) = self.upstream(uidx) else { return };
        if broke && u.inbuf.is_empty() {
            self.upstream_broke(uidx, Some(cidx), "reset");
            return;
        }
        if u.inbuf.is_empty() {
            if eof {
                self.upstream_broke(uidx, Some(cidx), "reset");
            }
            return;
        }
        match read_answer(&u.inbuf, eof) {
            Answer::More => {}
            Answer::Failed(cause) => {
                self.close_upstream(uidx);
                if let Some(c) = self.client(cidx) {
                    if let Some(job) = c.job.as_mut() {
                        job.upstream = None;
                    }
                }
                self.fail(cidx, &cause);
            }
            Answer::Whole {
                status,
                headers,
                body,
                reusable,
            } => {
                if reusable {
                    self.release_upstream(uidx);
                } else {
                    self.close_upstream(uidx);
                }
                if status == 200 {
                    self.answer(cidx, body);
                } else {
                    if let Some(c) = self.client(cidx) {
                        if let Some(job) = c.job.as_mut() {
                            job.upstream = None;
                        }
                    }
                    self.fail_with(cidx, "http", status, headers, body);
                }
            }
        }
    }

    /// The provider's whole answer: to the client as it came, with the decision
    /// and cost headers; its usage to Python.
    fn answer(&mut self, cidx: usize, body: Vec<u8>) {
        let Some(c) = self.client(cidx) else { return };
        let Some(job) = c.job.take() else { return };
        let upstream_ms = job.sent.elapsed().as_secs_f64() * 1000.0;
        let route = &job.route;
        let parsed = serde_json::from_slice::<Value>(&body);
        let mut out: Vec<u8>;
        let (usage, estimated, ok, code) = match parsed.as_ref().ok().and_then(Value::as_object) {
            Some(data) if data.get("choices").is_some_and(Value::is_array) => {
                let (usage, estimated) = match usage_of(data) {
                    Some(u) => (u, false),
                    None => (
                        [job.input_estimate, 0, result_chars(data).div_ceil(4), 0],
                        true,
                    ),
                };
                let cost = cost_of(route, &usage);
                let lines = format!(
                    "x-switchman-cost: {cost:.8}\r\ncontent-length: {}\r\n",
                    body.len()
                );
                let first = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n";
                out = answer_head(first, &job, lines.as_bytes(), c.keep_alive);
                out.reserve(body.len());
                out.extend_from_slice(&body);
                (usage, estimated, true, 200u16)
            }
            _ => {
                let why = match &parsed {
                    Err(e) => e.to_string(),
                    Ok(_) => "upstream answer is not a chat completion".to_owned(),
                };
                let message = format!("{}: unreadable answer ({why})", route.model);
                let err = format!(
                    "{{\"error\":{{\"message\":{},\"type\":\"server_error\",\"param\":null,\"code\":\"upstream_error\"}}}}",
                    Value::String(message.clone())
                );
                let first = b"HTTP/1.1 502 Bad Gateway\r\ncontent-type: application/json\r\n";
                let lines = format!("content-length: {}\r\n", err.len());
                out = answer_head(first, &job, lines.as_bytes(), c.keep_alive);
                out.extend_from_slice(err.as_bytes());
                ([job.input_estimate, 0, 0, 0], true, false, 502u16)
            }
        };
        c.out = out;
        c.out_at = 0;
        c.phase = Phase::Writing;
        self.flush_client(cidx);
        let outcome = if ok { "success" } else { "upstream_error" };
        self.shared
            .finished(job, usage, estimated, End::new(code, outcome, upstream_ms));
    }

    fn relay(&mut self, cidx: usize) -> Option<&mut Relay> {
        self.client(cidx)?.job.as_mut()?.stream.as_deref_mut()
    }

    /// One chunk of a streamed answer to the client (chunked framing).
    fn send_chunk(&mut self, cidx: usize, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let Some(c) = self.client(cidx) else { return };
        c.out
            .extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        c.out.extend_from_slice(data);
        c.out.extend_from_slice(b"\r\n");
    }

    /// Upstream bytes of a stream whose 200 head is read: decoded, relayed as they
    /// come; the stream's end, failure or a failure before its start.
    fn stream_body(&mut self, uidx: usize, cidx: usize, eof: bool) {
        let Some(u) = self.upstream(uidx) else { return };
        let data = std::mem::take(&mut u.inbuf);
        let Some(c) = self.client(cidx) else { return };
        let Some(job) = c.job.as_mut() else { return };
        let model = job.route.model.clone();
        let per_try = job.route.per_try;
        let sent = job.sent;
        let Some(relay) = job.stream.as_deref_mut() else {
            return;
        };
        let (payload, ended, clean, malformed) = match relay.body.as_mut() {
            Some(BodyEnd::Chunked(d)) => match d.feed(&data) {
                Ok(p) => (p, d.done, d.done && d.exact(), false),
                Err(()) => (Vec::new(), false, false, true),
            },
            Some(BodyEnd::Length(left)) => {
                let take = (*left).min(data.len());
                *left -= take;
                (
                    data[..take].to_vec(),
                    *left == 0,
                    *left == 0 && take == data.len(),
                    false,
                )
            }
            Some(BodyEnd::Close) | None => (data, eof, false, false),
        };
        let broken = malformed || (!ended && eof);
        let reusable = ended && clean && !relay.upstream_close;
        if !payload.is_empty() {
            job.deadline = Instant::now() + per_try; // the gap allowed between events
        }
        let fed = relay.dec.feed(&payload);
        let started = relay.started;
        match fed {
            Err(_) if !started => {
                // An error event before the first chunk: a failed attempt (Python's
                // failover retries it), as on the Python path.
                self.drop_upstream(cidx, uidx);
                self.fail(cidx, "reset");
            }
            Err(message) => {
                let failure = (
                    format!("{model}: {message}"),
                    "server_error",
                    "upstream_error",
                );
                self.finish_stream(cidx, uidx, Some(failure), false);
            }
            Ok(fed) => {
                if !started {
                    if fed.events == 0 {
                        if ended || broken {
                            // The stream ended before its first chunk: a failed attempt.
                            self.drop_upstream(cidx, uidx);
                            self.fail(cidx, "reset");
                        }
                        return;
                    }
                    self.start_stream(cidx, sent);
                }
                self.send_chunk(cidx, &fed.out);
                if broken {
                    let failure = (
                        format!("{model}: stream broke: the provider closed the connection"),
                        "server_error",
                        "upstream_error",
                    );
                    self.finish_stream(cidx, uidx, Some(failure), false);
                } else if ended {
                    self.finish_stream(cidx, uidx, None, reusable);
                } else {
                    self.flush_client(cidx);
                }
            }
        }
    }

    fn drop_upstream(&mut self, cidx: usize, uidx: usize) {
        self.close_upstream(uidx);
        if let Some(job) = self.client(cidx).and_then(|c| c.job.as_mut()) {
            job.upstream = None;
        }
    }

    /// The client gets the stream's head: from here on, failures end the stream.
    fn start_stream(&mut self, cidx: usize, sent: Instant) {
        let Some(c) = self.client(cidx) else { return };
        let keep_alive = c.keep_alive;
        let Some(job) = c.job.as_mut() else { return };
        let head = answer_head(
            b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n",
            job,
            b"transfer-encoding: chunked\r\n",
            keep_alive,
        );
        if let Some(relay) = job.stream.as_deref_mut() {
            relay.started = true;
            relay.first_ms = sent.elapsed().as_secs_f64() * 1000.0;
        }
        c.out.extend_from_slice(&head);
        c.phase = Phase::Streaming;
    }

    /// The stream's end: its tail (`[DONE]`, the usage chunk a client asked for,
    /// or the error event), the chunked terminator, and the usage to Python.
    fn finish_stream(
        &mut self,
        cidx: usize,
        uidx: usize,
        failure: Option<(String, &'static str, &'static str)>,
        reusable: bool,
    ) {
        if reusable {
            self.release_upstream(uidx);
        } else {
            self.close_upstream(uidx);
        }
        let Some(c) = self.client(cidx) else { return };
        let Some(mut job) = c.job.take() else { return };
        let Some(relay) = job.stream.take() else {
            return;
        };
        let complete = relay.dec.finished && failure.is_none();
        let (usage, estimated) = stream_usage(&relay.dec, job.input_estimate, complete);
        let tail = match &failure {
            Some((message, kind, code)) => error_event(message, kind, code),
            None => relay.dec.finish(relay.client_usage, &usage),
        };
        self.send_chunk(cidx, &tail);
        if let Some(c) = self.client(cidx) {
            c.out.extend_from_slice(b"0\r\n\r\n");
            c.phase = Phase::Writing;
        }
        let end = End {
            streamed: true,
            mid_stream: failure.is_some(),
            ..End::new(
                200,
                if failure.is_some() {
                    "upstream_error"
                } else {
                    "success"
                },
                relay.first_ms,
            )
        };
        self.shared.finished(job, usage, estimated, end);
        self.flush_client(cidx);
    }

    /// The client went away mid-stream: the upstream is closed, what was
    /// produced is charged (`OUTCOME_CLIENT_ABORTED`).
    fn abort_stream(&mut self, cidx: usize) {
        let Some(c) = self.client(cidx) else { return };
        let Some(mut job) = c.job.take() else { return };
        let Some(relay) = job.stream.take() else {
            return;
        };
        if let Some(u) = job.upstream {
            self.close_upstream(u);
        }
        let (usage, estimated) = stream_usage(&relay.dec, job.input_estimate, false);
        let end = End {
            streamed: true,
            ..End::new(200, "client_aborted", relay.first_ms)
        };
        self.shared.finished(job, usage, estimated, end);
    }

    /// An upstream connection whose answer was read exactly: back to the pool.
    fn release_upstream(&mut self, uidx: usize) {
        let Some(u) = self.upstream(uidx) else { return };
        u.client = None;
        u.inbuf.clear();
        let addr = u.addr;
        let list = self.idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_ADDR {
            list.push(uidx);
        } else {
            self.close_upstream(uidx);
        }
    }

    fn flush_client(&mut self, idx: usize) {
        let Some(c) = self.client(idx) else { return };
        if c.phase != Phase::Writing && c.phase != Phase::Streaming {
            return;
        }
        let streaming = c.phase == Phase::Streaming;
        while c.out_at < c.out.len() {
            match c.sock.write(&c.out[c.out_at..]) {
                Ok(n) => c.out_at += n,
                Err(e) if would_block(&e) => {
                    let behind = c.out.len() - c.out_at > STREAM_BACKLOG;
                    let registry = self.poll.registry();
                    if let Some(Some(Conn::Client(c))) = self.slots.get_mut(idx) {
                        let _ = registry.reregister(
                            &mut c.sock,
                            Self::token_of(idx),
                            Interest::READABLE | Interest::WRITABLE,
                        );
                    }
                    if behind {
                        if let Some(relay) = self.relay(idx) {
                            relay.paused = true; // the provider waits (TCP) until the client reads
                        }
                    }
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => {
                    // The client went away; its usage is recorded all the same.
                    if streaming {
                        self.abort_stream(idx);
                    }
                    self.close_client(idx);
                    return;
                }
            }
        }
        if streaming {
            c.out.clear();
            c.out_at = 0;
            let resume = c.job.as_mut().and_then(|j| {
                let relay = j.stream.as_deref_mut()?;
                let was = relay.paused;
                relay.paused = false;
                if was {
                    j.upstream
                } else {
                    None
                }
            });
            if let Some(uidx) = resume {
                self.on_upstream(uidx, true, false, true);
            }
            return;
        }
        let keep = c.keep_alive;
        c.out = Vec::new();
        c.out_at = 0;
        c.phase = Phase::Reading;
        c.idle_since = Instant::now();
        // Bytes (or a close) that came in meanwhile were left in the socket.
        let pending = std::mem::take(&mut c.pending_read);
        if !keep || self.shared.stop.load(Ordering::Relaxed) {
            self.close_client(idx);
            return;
        }
        if pending {
            self.read_client(idx, true);
        }
    }

    /// Deadlines: a slow request goes to Python (its server times it out), an
    /// idle keep-alive connection is closed, a late upstream fails the attempt.
    fn timers(&mut self) -> Option<Duration> {
        let now = Instant::now();
        let mut next: Option<Instant> = None;
        let mut slow = Vec::new();
        let mut idle = Vec::new();
        let mut late = Vec::new();
        for (idx, slot) in self.slots.iter().enumerate() {
            let Some(Conn::Client(c)) = slot else {
                continue;
            };
            let due = match (&c.phase, &c.job, c.first_byte) {
                (Phase::Streaming, Some(job), _)
                    if job.stream.as_deref().is_some_and(|r| r.paused) =>
                {
                    continue; // the client is slow, not the provider
                }
                (Phase::Waiting | Phase::Streaming, Some(job), _) => {
                    if now >= job.deadline {
                        late.push(idx);
                        continue;
                    }
                    job.deadline
                }
                (Phase::Reading, _, Some(first)) => {
                    let due = first + self.cfg.header_timeout;
                    if now >= due {
                        slow.push(idx);
                        continue;
                    }
                    due
                }
                (Phase::Reading, _, None) => {
                    let due = c.idle_since + self.cfg.keepalive_timeout;
                    if now >= due {
                        idle.push(idx);
                        continue;
                    }
                    due
                }
                _ => continue,
            };
            next = Some(next.map_or(due, |n| n.min(due)));
        }
        for idx in slow {
            if let Some(c) = self.client(idx) {
                let data = std::mem::take(&mut c.buf);
                self.handoff(idx, data, None);
            }
        }
        for idx in idle {
            self.close_client(idx);
        }
        for idx in late {
            let Some(c) = self.client(idx) else { continue };
            if c.phase == Phase::Streaming {
                let model = c
                    .job
                    .as_ref()
                    .map(|j| j.route.model.clone())
                    .unwrap_or_default();
                let upstream = c.job.as_ref().and_then(|j| j.upstream);
                let failure = (
                    format!("{model}: the stream stalled"),
                    "server_error",
                    "timeout",
                );
                match upstream {
                    Some(u) => self.finish_stream(idx, u, Some(failure), false),
                    None => self.abort_stream(idx),
                }
            } else {
                self.fail(idx, "timeout");
            }
        }
        next.map(|n| n.saturating_duration_since(Instant::now()))
    }

    /// The grace period is over: requests still in flight are charged for what
    /// is known (a stream: what was relayed; a whole answer: the prompt's
    /// estimate), as the Python server's are when it closes their connections.
    fn abandon(&mut self) {
        for idx in 0..self.slots.len() {
            let streaming = match self.client(idx) {
                Some(c) if c.job.is_some() => c.job.as_ref().is_some_and(|j| j.stream.is_some()),
                _ => continue,
            };
            if streaming {
                self.abort_stream(idx);
            } else if let Some(job) = self.client(idx).and_then(|c| c.job.take()) {
                if let Some(u) = job.upstream {
                    self.close_upstream(u);
                }
                let usage = [job.input_estimate, 0, 0, 0];
                let waited = job.sent.elapsed().as_secs_f64() * 1000.0;
                let end = End::new(0, "client_aborted", waited);
                self.shared.finished(job, usage, true, end);
            }
            self.close_client(idx);
        }
    }

    fn in_flight(&self) -> bool {
        self.slots
            .iter()
            .any(|s| matches!(s, Some(Conn::Client(c)) if c.phase != Phase::Reading || !c.buf.is_empty()))
    }

    fn run(&mut self, grace: &Mutex<Duration>) {
        let mut events = Events::with_capacity(256);
        let mut stop_by: Option<Instant> = None;
        loop {
            let wait = self.timers();
            let wait = match self.shared.settle_due() {
                Some(due) => {
                    let left = due.saturating_duration_since(Instant::now());
                    Some(wait.map_or(left, |w| w.min(left)))
                }
                None => wait,
            };
            let wait = wait.map_or(Duration::from_secs(1), |w| w.min(Duration::from_secs(1)));
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    self.shared.push(Event::Dead(format!("poll: {e}")));
                    return;
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(t) => {
                        let idx = t - FIRST;
                        let closed = event.is_read_closed() || event.is_error();
                        let (r, w) = (
                            event.is_readable() || closed,
                            event.is_writable() || event.is_error(),
                        );
                        match self.slots.get(idx) {
                            Some(Some(Conn::Client(_))) => self.on_client(idx, r, w, closed),
                            Some(Some(Conn::Upstream(_))) => self.on_upstream(idx, r, w, closed),
                            _ => {}
                        }
                    }
                }
            }
            if self.shared.stop.load(Ordering::Relaxed) {
                if stop_by.is_none() {
                    let grace = *grace.lock().unwrap_or_else(|e| e.into_inner());
                    stop_by = Some(Instant::now() + grace);
                    if let Some(mut l) = self.listener.take() {
                        let _ = self.poll.registry().deregister(&mut l);
                    }
                    // Idle connections are closed; requests in flight finish.
                    let idle: Vec<usize> = self
                        .slots
                        .iter()
                        .enumerate()
                        .filter_map(|(i, s)| match s {
                            Some(Conn::Client(c))
                                if c.phase == Phase::Reading && c.buf.is_empty() =>
                            {
                                Some(i)
                            }
                            _ => None,
                        })
                        .collect();
                    for idx in idle {
                        self.close_client(idx);
                    }
                }
                if !self.in_flight() {
                    return;
                }
                if stop_by.is_some_and(|t| Instant::now() >= t) {
                    self.abandon();
                    return;
                }
            }
        }
    }
}

/// `(name, model, upstream_name, ip, port, head, tail, (input_price, cached_price,
/// output_price), context_window, per_try_timeout_s, chain)`, see `Lane::set_routes`;
/// `chain`: `(input_price, output_price, max_output_tokens)` per candidate.
type RouteTuple = (
    String,
    String,
    String,
    String,
    u16,
    Vec<u8>,
    Vec<u8>,
    (f64, f64, f64),
    u64,
    f64,
    Vec<(f64, f64, u64)>,
);

/// The lane: `start` it with a listening socket, feed it `set_routes`, drain
/// `take` whenever a byte arrives on the notify pipe, `stop` it at the end.
#[pyclass(module = "switchman_native._native")]
pub struct Lane {
    shared: Arc<Shared>,
    waker: Option<Arc<Waker>>,
    /// Behind a mutex: `join` runs in a worker thread while the loop still calls `take`.
    thread: Mutex<Option<JoinHandle<()>>>,
    grace: Arc<Mutex<Duration>>,
}

#[pymethods]
impl Lane {
    #[new]
    /// `settle_delay_s`: how long finished requests may wait to be announced
    /// (0: each at once).
    #[pyo3(signature = (notify_fd, settle_delay_s=0.0))]
    fn new(notify_fd: RawFd, settle_delay_s: f64) -> Self {
        Lane {
            shared: Arc::new(Shared {
                routes: Mutex::new(None),
                outbox: Mutex::new(Outbox {
                    items: Vec::new(),
                    signalled: false,
                    since: None,
                }),
                stop: AtomicBool::new(false),
                busy: AtomicUsize::new(0),
                credit: Mutex::new(Credit {
                    limit: None,
                    held: 0.0,
                }),
                settle_delay: Duration::from_secs_f64(settle_delay_s.clamp(0.0, 1.0)),
                notify_fd,
            }),
            waker: None,
            thread: Mutex::new(None),
            grace: Arc::new(Mutex::new(Duration::from_secs(5))),
        }
    }

    /// Starts the thread on `listen_fd` (a bound, listening, non-blocking TCP
    /// socket the lane now owns).
    #[pyo3(signature = (listen_fd, max_body, header_timeout_s, keepalive_timeout_s, boot))]
    fn start(
        &mut self,
        listen_fd: RawFd,
        max_body: usize,
        header_timeout_s: f64,
        keepalive_timeout_s: f64,
        boot: String,
    ) -> PyResult<()> {
        if self.waker.is_some() {
            return Err(PyRuntimeError::new_err("the lane was started already"));
        }
        let poll = Poll::new().map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        // SAFETY: the caller hands over ownership of a valid listening socket.
        let std_listener = unsafe { std::net::TcpListener::from_raw_fd(listen_fd) };
        std_listener
            .set_nonblocking(true)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let mut listener = TcpListener::from_std(std_listener);
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        let waker = Arc::new(
            Waker::new(poll.registry(), WAKER)
                .map_err(|e| PyRuntimeError::new_err(e.to_string()))?,
        );
        let mut core = Core {
            poll,
            listener: Some(listener),
            slots: Vec::new(),
            free: Vec::new(),
            idle: HashMap::new(),
            shared: self.shared.clone(),
            cfg: Config {
                max_body,
                header_timeout: Duration::from_secs_f64(header_timeout_s.max(0.001)),
                keepalive_timeout: Duration::from_secs_f64(keepalive_timeout_s.max(0.001)),
                boot,
            },
            counter: 0,
        };
        let shared = self.shared.clone();
        let grace = self.grace.clone();
        let thread = std::thread::Builder::new()
            .name("switchman-lane".into())
            .spawn(move || {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    core.run(&grace);
                }));
                if let Err(panic) = result {
                    let why = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "panic".to_owned());
                    shared.push(Event::Dead(why));
                }
            })
            .map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        *self.thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread);
        self.waker = Some(waker);
        Ok(())
    }

    /// Publishes the routes (`RouteTuple`s) and the forwarded header prefixes. `None` makes the lane hand every request over.
    #[pyo3(signature = (routes, forward))]
    fn set_routes(&self, routes: Option<Vec<RouteTuple>>, forward: Vec<String>) -> PyResult<()> {
        let table = match routes {
            None => None,
            Some(list) => {
                let mut by_name = HashMap::new();
                for (
                    name,
                    model,
                    upstream,
                    ip,
                    port,
                    head,
                    tail,
                    (ip_price, cp, op),
                    cw,
                    per_try,
                    chain,
                ) in list
                {
                    let ip: std::net::IpAddr = ip
                        .parse()
                        .map_err(|_| PyValueError::new_err(format!("not an IP address: {ip}")))?;
                    let rename = (upstream != name)
                        .then(|| Value::String(upstream).to_string().into_bytes());
                    by_name.insert(
                        name.into_bytes(),
                        Arc::new(Route {
                            rename,
                            model,
                            addr: SocketAddr::new(ip, port),
                            head,
                            tail,
                            input_price: ip_price,
                            cached_price: cp,
                            output_price: op,
                            context_window: cw,
                            per_try: Duration::from_secs_f64(per_try.max(0.001)),
                            chain,
                        }),
                    );
                }
                Some(Arc::new(Routes {
                    by_name,
                    forward: forward
                        .into_iter()
                        .map(|p| p.to_ascii_lowercase().into_bytes())
                        .collect(),
                }))
            }
        };
        *self.shared.routes.lock().unwrap_or_else(|e| e.into_inner()) = table;
        Ok(())
    }

    /// What happened since the last call: `("done", request_id, requested, input,
    /// cached, output, reasoning, estimated, input_estimate, status, outcome, streamed,
    /// mid_stream, started,
    /// upstream_ms)`, `("handoff", fd, data, failure)` (failure: None for a
    /// request the lane did not take, else `(model, cause, status, headers, body)`)
    /// or `("dead", why)`.
    fn take<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = {
            let mut out = self.shared.outbox.lock().unwrap_or_else(|e| e.into_inner());
            out.signalled = false;
            out.since = None;
            std::mem::take(&mut out.items)
        };
        let list = PyList::empty(py);
        for item in items {
            let tuple = match item {
                Event::Done(d) => PyTuple::new(
                    py,
                    [
                        "done".into_pyobject(py)?.into_any(),
                        d.request_id.into_pyobject(py)?.into_any(),
                        d.requested.into_pyobject(py)?.into_any(),
                        d.usage[0].into_pyobject(py)?.into_any(),
                        d.usage[1].into_pyobject(py)?.into_any(),
                        d.usage[2].into_pyobject(py)?.into_any(),
                        d.usage[3].into_pyobject(py)?.into_any(),
                        pyo3::types::PyBool::new(py, d.estimated)
                            .to_owned()
                            .into_any(),
                        d.input_estimate.into_pyobject(py)?.into_any(),
                        d.status.into_pyobject(py)?.into_any(),
                        d.outcome.into_pyobject(py)?.into_any(),
                        pyo3::types::PyBool::new(py, d.streamed)
                            .to_owned()
                            .into_any(),
                        pyo3::types::PyBool::new(py, d.mid_stream)
                            .to_owned()
                            .into_any(),
                        d.started.into_pyobject(py)?.into_any(),
                        d.upstream_ms.into_pyobject(py)?.into_any(),
                    ],
                )?,
                Event::Handoff { fd, data, failure } => {
                    let failure = match failure {
                        Some(f) => PyTuple::new(
                            py,
                            [
                                f.model.into_pyobject(py)?.into_any(),
                                f.cause.into_pyobject(py)?.into_any(),
                                f.status.into_pyobject(py)?.into_any(),
                                f.headers.into_pyobject(py)?.into_any(),
                                PyBytes::new(py, &f.body).into_any(),
                            ],
                        )?
                        .into_any(),
                        None => py.None().into_bound(py),
                    };
                    PyTuple::new(
                        py,
                        [
                            "handoff".into_pyobject(py)?.into_any(),
                            fd.into_pyobject(py)?.into_any(),
                            PyBytes::new(py, &data).into_any(),
                            failure,
                        ],
                    )?
                }
                Event::Dead(why) => PyTuple::new(
                    py,
                    [
                        "dead".into_pyobject(py)?.into_any(),
                        why.into_pyobject(py)?.into_any(),
                    ],
                )?,
            };
            list.append(tuple)?;
        }
        Ok(list)
    }

    /// Stops accepting; requests in flight get up to `grace_s` to finish.
    #[pyo3(signature = (grace_s))]
    fn stop(&self, grace_s: f64) {
        *self.grace.lock().unwrap_or_else(|e| e.into_inner()) =
            Duration::from_secs_f64(grace_s.max(0.0));
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(w) = &self.waker {
            let _ = w.wake();
        }
    }

    /// What the lane may commit of the team's budget from now on (None: there
    /// is no budget state). Requests in flight stay held against it.
    #[pyo3(signature = (limit))]
    fn set_credit(&self, limit: Option<f64>) {
        self.shared
            .credit
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .limit = limit;
    }

    /// Gives back what the lane's credit does not hold for requests in flight
    /// (the lane admits nothing more until `set_credit`); returns that amount.
    fn reclaim(&self) -> f64 {
        let mut credit = self.shared.credit.lock().unwrap_or_else(|e| e.into_inner());
        let held = credit.held;
        match credit.limit.as_mut() {
            Some(limit) if *limit > held => {
                let freed = *limit - held;
                *limit = held;
                freed
            }
            _ => 0.0,
        }
    }

    /// The credit left (None: unlimited) and the worst case of requests in flight.
    fn credit(&self) -> (Option<f64>, f64) {
        let credit = self.shared.credit.lock().unwrap_or_else(|e| e.into_inner());
        (credit.limit, credit.held)
    }

    /// Requests in flight in the lane (taken, their event not queued yet).
    fn busy(&self) -> usize {
        self.shared.busy.load(Ordering::SeqCst)
    }

    /// Waits for the thread to end (call `stop` first).
    fn join(&self, py: Python<'_>) {
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            py.allow_threads(|| {
                let _ = t.join();
            });
        }
    }
}

impl Drop for Lane {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(w) = &self.waker {
            let _ = w.wake();
        }
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Lane>()?;
    Ok(())
}
