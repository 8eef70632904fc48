//! LOCATION: address.py's `find_locations` step by step over a `Text`.
use pyo3::prelude::*;

use super::text::{Lowered, Text, CAP, LETTER};
use super::{Words, ENGLISH, FIRST, LAST, PLACES, PLACE_FIRST};

/// address.PLACE_CUES: what precedes an unlisted place.
pub(super) const PLACE_CUES: &[&str] = &[
    " in",
    " In",
    " IN",
    " from",
    " From",
    " FROM",
    " near",
    " Near",
    " visiting",
    " Visiting",
    " visit",
    " Visit",
    " city of",
    " City of",
    "where:",
    "Where:",
    "WHERE:",
    " via",
    " Via",
];

pub fn find_locations(
    py: Python<'_>,
    t: &Text,
    g: &Words,
    taken: &[(usize, usize)],
) -> Vec<(usize, usize)> {
    let n_chars = t.len();
    let cased = !(t.islower(0, n_chars) || t.isupper(0, n_chars));
    let mut out = Vec::new();
    let mut ordered = taken.to_vec();
    ordered.sort_unstable();
    let mut ends = Vec::with_capacity(ordered.len());
    let mut top = 0usize;
    for (i, &(_, e)) in ordered.iter().enumerate() {
        top = if i == 0 { e } else { top.max(e) };
        ends.push(top);
    }
    // CAP_WORD_RE (cased) or PLACE_WORD_RE: letters with inner ' ’ . -
    let mut words: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < n_chars {
        let starts_word = if cased {
            t.f[i] & CAP != 0 && (i == 0 || t.f[i - 1] & LETTER == 0)
        } else {
            t.f[i] & LETTER != 0
        };
        if !starts_word {
            i += 1;
            continue;
        }
        let s = i;
        i += 1;
        while t.has(i, LETTER) {
            i += 1;
        }
        while matches!(t.at(i), Some('\'' | '\u{2019}' | '.' | '-')) && t.has(i + 1, LETTER) {
            i += 1;
            while t.has(i, LETTER) {
                i += 1;
            }
        }
        words.push((s, i));
    }
    let n = words.len();
    if n == 0 {
        return out;
    }
    let lowers: Vec<Lowered> = words.iter().map(|&(a, b)| t.lower(py, a, b)).collect();
    let mut cand = vec![false; n];
    for k in 0..n {
        cand[k] = g.of(&lowers[k]) & (PLACES | PLACE_FIRST) != 0;
    }
    let mut cued = vec![false; n];
    if cased {
        // PLACE_CUE_RE: the space between a cue and a capital starts a word
        for (k, &(s, _)) in words.iter().enumerate() {
            if s >= 1
                && t.c[s - 1] == ' '
                && t.f[s] & CAP != 0
                && s >= 2
                && matches!(
                    t.c[s - 2],
                    'n' | 'N'
                        | 'm'
                        | 'M'
                        | 'r'
                        | 'R'
                        | 'g'
                        | 'G'
                        | 't'
                        | 'T'
                        | 'f'
                        | 'F'
                        | ':'
                        | 'a'
                        | 'A'
                )
                && PLACE_CUES.iter().any(|cue| t.ends_with(0, s - 1, cue))
            {
                cued[k] = true;
                cand[k] = true;
            }
        }
    }
    let overlaps = |start: usize, end: usize| {
        let k = ordered.partition_point(|&(s, _)| s < end);
        k > 0 && ends[k - 1] > start
    };
    let mut next = 0;
    for c in 0..n {
        if !cand[c] || c < next {
            continue;
        }
        let (s, e) = words[c];
        let lower = &lowers[c];
        let lists = g.of(lower);
        let mut span: Option<(usize, usize, usize)> = None;
        if lists & PLACE_FIRST != 0 {
            for width in [3, 2] {
                if c + width <= n {
                    let stop = words[c + width - 1].1;
                    if g.of(&collapse(py, t, s, stop)) & PLACES != 0 {
                        span = Some((s, stop, width));
                        break;
                    }
                }
            }
        }
        if span.is_none() && lists & PLACES != 0 {
            span = Some((s, e, 1));
        }
        if span.is_none() && cued[c] && !t.isupper(s, e) && lists & (ENGLISH | FIRST | LAST) == 0 {
            let mut j = c;
            while j + 1 < n
                && j < c + 2
                && words[j + 1].0 == words[j].1 + 1
                && t.c[words[j].1] == ' '
            {
                j += 1;
            }
            span = Some((s, words[j].1, j - c + 1));
        }
        if let Some((a, b, width)) = span {
            if !overlaps(a, b) {
                out.push((a, b));
                next = c + width;
            }
        }
    }
    out
}

/// `" ".join(text[a:b].lower().split())`: white space (all of it in the
/// BMP, so the table answers for every code point) collapsed to one space.
fn collapse(py: Python<'_>, t: &Text, a: usize, b: usize) -> String {
    let lower = t.lower(py, a, b);
    let mut out = String::with_capacity(lower.len());
    for part in lower
        .split(|c: char| t.is_space_char(c))
        .filter(|p| !p.is_empty())
    {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(part);
    }
    out
}
