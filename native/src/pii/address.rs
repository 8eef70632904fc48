//! STREET_ADDRESS: address.py's `find_addresses` step by step over a `Text`
//! (same windows, tokens, kinds, anchors and extension).
use std::sync::LazyLock;

use pyo3::prelude::*;
use regex::bytes::Regex;

use super::text::{Lowered, Text, ALPHA, DECIMAL, DIGIT, SPACE, WORD};
use super::{Words, COMMON, PLACES, STREET};

/// address.UNITS.
fn is_unit(s: &str) -> bool {
    matches!(
        s,
        "apt"
            | "apt."
            | "apartment"
            | "suite"
            | "ste"
            | "ste."
            | "unit"
            | "box"
            | "p.o."
            | "po"
            | "p.o.box"
            | "psc"
            | "uss"
            | "usns"
            | "usnv"
            | "fpo"
            | "apo"
            | "dpo"
            | "floor"
            | "fl"
            | "fl."
            | "flat"
            | "room"
            | "rm"
            | "bldg"
            | "bldg."
            | "building"
            | "no."
            | "nr."
            | "lot"
    )
}
pub const STREET_ENDINGS: &[&str] = &[
    "strasse", "straße", "stasse", "gasse", "weg", "platz", "allee", "katu", "tie", "vej", "gade",
    "gatan", "vägen", "veien", "gata", "laan", "straat", "steeg", "utca", "ulica", "weg.", "str.",
    "hrauni", "vegur", "gata", "stræde", "plein", "kuja", "polku",
];
const WINDOW: usize = 56;
const MAX_GAP: usize = 3;

/// `lower.endswith(STREET_ENDINGS)`, the last byte compared first.
fn street_ending(lower: &str) -> bool {
    let last = lower.as_bytes().last().copied();
    STREET_ENDINGS
        .iter()
        .any(|s| s.as_bytes().last().copied() == last && lower.ends_with(s))
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Num,
    Zip,
    Unit,
    Street,
    Place,
    Other,
    Common,
    Upper,
    Cap,
    Word,
}
use Kind::*;

fn anchor_kind(k: Kind) -> bool {
    matches!(k, Num | Zip | Unit | Street)
}
fn body_kind(k: Kind) -> bool {
    matches!(k, Num | Zip | Unit | Street | Cap | Place | Upper)
}
fn wordy(k: Kind) -> bool {
    matches!(k, Cap | Upper | Word | Place)
}

/// address.NUM_RE and ZIP_RE on a rendering where every decimal digit is "0"
/// (Python's `\d`), ASCII is kept and anything else is 0x7f.
static NUM: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^(?:0{1,5}[A-Za-z]?|0{1,5}[/-]0{1,5}[A-Za-z]?)\z").expect("NUM")
});
static ZIP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?-u)^(?:0{4,6}(?:-0{4})?|[A-Z]{1,2}0[A-Z0]?|0[A-Z]{2}|[A-Z]0[A-Z]|0[A-Z]0)\z")
        .expect("ZIP")
});

/// address.CUE_RE: the part after the first letter, per first letter, on
/// `Text::folded` (the Python pattern's `(?i:...)`).
static CUE_BODIES: LazyLock<Vec<(u8, Regex)>> = LazyLock::new(|| {
    [
        (b'a', r"ddress(?:[\t ]+is)?|ddress[\t ]*:|rrived[\t ]+at"),
        (b'l', r"ives?[\t ]+(?:at|in)|iving[\t ]+at|ocated[\t ]+at"),
        (b'm', r"oved[\t ]+to"),
        (b's', r"en[dt](?:[\t ]+it)?[\t ]+to|hip(?:ped)?[\t ]+to"),
        (b'd', r"eliver(?:ed)?[\t ]+to"),
        (b'i', r"s[\t ]+at"),
        (b'z', r"ip[\t ]*(?:code)?(?:[\t ]+is)?"),
        (b'p', r"ost(?:al)?[\t ]*code(?:[\t ]+is)?"),
        (b'c', r"orner[\t ]+of"),
    ]
    .into_iter()
    .map(|(k, body)| {
        let re = Regex::new(&format!(r"(?-u)^(?:{body})[\t :,]*")).expect("cue body");
        (k, re)
    })
    .collect()
});

pub struct Addresses<'a, 'p> {
    /// Kinds of the tokens seen, by start (end and kind): a window that
    /// runs on is scanned again.
    seen: std::cell::RefCell<rustc_hash::FxHashMap<usize, (usize, Kind)>>,
    py: Python<'a>,
    t: &'a Text<'p>,
    g: &'a Words,
    cased: bool,
}

type Tok = (usize, usize);

impl<'a, 'p> Addresses<'a, 'p> {
    pub fn new(py: Python<'a>, t: &'a Text<'p>, g: &'a Words) -> Self {
        let n = t.len();
        let cased = !(t.islower(0, n) || t.isupper(0, n));
        Addresses {
            seen: Default::default(),
            py,
            t,
            g,
            cased,
        }
    }

    fn lower(&self, a: usize, b: usize) -> Lowered {
        self.t.lower(self.py, a, b)
    }

    pub fn find(self, barriers: &[(usize, usize)]) -> Vec<(usize, usize)> {
        let t = self.t;
        let size = t.len();
        let mut ordered = barriers.to_vec();
        ordered.sort_unstable();
        let blank = self.blanked(&ordered);
        let digit = |i: usize| t.f[i] & DECIMAL != 0 && !blank[i];
        // WINDOWS_RE: digit runs less than two margins apart share a window
        let mut windows = Vec::new();
        let mut i = 0;
        while i < size {
            if !digit(i) {
                i += 1;
                continue;
            }
            let start = i;
            let mut end = i;
            let mut j = i;
            loop {
                while j < size && digit(j) {
                    j += 1;
                }
                end = end.max(j);
                let mut k = j;
                while k < size && k - j < 2 * WINDOW && !digit(k) {
                    k += 1;
                }
                if k < size && digit(k) {
                    j = k;
                } else {
                    break;
                }
            }
            windows.push((start.saturating_sub(WINDOW), (end + WINDOW).min(size)));
            i = end;
        }
        if windows.is_empty() {
            return Vec::new();
        }
        let mut out: Vec<(usize, usize)> = Vec::new();
        for (mut lo, mut hi) in windows {
            while lo > 0 && t.f[lo - 1] & SPACE == 0 {
                lo -= 1;
            }
            let found = loop {
                let (found, reached_end) = self.scan_window(lo, hi, &ordered);
                if !reached_end || hi >= size {
                    break found;
                }
                hi = (hi + WINDOW).min(size);
            };
            for f in found {
                if out.last().is_none_or(|l| f.0 >= l.1) {
                    out.push(f);
                }
            }
        }
        out
    }

    /// address._blank: which characters the barriers (and the digit runs
    /// they touch) blank out.
    fn blanked(&self, ordered: &[(usize, usize)]) -> Vec<bool> {
        let t = self.t;
        let size = t.len();
        let mut blank = vec![false; size];
        let mut pos = 0;
        for &(s0, e0) in ordered {
            if e0 <= s0 {
                continue;
            }
            let (mut s, mut e) = (s0, e0);
            if s < size && t.f[s] & DECIMAL != 0 {
                while s > 0 && t.f[s - 1] & DECIMAL != 0 {
                    s -= 1;
                }
            }
            if e >= 1 && e - 1 < size && t.f[e - 1] & DECIMAL != 0 {
                while e < size && t.f[e] & DECIMAL != 0 {
                    e += 1;
                }
            }
            let s = s.max(pos);
            if e > s {
                for b in &mut blank[s..e.min(size)] {
                    *b = true;
                }
                pos = e;
            }
        }
        blank
    }

    fn kind_seen(&self, tok: Tok) -> Kind {
        if let Some(&(end, kind)) = self.seen.borrow().get(&tok.0) {
            if end == tok.1 {
                return kind;
            }
        }
        let kind = self.kind(tok);
        self.seen.borrow_mut().insert(tok.0, (tok.1, kind));
        kind
    }

    fn kind(&self, tok: Tok) -> Kind {
        let t = self.t;
        let g = self.g;
        let (a, b) = tok;
        if (a..b).all(|i| t.f[i] & DECIMAL != 0) {
            let len = b - a;
            return if len <= 5 {
                Num
            } else if len <= 6 {
                Zip
            } else {
                Other
            };
        }
        let c0 = t.f[a];
        if c0 & DIGIT != 0 {
            let mut e = b;
            while e > a && t.c[e - 1] == '.' {
                e -= 1;
            }
            let bare = digits_rendering(t, a, e);
            return if NUM.is_match(&bare) {
                Num
            } else if ZIP.is_match(&bare) {
                Zip
            } else {
                Other
            };
        }
        let lower = self.lower(a, b);
        if is_unit(&lower) {
            return Unit;
        }
        let lists = g.of(&lower);
        if lists & STREET != 0 || (lower.chars().count() > 5 && street_ending(&lower)) {
            return Street;
        }
        if lists & PLACES != 0 {
            return Place;
        }
        if c0 & ALPHA == 0 {
            return Other;
        }
        let upper0 = t.isupper(a, a + 1);
        if lists & COMMON != 0 && (!self.cased || !upper0) {
            return Common;
        }
        if upper0 {
            if t.isupper(a, b) {
                return if ZIP.is_match(&digits_rendering(t, a, b)) {
                    Zip
                } else {
                    Upper
                };
            }
            return Cap;
        }
        Word
    }

    fn near(&self, a: Tok, b: Tok) -> bool {
        let t = self.t;
        let end = a.1;
        let last = t.c[a.1 - 1];
        if b.0 == end + 1 {
            return !matches!(t.c[end], ';' | ':') && !matches!(last, '!' | '?');
        }
        if b.0 - end > MAX_GAP + 2 {
            return false;
        }
        let gap = &t.c[end..b.0];
        if gap.iter().filter(|&&c| c == '\n').count() > 1 || matches!(last, '!' | '?') {
            return false;
        }
        !gap.iter().any(|c| matches!(c, '.' | '!' | '?' | ';' | ':'))
    }

    fn scan_window(&self, lo: usize, hi: usize, barriers: &[(usize, usize)]) -> (Vec<Tok>, bool) {
        let t = self.t;
        // TOKEN_RE: [^\s,;:()>"]+
        let sep = |i: usize| {
            t.f[i] & SPACE != 0 || matches!(t.c[i], ',' | ';' | ':' | '(' | ')' | '>' | '"')
        };
        let mut toks: Vec<Tok> = Vec::new();
        let mut i = lo;
        while i < hi {
            if sep(i) {
                i += 1;
                continue;
            }
            let s = i;
            while i < hi && !sep(i) {
                i += 1;
            }
            toks.push((s, i));
        }
        if toks.is_empty() {
            return (Vec::new(), false);
        }
        // starts of all tokens, the cut one too, then the window's end
        let mut starts: Vec<usize> = toks.iter().map(|t| t.0).collect();
        starts.push(hi);
        if hi < t.len() && t.f[hi] & SPACE == 0 {
            toks.pop();
            if toks.is_empty() {
                return (Vec::new(), true);
            }
        }
        let n = toks.len();
        let mut blocked = vec![false; n];
        for &(bs, be) in barriers {
            if be <= toks[0].0 || bs >= toks[n - 1].1 {
                continue;
            }
            let mut j = starts.partition_point(|&s| s <= bs).saturating_sub(1);
            while j < n && toks[j].0 < be {
                if toks[j].1 > bs {
                    blocked[j] = true;
                }
                j += 1;
            }
        }
        let kinds: Vec<Kind> = toks.iter().map(|&tok| self.kind_seen(tok)).collect();
        let mut cands: Vec<usize> = (0..n).filter(|&i| anchor_kind(kinds[i])).collect();
        let mut cued = vec![false; n];
        let mut any_cued = false;
        for end in self.cue_ends(lo.saturating_sub(40), hi) {
            let j = starts.partition_point(|&s| s < end);
            if j < n && starts[j] == end {
                cued[j] = true;
                any_cued = true;
            }
        }
        if any_cued {
            cands = (0..n)
                .filter(|&i| cued[i] || anchor_kind(kinds[i]))
                .collect();
        }
        let mut out = Vec::new();
        let mut reached_end = false;
        let mut next = 0;
        for c in cands {
            if c < next {
                continue;
            }
            let Some((lo_t, mut hi_t)) = self.anchor(&toks, &kinds, &blocked, c, cued[c]) else {
                continue;
            };
            while hi_t + 1 < n && !blocked[hi_t + 1] && self.near(toks[hi_t], toks[hi_t + 1]) {
                let nxt = kinds[hi_t + 1];
                let lower_street =
                    nxt == Word && !self.cased && hi_t + 2 < n && kinds[hi_t + 2] == Num;
                if body_kind(nxt) || lower_street {
                    hi_t += 1;
                } else {
                    break;
                }
            }
            reached_end = hi_t + 2 >= n;
            while hi_t > lo_t {
                let w = self.lower(toks[hi_t].0, toks[hi_t].1);
                if !matches!(&*w, "and" | "the" | "of") {
                    break;
                }
                hi_t -= 1;
            }
            let (start, mut end) = (toks[lo_t].0, toks[hi_t].1);
            let last = toks[hi_t];
            if end > start
                && t.c[end - 1] == '.'
                && !is_unit(&self.lower(last.0, last.1))
                && last.1 - last.0 > 3
            {
                end -= 1;
            }
            out.push((start, end));
            next = hi_t + 1;
        }
        (out, reached_end)
    }

    /// Ends of address.CUE_RE's matches in `text[pos:endpos]` (`finditer`).
    fn cue_ends(&self, pos: usize, endpos: usize) -> Vec<usize> {
        let t = self.t;
        let mut out = Vec::new();
        let mut folded: Option<Vec<u8>> = None;
        let mut p = pos;
        while p < endpos {
            let ch = t.c[p];
            let first = ch.to_ascii_lowercase();
            let is_first = ch.is_ascii_alphabetic() && "almsdizpc".contains(first);
            let alnum_before = p > 0 && t.f[p - 1] & WORD != 0 && t.c[p - 1] != '_';
            if !is_first || alnum_before {
                p += 1;
                continue;
            }
            let f = folded.get_or_insert_with(|| t.folded(pos, endpos));
            let body = CUE_BODIES
                .iter()
                .find(|(k, _)| *k == first as u8)
                .map(|(_, re)| re);
            match body.and_then(|re| re.find(&f[p + 1 - pos..])) {
                Some(m) => {
                    let end = p + 1 + m.end();
                    out.push(end);
                    p = end;
                }
                None => p += 1,
            }
        }
        out
    }

    fn anchor(
        &self,
        toks: &[Tok],
        kinds: &[Kind],
        blocked: &[bool],
        i: usize,
        cued: bool,
    ) -> Option<(usize, usize)> {
        if blocked[i] {
            return None;
        }
        let n = toks.len();
        let k = kinds[i];
        if k == Unit {
            let mut j = i + 1;
            if j < n && kinds[j] == Unit {
                j += 1;
            }
            if j < n && matches!(kinds[j], Num | Zip) && self.near(toks[j - 1], toks[j]) {
                return Some((i, j));
            }
            return None;
        }
        if cued
            && k != Common
            && (matches!(k, Num | Zip) || (i..n.min(i + 6)).any(|j| matches!(kinds[j], Num | Zip)))
        {
            return Some((i, i));
        }
        if k == Num {
            let mut j = i + 1;
            while j < n && j <= i + 6 && self.near(toks[j - 1], toks[j]) && !blocked[j] {
                if kinds[j] == Street || (kinds[j] == Num && (i + 1..j).any(|x| wordy(kinds[x]))) {
                    return Some((i, j));
                }
                if matches!(kinds[j], Common | Unit | Other) {
                    break;
                }
                j += 1;
            }
            return None;
        }
        if k == Street {
            let mut j = i + 1;
            while j < n && j <= i + 4 && self.near(toks[j - 1], toks[j]) && !blocked[j] {
                if kinds[j] == Num {
                    let mut lo = i;
                    while lo > 0
                        && lo + 3 > i
                        && matches!(kinds[lo - 1], Cap | Upper | Place)
                        && !blocked[lo - 1]
                        && self.near(toks[lo - 1], toks[lo])
                    {
                        lo -= 1;
                    }
                    return Some((lo, j));
                }
                if !matches!(kinds[j], Cap | Upper | Word | Place | Street) {
                    break;
                }
                j += 1;
            }
        }
        None
    }
}

/// A token for NUM/ZIP: decimal digits as "0", ASCII kept, else 0x7f.
fn digits_rendering(t: &Text, a: usize, b: usize) -> Vec<u8> {
    (a..b)
        .map(|i| {
            if t.f[i] & DECIMAL != 0 {
                b'0'
            } else if t.c[i].is_ascii() {
                t.c[i] as u8
            } else {
                0x7f
            }
        })
        .collect()
}
