//! The sidecar's HTTP request head, parsed in one call.
//!
//! `parse_request` (and `parse_response`, for the upstream's answers) accepts only a plain, complete HTTP/1.1 request: one whole
//! message in the buffer (head and a `content-length` body, nothing after it),
//! a known method, a target of visible ASCII, `name: value` header lines of
//! tokens and printable ASCII, CRLF line ends, no `transfer-encoding`,
//! `upgrade` or `expect`, at most one `content-length` (digits only, within
//! the size limit) and a `connection` header, if any, of exactly `keep-alive`
//! or `close`. Anything else returns `None` and the server feeds the bytes to
//! httptools (llhttp), the reference, which then parses them or rejects them
//! exactly as before. Replaces the ~10 Python callbacks of httptools per
//! request (`sidecar/switchman_sidecar/http/server.py`).
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyTuple};

const MAX_HEADERS: usize = 100;
const METHODS: [&[u8]; 7] = [
    b"GET", b"POST", b"PUT", b"DELETE", b"PATCH", b"HEAD", b"OPTIONS",
];

/// RFC 9110 `tchar`: what a header name may hold.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Printable ASCII (no obs-text, no controls): what a header value may hold.
fn is_vchar(b: u8) -> bool {
    (0x21..=0x7e).contains(&b)
}

pub(crate) struct Fields<'a> {
    pub(crate) headers: Vec<(&'a [u8], &'a [u8])>,
    pub(crate) body_at: usize,
    pub(crate) content_length: Option<usize>,
    pub(crate) keep_alive: bool,
}

fn line(data: &[u8], from: usize) -> Option<(&[u8], usize)> {
    let rest = &data[from..];
    let cr = rest.iter().position(|&b| b == b'\r' || b == b'\n')?;
    if rest[cr] != b'\r' || rest.get(cr + 1) != Some(&b'\n') {
        return None; // a bare CR or LF: not ours to decide
    }
    Some((&rest[..cr], from + cr + 2))
}

/// The header lines from `at` on, up to and including the empty line; then
/// the message must end exactly after its `content-length` body.
pub(crate) fn fields(data: &[u8], mut at: usize, max_body: usize) -> Option<Fields<'_>> {
    let mut headers = Vec::new();
    let mut content_length: Option<usize> = None;
    let mut keep_alive = true;
    loop {
        let (text, next) = line(data, at)?;
        at = next;
        if text.is_empty() {
            break;
        }
        if headers.len() == MAX_HEADERS {
            return None;
        }
        let colon = text.iter().position(|&b| b == b':')?;
        let name = &text[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return None;
        }
        let raw = &text[colon + 1..];
        // Leading whitespace is dropped, trailing whitespace kept: as llhttp does.
        let start = raw
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .unwrap_or(raw.len());
        let value = &raw[start..];
        if !value
            .iter()
            .all(|&b| is_vchar(b) || b == b' ' || b == b'\t')
        {
            return None;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            if content_length.is_some()
                || value.is_empty()
                || value.len() > 18
                || !value.iter().all(u8::is_ascii_digit)
            {
                return None;
            }
            let n: usize = std::str::from_utf8(value).ok()?.parse().ok()?;
            if n > max_body {
                return None; // httptools' path decides (413, or reading paused)
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"connection") {
            if value.eq_ignore_ascii_case(b"close") {
                keep_alive = false;
            } else if !value.eq_ignore_ascii_case(b"keep-alive") {
                return None;
            }
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            || name.eq_ignore_ascii_case(b"upgrade")
            || name.eq_ignore_ascii_case(b"expect")
        {
            return None;
        }
        headers.push((name, value));
    }
    if data.len() != at + content_length.unwrap_or(0) {
        return None; // partial, or more than one message: httptools handles it
    }
    Some(Fields {
        headers,
        body_at: at,
        content_length,
        keep_alive,
    })
}

pub(crate) fn request_line(data: &[u8]) -> Option<(&[u8], &[u8], usize)> {
    let (first, at) = line(data, 0)?;
    let mut parts = first.split(|&b| b == b' ');
    let method = parts.next()?;
    let target = parts.next()?;
    let version = parts.next()?;
    if parts.next().is_some()
        || !METHODS.contains(&method)
        || target.is_empty()
        || !target.iter().all(|&b| is_vchar(b))
        || version != b"HTTP/1.1"
    {
        return None;
    }
    Some((method, target, at))
}

/// `HTTP/1.1 NNN reason`: the status, for answers that carry a body whose end
/// the content-length gives (not 1xx, 204, 304).
fn status_line(data: &[u8]) -> Option<(u16, usize)> {
    let (first, at) = line(data, 0)?;
    let rest = first.strip_prefix(b"HTTP/1.1 ")?;
    let (code, reason) = rest.split_at_checked(3)?;
    if !code.iter().all(u8::is_ascii_digit)
        || !(reason.is_empty() || reason[0] == b' ')
        || !reason
            .iter()
            .all(|&b| is_vchar(b) || b == b' ' || b == b'\t')
    {
        return None;
    }
    let status: u16 = std::str::from_utf8(code).ok()?.parse().ok()?;
    if !(200..=599).contains(&status) || status == 204 || status == 304 {
        return None;
    }
    Some((status, at))
}

/// The names clients send on every request, as interned strings (made once,
/// their hashes kept: the dict and later look-ups need no new string).
fn known_name<'py>(
    py: Python<'py>,
    lower: &[u8],
) -> Option<&'py Bound<'py, pyo3::types::PyString>> {
    Some(match lower {
        b"host" => pyo3::intern!(py, "host"),
        b"content-type" => pyo3::intern!(py, "content-type"),
        b"content-length" => pyo3::intern!(py, "content-length"),
        b"user-agent" => pyo3::intern!(py, "user-agent"),
        b"accept" => pyo3::intern!(py, "accept"),
        b"accept-encoding" => pyo3::intern!(py, "accept-encoding"),
        b"authorization" => pyo3::intern!(py, "authorization"),
        b"connection" => pyo3::intern!(py, "connection"),
        b"x-request-id" => pyo3::intern!(py, "x-request-id"),
        b"x-api-key" => pyo3::intern!(py, "x-api-key"),
        b"anthropic-version" => pyo3::intern!(py, "anthropic-version"),
        _ => return None,
    })
}

/// `(method, path, query, headers, body, keep_alive)` of one whole plain
/// request, or `None` (see the module's doc). Header names are lower-cased; a
/// repeated header keeps its last value, at the place of its first.
#[pyfunction]
#[pyo3(signature = (data, max_body))]
fn parse_request<'py>(
    py: Python<'py>,
    data: &[u8],
    max_body: usize,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some((method, target, at)) = request_line(data) else {
        return Ok(None);
    };
    let Some(head) = fields(data, at, max_body) else {
        return Ok(None);
    };
    let headers = PyDict::new(py);
    let mut lower = Vec::with_capacity(64);
    for (name, value) in &head.headers {
        lower.clear();
        lower.extend(name.iter().map(u8::to_ascii_lowercase));
        // Both are ASCII (checked above): valid UTF-8, the same as latin-1.
        let val = std::str::from_utf8(value).expect("ascii");
        match known_name(py, &lower) {
            Some(key) => headers.set_item(key, val)?,
            None => headers.set_item(std::str::from_utf8(&lower).expect("ascii"), val)?,
        }
    }
    let target = std::str::from_utf8(target).expect("ascii");
    let (path, query) = match target.find('?') {
        Some(q) => (&target[..q], &target[q + 1..]),
        None => (target, ""),
    };
    let method = match method {
        b"POST" => pyo3::intern!(py, "POST").clone(),
        b"GET" => pyo3::intern!(py, "GET").clone(),
        other => pyo3::types::PyString::new(py, std::str::from_utf8(other).expect("ascii")),
    };
    let body = PyBytes::new(py, &data[head.body_at..]);
    let out = PyTuple::new(
        py,
        [
            method.into_any(),
            path.into_pyobject(py)?.into_any(),
            query.into_pyobject(py)?.into_any(),
            headers.into_any(),
            body.into_any(),
            pyo3::types::PyBool::new(py, head.keep_alive)
                .to_owned()
                .into_any(),
        ],
    )?;
    Ok(Some(out))
}

/// `(status, headers, body, keep_alive)` of one whole plain upstream answer
/// with a `content-length` body, or `None` (httptools parses it then).
/// Headers are `(name, value)` byte pairs as received (names not lower-cased),
/// as the upstream client's httptools callbacks collect them.
#[pyfunction]
#[pyo3(signature = (data, max_body))]
fn parse_response<'py>(
    py: Python<'py>,
    data: &[u8],
    max_body: usize,
) -> PyResult<Option<Bound<'py, PyTuple>>> {
    let Some((status, at)) = status_line(data) else {
        return Ok(None);
    };
    let Some(head) = fields(data, at, max_body) else {
        return Ok(None);
    };
    if head.content_length.is_none() {
        return Ok(None); // a body until the connection closes: httptools
    }
    let headers = PyList::empty(py);
    for (name, value) in &head.headers {
        headers.append((PyBytes::new(py, name), PyBytes::new(py, value)))?;
    }
    let body = PyBytes::new(py, &data[head.body_at..]);
    let out = PyTuple::new(
        py,
        [
            status.into_pyobject(py)?.into_any(),
            headers.into_any(),
            body.into_any(),
            pyo3::types::PyBool::new(py, head.keep_alive)
                .to_owned()
                .into_any(),
        ],
    )?;
    Ok(Some(out))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(parse_request, m)?)?;
    m.add_function(wrap_pyfunction!(parse_response, m)?)?;
    Ok(())
}
