//! patterns.py's validators of the number candidates (IBAN, card, IPv4, SSN,
//! phone), step by step. What needs Python's libraries (phonenumbers for a
//! "+" number) or a case this port does not cover (a non-ASCII IBAN or IPv4
//! candidate, a code point above the BMP next to a phone) is asked of the
//! Python functions themselves (`Checks`), so the answer is always Python's.
use std::sync::LazyLock;

use pyo3::prelude::*;
use regex::bytes::Regex;

use super::numbers::Spans;
use super::text::{Text, DECIMAL, DIGIT, LETTER, WORD};

/// The Python functions: `_phone_ok(text, start, value)`,
/// `_possible_number(core)`, `iban_ok(value)`, `ip_ok(value)`.
pub struct Checks {
    pub phone_ok: Py<PyAny>,
    pub possible: Py<PyAny>,
    pub iban_ok: Py<PyAny>,
    pub ip_ok: Py<PyAny>,
}

fn call<'py, A>(py: Python<'py>, f: &Py<PyAny>, args: A) -> PyResult<bool>
where
    A: IntoPyObject<'py, Target = pyo3::types::PyTuple>,
{
    f.call1(py, args)?.extract(py)
}

const IBAN_LENGTHS: &[(&str, usize)] = &[
    ("AD", 24),
    ("AE", 23),
    ("AL", 28),
    ("AT", 20),
    ("AZ", 28),
    ("BA", 20),
    ("BE", 16),
    ("BG", 22),
    ("BH", 22),
    ("BR", 29),
    ("BY", 28),
    ("CH", 21),
    ("CR", 22),
    ("CY", 28),
    ("CZ", 24),
    ("DE", 22),
    ("DK", 18),
    ("DO", 28),
    ("EE", 20),
    ("EG", 29),
    ("ES", 24),
    ("FI", 18),
    ("FO", 18),
    ("FR", 27),
    ("GB", 22),
    ("GE", 22),
    ("GI", 23),
    ("GL", 18),
    ("GR", 27),
    ("GT", 28),
    ("HR", 21),
    ("HU", 28),
    ("IE", 22),
    ("IL", 23),
    ("IQ", 23),
    ("IS", 26),
    ("IT", 27),
    ("JO", 30),
    ("KW", 30),
    ("KZ", 20),
    ("LB", 28),
    ("LC", 32),
    ("LI", 21),
    ("LT", 20),
    ("LU", 20),
    ("LV", 21),
    ("MC", 27),
    ("MD", 24),
    ("ME", 22),
    ("MK", 19),
    ("MR", 27),
    ("MT", 31),
    ("MU", 30),
    ("NL", 18),
    ("NO", 15),
    ("PK", 24),
    ("PL", 28),
    ("PS", 29),
    ("PT", 25),
    ("QA", 29),
    ("RO", 24),
    ("RS", 22),
    ("SA", 24),
    ("SC", 31),
    ("SE", 24),
    ("SI", 19),
    ("SK", 24),
    ("SM", 27),
    ("ST", 25),
    ("SV", 28),
    ("TL", 23),
    ("TN", 24),
    ("TR", 26),
    ("UA", 29),
    ("VA", 22),
    ("VG", 24),
    ("XK", 20),
];

/// validators.iban_ok for ASCII text.
fn iban_ok_ascii(value: &str) -> bool {
    let s: Vec<u8> = value
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if s.len() < 15 || s.len() > 34 || !s[..2].iter().all(u8::is_ascii_alphabetic) {
        return false;
    }
    if !s[2..4].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let country = std::str::from_utf8(&s[..2]).unwrap_or("");
    if let Some(&(_, len)) = IBAN_LENGTHS.iter().find(|(c, _)| *c == country) {
        if s.len() != len {
            return false;
        }
    }
    let mut rem: u64 = 0;
    for &b in s[4..].iter().chain(&s[..4]) {
        let v = if b.is_ascii_digit() {
            (b - b'0') as u64
        } else {
            (b - b'A' + 10) as u64
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// validators.luhn_ok over `chars` (digits by `str.isdigit`, value `ord - 48`).
fn luhn_ok(t: &Text, a: usize, b: usize) -> bool {
    let digits: Vec<i64> = (a..b)
        .filter(|&i| t.f[i] & DIGIT != 0)
        .map(|i| t.c[i] as i64 - 48)
        .collect();
    if !(12..=19).contains(&digits.len()) {
        return false;
    }
    let mut total: i64 = 0;
    for (i, &d) in digits.iter().rev().enumerate() {
        let mut d = d;
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        total += d;
    }
    total.rem_euclid(10) == 0
}

/// validators.ssn_ok.
fn ssn_ok(t: &Text, a: usize, b: usize) -> bool {
    let d: Vec<char> = (a..b)
        .filter(|&i| t.f[i] & DIGIT != 0)
        .map(|i| t.c[i])
        .collect();
    if d.len() != 9 || d.iter().all(|&c| c == d[0]) {
        return false;
    }
    let s: String = d.iter().collect();
    let (area, group, serial) = (&s[..], &d[3..5], &d[5..]);
    let area3: String = d[..3].iter().collect();
    if area3 == "000" || area3 == "666" || d[0] == '9' {
        return false;
    }
    if group == ['0', '0'] || serial == ['0', '0', '0', '0'] {
        return false;
    }
    !matches!(area, "078051120" | "219099999" | "123456789")
}

/// IPv4 by ipaddress.ip_address: four ASCII decimal octets <= 255 without
/// leading zeros.
fn ip4_ok_ascii(value: &str) -> bool {
    let parts: Vec<&str> = value.split('.').collect();
    parts.len() == 4
        && parts.iter().all(|o| {
            !o.is_empty()
                && o.len() <= 3
                && o.bytes().all(|b| b.is_ascii_digit())
                && !(o.len() > 1 && o.starts_with('0'))
                && o.parse::<u32>().is_ok_and(|v| v <= 255)
        })
}

pub(super) const SSN_CONTEXT: &[&str] = &[
    "ssn",
    "social security",
    "social-security",
    "ss#",
    "ss #",
    "taxpayer",
];
pub(super) const NOT_PHONE_CONTEXT: &[&str] = &[
    "licen",
    "account",
    "order",
    "passport",
    "invoice",
    "ticket",
    "policy",
    "member",
    "customer",
    "serial",
    "tracking",
    "reference",
    "id ",
    "id:",
    "id#",
    "zip",
    "postal",
];
pub(super) const PHONE_CONTEXT: &[&str] = &[
    "phone",
    "tel",
    "call",
    "mobile",
    "cell",
    "fax",
    "number",
    "contact",
    "reach",
    "text",
    "whatsapp",
    "sms",
    "dial",
    "ring",
    "landline",
    "answering",
];
pub(super) const STRONG_PHONE_CONTEXT: &[&str] = &[
    "phone", "tel", "call", "mobile", "cell", "fax", "whatsapp", "dial", "landline",
];
pub(super) const OTHER_NUMBER_STEMS: &[&str] = &[
    "licen",
    "acc",
    "order",
    "passport",
    "invoice",
    "ticket",
    "policy",
    "member",
    "customer",
    "serial",
    "tracking",
    "ref",
    "zip",
    "post",
    "routing",
    "case",
    "claim",
    "booking",
    "confirmation",
    "verification",
    "employee",
    "student",
    "badge",
    "isbn",
    "pin",
    "otp",
];
pub(super) const UNIT_BEFORE: &[&str] =
    &["apt", "apt.", "suite", "box", "unit", "ste", "flat", "room"];

fn re(p: &str) -> Regex {
    Regex::new(p).expect("a valid check pattern")
}

// On `value_rendering` (decimal digits as "0", letters folded, ASCII kept).
static EXT: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)[ ]?(?:x|ext\.?|extension)[ ]?0{1,6}\z"));
static DATE_SHAPE: LazyLock<Regex> = LazyLock::new(|| {
    re(r"(?-u)^(?:0{4}[./-]0{1,2}[./-]0{1,2}|0{1,2}[./-]0{1,2}[./-]0{2,4})(?:[ ]0{1,2})?\z")
});
static DECIMAL_SHAPE: LazyLock<Regex> = LazyLock::new(|| re(r"(?-u)^0+\.0+\z"));
static OTHER_SHAPE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^(?:0{4,5}-0{3}|\(?0{4}[ ]?-0{4})\z"));
// On `context_rendering` (letters folded, ASCII kept, other white space
// 0x0b, other word characters "_", else 0x7f): Python's `$` is `\n?\z`.
static PHONE_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)^[ \t\-]*(?:,?[ ](?:is|was)[ ](?:my|our|his|her|their|the)[ ])?",
        r"\(?(?:office|fax|mobile|home|work|cell|tel|phone)"
    ))
});
static OTHER_NUMBER_LABEL: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)(?:licen[cs]e|account|acct|order|passport|invoice|ticket|policy|member(?:ship)?|",
        r"customer|serial|tracking|reference|ref|zip|postal|post|routing|case|claim|booking|",
        r"confirmation|verification|employee|student|badge|isbn|pin|otp)",
        r"[^0-9a-z_]{0,3}(?:(?:number|num|no|code|id|#)[^0-9a-z_]{0,3})?",
        r"(?:(?:is|was|are)[^0-9a-z_]{0,3})?\n?\z"
    ))
});

fn fold(c: char) -> Option<u8> {
    match c {
        'A'..='Z' => Some(c.to_ascii_lowercase() as u8),
        '\u{130}' | '\u{131}' => Some(b'i'),
        '\u{17f}' => Some(b's'),
        '\u{212a}' => Some(b'k'),
        _ => None,
    }
}

fn value_rendering(t: &Text, a: usize, b: usize) -> Vec<u8> {
    (a..b)
        .map(|i| {
            let c = t.c[i];
            if t.f[i] & DECIMAL != 0 {
                b'0'
            } else if let Some(f) = fold(c) {
                f
            } else if c.is_ascii() {
                c as u8
            } else {
                0x7f
            }
        })
        .collect()
}

fn context_rendering(t: &Text, a: usize, b: usize) -> Vec<u8> {
    (a..b)
        .map(|i| {
            let c = t.c[i];
            let fl = t.f[i];
            if let Some(f) = fold(c) {
                f
            } else if c.is_ascii() && !matches!(c, '\x1c'..='\x1f') {
                c as u8
            } else if fl & super::text::SPACE != 0 {
                0x0b
            } else if fl & WORD != 0 {
                b'_'
            } else {
                0x7f
            }
        })
        .collect()
}

pub struct Validated {
    pub iban: Vec<(usize, usize)>,
    pub card: Vec<(usize, usize)>,
    pub ip4: Vec<(usize, usize)>,
    pub ssn: Vec<(usize, usize)>,
    pub phone: Vec<(usize, usize)>,
}

pub fn validate(py: Python<'_>, t: &Text, spans: &Spans, checks: &Checks) -> PyResult<Validated> {
    let v = V { py, t, checks };
    let mut out = Validated {
        iban: Vec::new(),
        card: Vec::new(),
        ip4: Vec::new(),
        ssn: Vec::new(),
        phone: Vec::new(),
    };
    for &(s, e) in &spans.iban {
        if let Some(f) = v.iban(s, e)? {
            out.iban.push(f);
        }
    }
    for &(s, e) in &spans.card {
        if v.card(s, e) {
            out.card.push((s, e));
        }
    }
    for &(s, e) in &spans.ip4 {
        let value = t.string(s, e);
        let ok = if value.is_ascii() {
            ip4_ok_ascii(&value)
        } else {
            call(py, &checks.ip_ok, (value,))?
        };
        if ok {
            out.ip4.push((s, e));
        }
    }
    for &(s, e) in &spans.ssn {
        if ssn_ok(t, s, e) && (t.c[s + 3] == '-' || v.has_context(s, SSN_CONTEXT, 48)) {
            out.ssn.push((s, e));
        }
    }
    for &(s, e) in &spans.phone {
        if e - s >= 7 && v.phone_ok(s, e)? {
            let plus = t.c[s] == '+' || (t.c[s] == '(' && t.at(s + 1) == Some('+'));
            if plus || !v.other_number(s) {
                out.phone.push((s, e));
            }
        }
    }
    Ok(out)
}

struct V<'a, 'p> {
    py: Python<'a>,
    t: &'a Text<'p>,
    checks: &'a Checks,
}

impl V<'_, '_> {
    fn before_lower(&self, start: usize, window: usize) -> String {
        let (a, b) = self.t.span(start.saturating_sub(window), start);
        self.t.lower(self.py, a, b).to_string()
    }

    /// patterns.has_context.
    fn has_context(&self, start: usize, words: &[&str], window: usize) -> bool {
        let before = self.before_lower(start, window);
        words.iter().any(|w| before.contains(w))
    }

    fn iban(&self, s: usize, e: usize) -> PyResult<Option<(usize, usize)>> {
        let start = s - 2;
        let mut value = self.t.string(start, e);
        let ascii = value.is_ascii();
        loop {
            let ok = if ascii {
                iban_ok_ascii(&value)
            } else {
                call(self.py, &self.checks.iban_ok, (value.clone(),))?
            };
            if ok {
                return Ok(Some((start, start + value.chars().count())));
            }
            let Some(cut) = value.rfind(' ') else {
                return Ok(None);
            };
            if value[..cut].chars().count() < 15 {
                return Ok(None);
            }
            value.truncate(cut);
        }
    }

    fn card(&self, s: usize, e: usize) -> bool {
        let t = self.t;
        let all_digits = (s..e).all(|i| t.f[i] & DIGIT != 0);
        let four = e - s >= 4 && (s..s + 4).all(|i| t.f[i] & DIGIT != 0);
        let fifth = s + 4 < e && t.f[s + 4] & DIGIT != 0;
        if !(all_digits || (four && !fifth)) {
            return false;
        }
        luhn_ok(t, s, e)
    }

    /// patterns._phone_ok; what it cannot decide here goes to Python.
    fn phone_ok(&self, s: usize, e: usize) -> PyResult<bool> {
        let t = self.t;
        let py = self.py;
        // code points above the BMP nearby: Python decides (lower-cased
        // context needs their classes)
        let (ca, cb) = t.span(s.saturating_sub(48), e + 48);
        if t.c[ca..cb].iter().any(|&c| c as u32 >= 0x10000) {
            return call(
                py,
                &self.checks.phone_ok,
                (t.string(0, t.len()), s, t.string(s, e)),
            );
        }
        if t.c[s..e].iter().filter(|&&c| c == '/').count() > 1 {
            return Ok(false);
        }
        let before = self.before_lower(s, 8);
        if let Some(last) = before
            .split(|c: char| t.is_space_char(c))
            .rfind(|w| !w.is_empty())
        {
            if UNIT_BEFORE.contains(&last) {
                return Ok(false);
            }
        }
        let rendered = value_rendering(t, s, e);
        let core_end = match EXT.find(&rendered) {
            Some(m) => s + m.start(),
            None => e,
        };
        let core = &rendered[..core_end - s];
        let digits = (s..core_end).filter(|&i| t.f[i] & DIGIT != 0).count();
        if !(6..=15).contains(&digits) {
            return Ok(false);
        }
        if DATE_SHAPE.is_match(core) || DECIMAL_SHAPE.is_match(core) {
            return Ok(false);
        }
        if digits == 13 && self.isbn13(s, core_end) {
            return Ok(false);
        }
        if core.contains(&b'/') && !self.slash_ok(s, core_end) {
            return Ok(false);
        }
        if core.starts_with(b"+") || core.starts_with(b"(+") {
            return call(py, &self.checks.possible, (t.string(s, core_end),));
        }
        let groups: Vec<usize> = core
            .split(|b| matches!(b, b' ' | b'.' | b'/' | b'(' | b')' | b'-'))
            .filter(|g| !g.is_empty())
            .map(|g| g.len())
            .collect();
        let after = |t: &Text| {
            let mut p = e;
            while matches!(t.at(p), Some(' ' | '\t' | '-')) {
                p += 1;
            }
            let (a, b) = t.span(e, p + 40);
            PHONE_AFTER.is_match(&context_rendering(t, a, b))
        };
        if digits == 6 {
            let even = groups.len() >= 2 && groups.iter().all(|&g| g == groups[0]);
            return Ok(even
                && (self.cue_before(s, STRONG_PHONE_CONTEXT) || after(t))
                && !self.has_context(s, NOT_PHONE_CONTEXT, 48));
        }
        let has = |chars: &[u8]| core.iter().any(|b| chars.contains(b));
        if groups.len() == 1
            || (groups.len() == 2 && core.contains(&b' ') && !has(b"-.(/"))
            || OTHER_SHAPE.is_match(core)
        {
            let cue = self.cue_before(s, PHONE_CONTEXT) || after(t);
            return Ok(cue && !self.has_context(s, NOT_PHONE_CONTEXT, 48));
        }
        if !has(b" -()") && groups.iter().min().is_some_and(|&g| g < 2) {
            return Ok(false);
        }
        Ok(groups.iter().max().is_some_and(|&g| g <= 8))
    }

    /// validators.isbn13_ok over text[a:b].
    fn isbn13(&self, a: usize, b: usize) -> bool {
        let t = self.t;
        let d: Vec<char> = (a..b)
            .filter(|&i| t.f[i] & DIGIT != 0)
            .map(|i| t.c[i])
            .collect();
        if d.len() != 13 || !(d[..3] == ['9', '7', '8'] || d[..3] == ['9', '7', '9']) {
            return false;
        }
        let sum: i64 = d
            .iter()
            .enumerate()
            .map(|(i, &c)| (c as i64 - 48) * if i % 2 == 1 { 3 } else { 1 })
            .sum();
        sum.rem_euclid(10) == 0
    }

    /// patterns._slash_ok over text[a:b].
    fn slash_ok(&self, a: usize, b: usize) -> bool {
        let t = self.t;
        let Some(k) = (a..b).find(|&i| t.c[i] == '/') else {
            return true;
        };
        if (k + 1..b).any(|i| t.c[i] == '/') {
            return false;
        }
        let head = (a..k).filter(|&i| t.f[i] & DIGIT != 0).count();
        let tail = (k + 1..b).filter(|&i| t.f[i] & DIGIT != 0).count();
        head <= 6 && 6 <= tail
    }

    /// patterns._cue_before: a cue word starting (not inside a word) in the
    /// lower-cased 48 characters before `start`.
    fn cue_before(&self, start: usize, words: &[&str]) -> bool {
        let before: Vec<char> = self.before_lower(start, 48).chars().collect();
        let letter = |c: char| self.t.char_flags(c) & LETTER != 0;
        (0..before.len()).any(|i| {
            (i == 0 || !letter(before[i - 1]))
                && words.iter().any(|w| {
                    let w: Vec<char> = w.chars().collect();
                    before.len() - i >= w.len() && before[i..i + w.len()] == w[..]
                })
        })
    }

    /// patterns._other_number.
    fn other_number(&self, start: usize) -> bool {
        let t = self.t;
        let lo = start.saturating_sub(40);
        let before = t.lower(self.py, lo, start);
        OTHER_NUMBER_STEMS.iter().any(|w| before.contains(w))
            && OTHER_NUMBER_LABEL.is_match(&context_rendering(t, lo, start))
    }
}
