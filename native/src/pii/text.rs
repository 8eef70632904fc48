//! A text as Python sees it: code points (offsets are Python `str` indices)
//! with Python's own character properties, taken from the running interpreter
//! (`str.isalpha`, `str.isupper`, `str.lower`, ...) so that Unicode version
//! differences between CPython and Rust cannot change a finding.
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyString;

pub const ALPHA: u16 = 1;
pub const DECIMAL: u16 = 1 << 1;
pub const DIGIT: u16 = 1 << 2;
pub const NUMERIC: u16 = 1 << 3;
pub const SPACE: u16 = 1 << 4;
pub const UPPER: u16 = 1 << 5;
pub const LOWER: u16 = 1 << 6;
pub const TITLE: u16 = 1 << 7;
/// Derived: Python `re`'s `\w` (alphanumeric or "_").
pub const WORD: u16 = 1 << 8;
/// Derived: `[^\W\d_]`, a letter for the scan's regexes.
pub const LETTER: u16 = 1 << 9;
/// Derived: an upper-case letter below U+0530 (the scripts the name scan tokenises).
pub const CAP: u16 = 1 << 10;
/// The eight base properties.
pub const BASE: u16 = 0xff;

/// `lower` table entry meaning "ask Python" (several code points, or context
/// dependent: final sigma).
pub const LOWER_PY: u32 = u32::MAX;

/// Character properties of the Basic Multilingual Plane, from the interpreter.
pub struct Props {
    flags: Vec<u16>,
    lower: Vec<u32>,
    /// `f(ch) -> (flags, lower)` for a code point above the BMP.
    astral: Py<PyAny>,
}

impl Props {
    pub fn new(flags: &[u8], lower: &[u8], astral: Py<PyAny>) -> PyResult<Self> {
        if flags.len() != 0x10000 || lower.len() != 4 * 0x10000 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "character tables must cover the BMP (65,536 flags, 65,536 u32 lower)",
            ));
        }
        let flags = flags
            .iter()
            .enumerate()
            .map(|(cp, &f)| derive(char::from_u32(cp as u32).unwrap_or('\0'), f as u16))
            .collect();
        let lower = lower
            .chunks_exact(4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        Ok(Props {
            flags,
            lower,
            astral,
        })
    }
}

fn derive(c: char, base: u16) -> u16 {
    let mut f = base;
    if base & (ALPHA | DECIMAL | DIGIT | NUMERIC) != 0 || c == '_' {
        f |= WORD;
    }
    if f & WORD != 0 && base & DECIMAL == 0 && c != '_' {
        f |= LETTER;
    }
    if (c as u32) < 0x530 && base & UPPER != 0 {
        f |= CAP;
    }
    f
}

pub struct Text<'p> {
    pub c: Vec<char>,
    pub f: Vec<u16>,
    props: &'p Props,
    /// Lower-case forms of the code points above the BMP in this text.
    astral_lower: HashMap<char, String>,
}

impl<'p> Text<'p> {
    pub fn new(py: Python<'_>, s: &str, props: &'p Props) -> PyResult<Self> {
        let c: Vec<char> = s.chars().collect();
        let mut f = Vec::with_capacity(c.len());
        let mut astral_lower = HashMap::new();
        let mut astral_flags: HashMap<char, u16> = HashMap::new();
        for &ch in &c {
            let cp = ch as u32;
            if cp < 0x10000 {
                f.push(props.flags[cp as usize]);
                continue;
            }
            let base = if let Some(&b) = astral_flags.get(&ch) {
                b
            } else {
                let (b, low): (u16, String) = props.astral.call1(py, (ch,))?.extract(py)?;
                astral_flags.insert(ch, b & BASE);
                astral_lower.insert(ch, low);
                b & BASE
            };
            f.push(derive(ch, base));
        }
        Ok(Text {
            c,
            f,
            props,
            astral_lower,
        })
    }

    pub fn len(&self) -> usize {
        self.c.len()
    }

    #[inline]
    pub fn has(&self, i: usize, flag: u16) -> bool {
        i < self.c.len() && self.f[i] & flag != 0
    }

    #[inline]
    pub fn at(&self, i: usize) -> Option<char> {
        self.c.get(i).copied()
    }

    /// `text[a:b]` with Python's clamping (a, b already >= 0).
    pub fn span(&self, a: usize, b: usize) -> (usize, usize) {
        let n = self.c.len();
        let b = b.min(n);
        (a.min(b), b)
    }

    /// Python's `str.lower()` of `text[a:b]`; a short ASCII slice (most
    /// words) is lower-cased on the stack.
    pub fn lower(&self, py: Python<'_>, a: usize, b: usize) -> Lowered {
        if b - a <= INLINE && self.c[a..b].iter().all(char::is_ascii) {
            let mut buf = [0u8; INLINE];
            for (k, &ch) in self.c[a..b].iter().enumerate() {
                buf[k] = (ch as u8).to_ascii_lowercase();
            }
            return Lowered::Inline(buf, (b - a) as u8);
        }
        Lowered::Heap(self.lower_string(py, a, b))
    }

    fn lower_string(&self, py: Python<'_>, a: usize, b: usize) -> String {
        let mut out = String::with_capacity(b - a);
        for &ch in &self.c[a..b] {
            let cp = ch as u32;
            if cp < 0x80 {
                out.push(ch.to_ascii_lowercase());
                continue;
            }
            if cp < 0x10000 {
                let l = self.props.lower[cp as usize];
                if l != LOWER_PY {
                    out.push(char::from_u32(l).unwrap_or(ch));
                    continue;
                }
            } else if let Some(low) = self.astral_lower.get(&ch) {
                out.push_str(low);
                continue;
            }
            // several code points or final sigma: ask Python for the whole slice
            return python_lower(py, &self.c[a..b]);
        }
        out
    }

    /// The flags of a code point of the BMP (0 above it).
    pub fn char_flags(&self, c: char) -> u16 {
        if (c as u32) < 0x10000 {
            self.props.flags[c as usize]
        } else {
            0
        }
    }

    /// The text of `text[a:b]`.
    pub fn string(&self, a: usize, b: usize) -> String {
        self.c[a..b].iter().collect()
    }

    /// Python's `str.isspace()` of one code point (all white space is in the BMP).
    pub fn is_space_char(&self, c: char) -> bool {
        (c as u32) < 0x10000 && self.props.flags[c as usize] & SPACE != 0
    }

    /// Python's `str.isupper()` of `text[a:b]`.
    pub fn isupper(&self, a: usize, b: usize) -> bool {
        let mut cased = false;
        for &fl in &self.f[a..b] {
            if fl & (LOWER | TITLE) != 0 {
                return false;
            }
            if fl & UPPER != 0 {
                cased = true;
            }
        }
        cased
    }

    /// Python's `str.islower()` of `text[a:b]`.
    pub fn islower(&self, a: usize, b: usize) -> bool {
        let mut cased = false;
        for &fl in &self.f[a..b] {
            if fl & (UPPER | TITLE) != 0 {
                return false;
            }
            if fl & LOWER != 0 {
                cased = true;
            }
        }
        cased
    }

    pub fn ends_with(&self, a: usize, b: usize, tail: &str) -> bool {
        let mut i = b;
        for ch in tail.chars().rev() {
            if i == a || self.c[i - 1] != ch {
                return false;
            }
            i -= 1;
        }
        true
    }

    /// A one-byte rendering of `text[a:b]` for the case-insensitive cue
    /// regexes: ASCII letters lower-cased (with the four non-ASCII letters
    /// Python's `re.IGNORECASE` matches to them: U+0130, U+0131 "i", U+017F
    /// "s", U+212A "k"), " " kept and other white space as a tab, other word
    /// characters as "_", U+2019 as 0x01, U+201C as 0x02, anything else 0x7f.
    pub fn folded(&self, a: usize, b: usize) -> Vec<u8> {
        (a..b)
            .map(|i| {
                let ch = self.c[i];
                match ch {
                    'A'..='Z' => ch.to_ascii_lowercase() as u8,
                    '\u{130}' | '\u{131}' => b'i',
                    '\u{17f}' => b's',
                    '\u{212a}' => b'k',
                    ' ' => b' ',
                    _ if self.f[i] & SPACE != 0 => b'\t',
                    _ if ch.is_ascii() => ch as u8,
                    '\u{2019}' => 1,
                    '\u{201c}' => 2,
                    _ if self.f[i] & WORD != 0 => b'_',
                    _ => 0x7f,
                }
            })
            .collect()
    }

    /// A one-byte rendering of `text[a:b]` for the case-sensitive regexes:
    /// ASCII kept, other white space as a tab, other capitals (`CAP`) as
    /// 0x04, other letters as 0x03, other word characters as "0", else 0x7f.
    pub fn cased(&self, a: usize, b: usize) -> Vec<u8> {
        (a..b)
            .map(|i| {
                let ch = self.c[i];
                let fl = self.f[i];
                if ch == ' ' {
                    b' '
                } else if fl & SPACE != 0 {
                    b'\t'
                } else if ch.is_ascii() {
                    ch as u8
                } else if fl & CAP != 0 {
                    4
                } else if fl & LETTER != 0 {
                    3
                } else if fl & WORD != 0 {
                    b'0'
                } else {
                    0x7f
                }
            })
            .collect()
    }
}

const INLINE: usize = 30;

/// A lower-cased slice: on the stack when short and ASCII.
pub enum Lowered {
    Inline([u8; INLINE], u8),
    Heap(String),
}

impl std::ops::Deref for Lowered {
    type Target = str;
    fn deref(&self) -> &str {
        match self {
            // only ASCII bytes are written inline
            Lowered::Inline(buf, len) => std::str::from_utf8(&buf[..*len as usize]).unwrap_or(""),
            Lowered::Heap(s) => s,
        }
    }
}

pub fn python_lower(py: Python<'_>, chars: &[char]) -> String {
    let s: String = chars.iter().collect();
    PyString::new(py, &s)
        .call_method0("lower")
        .and_then(|r| r.extract::<String>())
        .unwrap_or(s)
}
