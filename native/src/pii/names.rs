//! PERSON: names.py's `find_persons`, step by step (same runs, same scores,
//! same order of float additions), over a `Text`.
use pyo3::prelude::*;

use super::cues;
use super::text::{Lowered, Text, CAP, LETTER, SPACE, WORD};
use super::{Words, COMMON, COMMON_NAMES, ENGLISH as IN_ENGLISH, FIRST, LAST, PLACES, STREET};

pub const PARTICLES: &[&str] = &[
    "van", "der", "den", "de", "del", "della", "di", "da", "das", "dos", "du", "la", "le", "von",
    "zu", "bin", "binti", "ibn", "al", "el", "ben", "ter", "ten", "mac",
];
pub(super) const STRONG_TAILS: &[&str] = &[
    "is",
    "name",
    "name?",
    "am",
    "i'm",
    "i\u{2019}m",
    "dear",
    "signed",
    "by",
    "regards",
    "sincerely",
    "called",
    "named",
    "him",
    "her",
    "me",
    "to",
    "person",
    "contact",
    "patient",
    "customer",
    "client",
    "employee",
    "user",
    "beneficiary",
    "holder",
    "was",
    "from",
    "cc",
    "attn",
    "attn.",
    "attention",
    "meet",
    "met",
    "for",
    "with",
];
pub(super) const WEAK_TAILS: &[&str] = &[
    "by",
    "with",
    "and",
    "hi",
    "hello",
    "hey",
    "thanks",
    "you",
    "starring",
    "featuring",
    "told",
    "asked",
    "said",
    "says",
    "at",
    "married",
    "of",
    "wife",
    "husband",
    "friend",
    "manager",
    "director",
];
pub(super) const CONTRACTIONS: &[&str] = &["n't", "'m", "'re", "'ll", "'ve", "'d"];

const THRESHOLD: f64 = 1.0;
const W_KNOWN: f64 = 1.0;
const W_CUE: f64 = 1.0;
const W_SHAPE: f64 = 1.0;
const W_EMAIL: f64 = 1.0;
const W_SHAPE_START: f64 = 0.6;
const W_POSSESSIVE: f64 = 0.5;
const W_WEAK: f64 = 0.5;
const W_AFTER: f64 = 0.55;
const W_SINGLE: f64 = 0.45;
const W_LIST: f64 = 0.55;
const W_PERSON_CUE: f64 = 0.6;

const SKIP: i64 = 0;
const CUED: i64 = -1;
const SCORE: i64 = -2;
const ENGLISH: i64 = -3;
const IDENT: i64 = -4;

fn is_honorific(s: &str) -> bool {
    matches!(
        s,
        "mr" | "mrs"
            | "ms"
            | "miss"
            | "mx"
            | "dr"
            | "prof"
            | "professor"
            | "sir"
            | "madam"
            | "dame"
            | "lord"
            | "lady"
            | "rev"
            | "fr"
            | "sr"
            | "sra"
            | "srta"
            | "herr"
            | "frau"
            | "mme"
            | "mlle"
            | "monsieur"
            | "don"
            | "doña"
    )
}

fn is_org_suffix(s: &str) -> bool {
    matches!(
        s,
        "ltd"
            | "inc"
            | "llc"
            | "corp"
            | "co"
            | "plc"
            | "gmbh"
            | "ag"
            | "sa"
            | "group"
            | "company"
            | "bank"
            | "university"
            | "school"
            | "hospital"
            | "consulting"
            | "limited"
            | "partners"
            | "associates"
            | "foundation"
            | "institute"
    )
}

fn is_name_prefix(s: &str) -> bool {
    matches!(
        s,
        "mc" | "mac" | "de" | "di" | "da" | "du" | "la" | "le" | "van" | "von" | "fitz"
    )
}

fn is_particle(s: &str) -> bool {
    matches!(
        s,
        "van"
            | "der"
            | "den"
            | "de"
            | "del"
            | "della"
            | "di"
            | "da"
            | "das"
            | "dos"
            | "du"
            | "la"
            | "le"
            | "von"
            | "zu"
            | "bin"
            | "binti"
            | "ibn"
            | "al"
            | "el"
            | "ben"
            | "ter"
            | "ten"
            | "mac"
    )
}

fn ends_with_any(s: &str, tails: &[&str]) -> bool {
    tails.iter().any(|t| s.ends_with(t))
}

/// A word of a run: [start, end) in the text.
type W = (usize, usize);

pub struct Names<'a, 'p> {
    py: Python<'a>,
    t: &'a Text<'p>,
    g: &'a Words,
    emails: Option<String>,
    out: Vec<(usize, usize)>,
}

/// Runs of capitalised words (names.CAP_RUN_RE, `finditer`).
pub fn cap_runs(t: &Text) -> Vec<(usize, usize)> {
    let n = t.len();
    let mut memo = vec![UNKNOWN; n + 1];
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < n {
        let Some(p) = (pos..n).find(|&p| {
            t.f[p] & CAP != 0
                && (p == 0
                    || !(t.f[p - 1] & WORD != 0
                        || matches!(t.c[p - 1], '@' | '\'' | '\u{2019}' | '.' | '-')))
        }) else {
            break;
        };
        let y = letters_end(t, p + 1);
        match run_end(t, &mut memo, y) {
            Some(e) => {
                out.push((p, e));
                pos = e;
            }
            None => pos = p + 1,
        }
    }
    out
}

const UNKNOWN: u32 = u32::MAX;
const FAILS: u32 = u32::MAX - 1;

fn letters_end(t: &Text, mut i: usize) -> usize {
    while t.has(i, LETTER) {
        i += 1;
    }
    i
}

/// After `(?:(?:particle)[ ])*`: particles are lower case, so a capital after
/// them is the only way on and giving one back never helps.
fn skip_particles(t: &Text, mut z: usize) -> usize {
    'outer: loop {
        // every particle starts with one of these (and is ASCII)
        if !matches!(
            t.at(z),
            Some('a' | 'b' | 'd' | 'e' | 'i' | 'l' | 'm' | 't' | 'v' | 'z')
        ) {
            return z;
        }
        for p in PARTICLES {
            let len = p.len();
            if z + len < t.len()
                && t.c[z + len] == ' '
                && t.c[z..z + len].iter().copied().eq(p.chars())
            {
                z += len + 1;
                continue 'outer;
            }
        }
        return z;
    }
}

/// The ways on from the end of a word at `x`, in the order the regex engine
/// tries them: a hyphen or apostrophe inside the word, then a separator
/// (" ", ". ", ".", "-") and particles before the next capitalised word.
fn successors(t: &Text, x: usize) -> ([usize; 5], usize) {
    let mut s = [0usize; 5];
    let mut k = 0;
    let Some(ch) = t.at(x) else {
        return (s, 0);
    };
    if matches!(ch, '\'' | '\u{2019}' | '-') && t.has(x + 1, LETTER) {
        s[k] = letters_end(t, x + 1);
        k += 1;
    }
    let token = |z: usize, s: &mut [usize; 5], k: &mut usize| {
        let z = skip_particles(t, z);
        if t.has(z, CAP) {
            s[*k] = letters_end(t, z + 1);
            *k += 1;
        }
    };
    match ch {
        ' ' => token(x + 1, &mut s, &mut k),
        '.' => {
            if t.at(x + 1) == Some(' ') {
                token(x + 2, &mut s, &mut k);
            }
            token(x + 1, &mut s, &mut k);
        }
        '-' => token(x + 1, &mut s, &mut k),
        _ => {}
    }
    (s, k)
}

/// Where the run whose word ends at `x` ends: the first end, in the regex
/// engine's order of trying, where `(?![\w@])` holds (None: no match).
/// The state after a word is only its position, so ends are memoised.
fn run_end(t: &Text, memo: &mut [u32], x0: usize) -> Option<usize> {
    struct Frame {
        x: usize,
        succ: [usize; 5],
        len: usize,
        i: usize,
    }
    let frame = |x: usize| {
        let (succ, len) = successors(t, x);
        Frame { x, succ, len, i: 0 }
    };
    if memo[x0] == UNKNOWN {
        let mut stack = vec![frame(x0)];
        while let Some(top) = stack.last_mut() {
            if top.i < top.len {
                let y = top.succ[top.i];
                match memo[y] {
                    UNKNOWN => stack.push(frame(y)),
                    FAILS => top.i += 1,
                    e => {
                        memo[top.x] = e;
                        stack.pop();
                    }
                }
            } else {
                let x = top.x;
                let free = x >= t.len() || !(t.f[x] & WORD != 0 || t.c[x] == '@');
                memo[x] = if free { x as u32 } else { FAILS };
                stack.pop();
            }
        }
    }
    match memo[x0] {
        FAILS => None,
        e => Some(e as usize),
    }
}

/// Words of a run (names._WORD_SPLIT_RE): capitalised words and particles
/// followed by a space, with the start of the gap before each.
fn run_words(t: &Text, a: usize, b: usize) -> Vec<(usize, W)> {
    let mut out = Vec::new();
    let mut gap = a;
    let mut i = a;
    while i < b {
        if t.f[i] & CAP != 0 {
            let mut j = i + 1;
            while j < b && t.f[j] & LETTER != 0 {
                j += 1;
            }
            while j + 1 < b && matches!(t.c[j], '\'' | '\u{2019}' | '-') && t.f[j + 1] & LETTER != 0
            {
                j += 1;
                while j < b && t.f[j] & LETTER != 0 {
                    j += 1;
                }
            }
            out.push((gap, (i, j)));
            gap = j;
            i = j;
            continue;
        }
        let part = PARTICLES.iter().find_map(|p| {
            let len = p.len();
            if p.as_bytes()[0] as char != t.c[i] {
                return None;
            }
            (i + len < b && t.c[i + len] == ' ' && t.c[i..i + len].iter().copied().eq(p.chars()))
                .then_some(len)
        });
        if let Some(len) = part {
            out.push((gap, (i, i + len)));
            gap = i + len;
            i += len;
        } else {
            i += 1;
        }
    }
    out
}

impl<'a, 'p> Names<'a, 'p> {
    pub fn new(py: Python<'a>, t: &'a Text<'p>, g: &'a Words) -> Self {
        Names {
            py,
            t,
            g,
            emails: None,
            out: Vec::new(),
        }
    }

    fn lower(&self, w: W) -> Lowered {
        self.t.lower(self.py, w.0, w.1)
    }

    fn possessive(&self, w: W) -> bool {
        w.1 - w.0 >= 2 && self.t.c[w.1 - 1] == 's' && matches!(self.t.c[w.1 - 2], '\'' | '\u{2019}')
    }

    /// `_strip_possessive(word)[0]` as a span.
    fn strip(&self, w: W) -> W {
        if self.possessive(w) {
            (w.0, w.1 - 2)
        } else {
            w
        }
    }

    pub fn find(mut self, skip: &[(usize, usize)]) -> Vec<(usize, usize)> {
        let t = self.t;
        let n = t.len();
        if t.islower(0, n) || t.isupper(0, n) {
            return self.uncased();
        }
        for (base, run_end) in cap_runs(t) {
            if !skip.is_empty() {
                let k = skip.partition_point(|s| s.0 <= base);
                if k > 0 && skip[k - 1].1 >= run_end {
                    continue;
                }
            }
            let words: Vec<(usize, W)> = if !t.c[base..run_end]
                .iter()
                .any(|&c| c == ' ' || c == '.' || c == '-')
            {
                let w = (base, run_end);
                let kind = self.single_kind(w);
                if kind == SKIP || ((kind == CUED || kind == IDENT) && !self.strong_cue(base)) {
                    continue;
                }
                if kind == ENGLISH && sentence_start(t, base) && !self.strong_cue(base) {
                    continue;
                }
                if kind > 0 {
                    let (a, b) = t.span(run_end, run_end + 16);
                    if !self.org_or_street(self.next_word(a, b)) {
                        self.out.push((base, base + kind as usize));
                    }
                    continue;
                }
                vec![(base, w)]
            } else {
                run_words(t, base, run_end)
            };
            // split after a full stop unless it closes an initial or an honorific
            let mut segments: Vec<Vec<W>> = vec![vec![]];
            for (k, &(gap, w)) in words.iter().enumerate() {
                if k > 0 && t.c.get(gap) == Some(&'.') && gap < w.0 {
                    let prev = self.lower(words[k - 1].1);
                    if prev.chars().count() > 1 && !is_honorific(&prev) {
                        segments.push(vec![]);
                    }
                }
                segments.last_mut().expect("one segment").push(w);
                if self.possessive(w) {
                    segments.push(vec![]);
                }
            }
            for seg in segments {
                self.score_segment(base, seg);
            }
        }
        self.out
    }

    /// `text[a:b].lstrip(" ").split(" ", 1)[0].strip(".,")` as a span.
    fn next_word(&self, a: usize, b: usize) -> W {
        let c = &self.t.c;
        let mut a = a;
        while a < b && c[a] == ' ' {
            a += 1;
        }
        let mut e = a;
        while e < b && c[e] != ' ' {
            e += 1;
        }
        let mut s = a;
        while s < e && matches!(c[s], '.' | ',') {
            s += 1;
        }
        while e > s && matches!(c[e - 1], '.' | ',') {
            e -= 1;
        }
        (s, e)
    }

    fn org_or_street(&self, w: W) -> bool {
        let lower = self.lower(w);
        is_org_suffix(&lower)
            || (w.1 > w.0 && self.t.isupper(w.0, w.0 + 1) && self.g.of(&lower) & STREET != 0)
    }

    fn identifier(&self, w: W) -> bool {
        let t = self.t;
        if w.1 - w.0 < 5 || t.islower(w.0 + 1, w.1) {
            return false;
        }
        let is_low = |c: char| c.is_ascii_lowercase() || ('\u{df}'..='\u{24f}').contains(&c);
        let is_up = |c: char| c.is_ascii_uppercase() || ('\u{c0}'..='\u{de}').contains(&c);
        let mut i = w.0;
        while i + 1 < w.1 {
            if is_low(t.c[i]) && is_up(t.c[i + 1]) {
                let head = self.lower((w.0, i + 1));
                return !is_name_prefix(&head);
            }
            if t.f[i] & LETTER == 0 {
                return false;
            }
            i += 1;
        }
        false
    }

    fn single_kind(&self, w: W) -> i64 {
        let t = self.t;
        let g = self.g;
        if w.1 - w.0 == 1 {
            return SKIP;
        }
        if t.isupper(w.0, w.1) {
            return CUED;
        }
        if self.identifier(w) {
            return IDENT;
        }
        let plain = self.lower(w);
        let lower = plain.replace('\u{2019}', "'");
        if ends_with_any(&lower, CONTRACTIONS) {
            return SKIP;
        }
        let head = lower.split('\'').next().unwrap_or("");
        let head_lists = g.of(head);
        let lists = g.of(&lower);
        if head_lists & COMMON != 0
            || lists & STREET != 0
            || (lists & PLACES != 0 && lists & (FIRST | LAST) == 0)
        {
            return if head_lists & COMMON_NAMES != 0 {
                CUED
            } else {
                SKIP
            };
        }
        let name = lower.strip_suffix("'s").unwrap_or(&lower);
        let name_lists = g.of(name);
        if name_lists & IN_ENGLISH == 0 && name_lists & (FIRST | LAST) != 0 {
            return name.chars().count() as i64;
        }
        if g.of(&plain) & IN_ENGLISH != 0 {
            ENGLISH
        } else {
            SCORE
        }
    }

    fn strong_cue(&self, start: usize) -> bool {
        let t = self.t;
        let (a, b) = t.span(start.saturating_sub(30), start);
        let mut e = b;
        while e > a && matches!(t.c[e - 1], ' ' | ',' | ':' | '\t' | '\n') {
            e -= 1;
        }
        if !ends_with_any(&t.lower(self.py, a, e), STRONG_TAILS) {
            return false;
        }
        let mut rev = t.folded(a, b);
        rev.reverse();
        cues::STRONG_CUE_REV.is_match(&rev)
    }

    fn score_segment(&mut self, base: usize, seg: Vec<W>) {
        let _ = base;
        let t = self.t;
        let g = self.g;
        let mut seg: &[W] = &seg;
        let mut score = 0.0f64;
        let mut titled = false;
        while let Some(&w) = seg.first() {
            if !is_honorific(&self.lower(w)) {
                break;
            }
            seg = &seg[1..];
            score = W_CUE;
            titled = true;
        }
        while let Some(&w) = seg.first() {
            if !is_particle(&self.lower(w)) {
                break;
            }
            seg = &seg[1..];
        }
        let Some(&first_w) = seg.first() else {
            return;
        };
        let start = first_w.0;
        let mut at_start = sentence_start(t, start);
        let mut lists = true; // common and english (emptied by a strong cue)
        if score < THRESHOLD && self.strong_cue(start) {
            score = W_CUE;
            lists = false;
        }
        let common = |s: &str| lists && g.of(s) & COMMON != 0;
        let english = |s: &str| lists && g.of(s) & IN_ENGLISH != 0;
        while let (false, Some(&w)) = (titled, seg.first()) {
            let lw = self.lower(w);
            if !(common(&lw) || (at_start && english(&lw))) {
                break;
            }
            if matches!(&*lw, "dear" | "hi" | "hello" | "thanks") {
                score = score.max(W_CUE);
            }
            seg = &seg[1..];
            at_start = false;
        }
        for (k, &w) in seg.iter().enumerate() {
            if titled && k == 0 {
                continue;
            }
            let lw = self.lower(self.strip(w));
            let found = g.of(&lw);
            if found & STREET != 0 {
                return;
            }
            if (lists && found & COMMON != 0 && !is_particle(&lw)) || self.identifier(w) {
                seg = &seg[..k];
                break;
            }
        }
        while let Some(&w) = seg.last() {
            if !is_particle(&self.lower(w)) {
                break;
            }
            seg = &seg[..seg.len() - 1];
        }
        if seg.is_empty() || (seg[0].1 - seg[0].0 == 1 && seg.iter().all(|w| w.1 - w.0 == 1)) {
            return;
        }
        let last_w = seg[seg.len() - 1];
        let possessive = self.possessive(last_w);
        let end_word = self.strip(last_w);
        let mut known = 0usize;
        let mut unknown = 0usize;
        for &w in seg {
            let lw = self.lower(self.strip(w));
            if is_particle(&lw) {
                continue;
            }
            if w.1 - w.0 > 1 && t.isupper(w.0, w.1) {
                return;
            }
            let found = g.of(&lw);
            if found & (FIRST | LAST) != 0 {
                known += 1;
            } else {
                unknown += 1;
                if (lists && found & IN_ENGLISH != 0) || found & PLACES != 0 {
                    unknown += 1;
                }
            }
        }
        let start = seg[0].0;
        let end = end_word.1;
        let (aa, ab) = t.span(end + if possessive { 2 } else { 0 }, end + 40);
        if self.org_or_street(self.next_word(aa, ab)) {
            return;
        }
        if known > 0 {
            score += W_KNOWN;
        }
        let (ba, bb) = t.span(start.saturating_sub(30), start);
        let words_n = known + unknown;
        if score < THRESHOLD {
            if seg.len() >= 2 && unknown <= seg.len() {
                score += if at_start && !whole_line(t, start, end) {
                    W_SHAPE_START
                } else {
                    W_SHAPE
                };
            } else if seg.len() == 1 && unknown == 1 {
                score += W_SINGLE;
                let mut rev = t.cased(ba, bb);
                rev.reverse();
                let after = t.cased(aa, ab);
                if cues::LIST_BEFORE_REV.is_match(&rev)
                    || cues::LIST_AFTER.is_match(&after)
                    || (cues::PLURAL_AFTER.is_match(&after)
                        && cues::PAIR_BEFORE.is_match(&t.cased(ba, bb)))
                {
                    score += W_LIST;
                }
            }
            let after = t.folded(aa, ab);
            if possessive {
                score += W_POSSESSIVE;
                if cues::POSSESSED.is_match(&after) {
                    score += W_AFTER;
                }
            }
            let mut e = bb;
            while e > ba && matches!(t.c[e - 1], ' ' | ',') {
                e -= 1;
            }
            if ends_with_any(&t.lower(self.py, ba, e), WEAK_TAILS) {
                let before = t.folded(ba, bb);
                if cues::PERSON_CUE.is_match(&before) {
                    score += W_PERSON_CUE;
                } else if cues::WEAK_CUE.is_match(&before) {
                    score += W_WEAK;
                }
            }
            // after: a verb, a vocative ("town, Paul!"), a speaker's label
            let vocative = t.ends_with(ba, bb, ", ")
                && matches!(t.at(aa).filter(|_| aa < ab), Some('!' | '?'));
            if cues::AFTER.is_match(&after)
                || vocative
                || (cues::DIALOGUE.is_match(&after) && sentence_start(t, start))
            {
                score += W_AFTER;
            }
        }
        if score < THRESHOLD && t.c.contains(&'@') {
            if self.emails.is_none() {
                self.emails = Some(self.local_parts());
            }
            let emails = self.emails.as_deref().unwrap_or("");
            if seg
                .iter()
                .any(|&w| w.1 - w.0 > 2 && emails.contains(&*self.lower(w)))
            {
                score += W_EMAIL;
            }
        }
        if score >= THRESHOLD && words_n <= 5 {
            self.out.push((start, end));
        }
    }

    /// names._local_parts: what comes before the "@" of each word that has one.
    fn local_parts(&self) -> String {
        let t = self.t;
        let n = t.len();
        let mut parts: Vec<char> = Vec::new();
        let mut first = true;
        let mut pos = 0;
        while let Some(at) = (pos..n).find(|&i| t.c[i] == '@') {
            let mut s = at;
            while s > pos && t.f[s - 1] & SPACE == 0 {
                s -= 1;
            }
            if !first {
                parts.push(' ');
            }
            first = false;
            parts.extend_from_slice(&t.c[s..at]);
            pos = at;
            while pos < n && t.f[pos] & SPACE == 0 {
                pos += 1;
            }
        }
        lower_chars(self.py, t, &parts)
    }

    /// names._find_uncased: lower- or upper-cased text.
    fn uncased(mut self) -> Vec<(usize, usize)> {
        let t = self.t;
        let g = self.g;
        let n = t.len();
        let mut prev_end: Option<usize> = None;
        let mut cue_left: i64 = 0;
        let mut i = 0;
        while i < n {
            if t.f[i] & LETTER == 0 {
                i += 1;
                continue;
            }
            // WORD_RE: letters, with inner apostrophes and hyphens
            let ms = i;
            let mut j = letters_end(t, i);
            while matches!(t.at(j), Some('\'' | '\u{2019}' | '-')) && t.has(j + 1, LETTER) {
                j = letters_end(t, j + 1);
            }
            let me = j;
            i = j;
            let word = self.strip((ms, me));
            let lower = self.lower(word);
            let len = lower.chars().count();
            let found = g.of(&lower);
            let cued = cue_left > 0 && found & IN_ENGLISH == 0 && len > 2;
            cue_left -= 1;
            if !cued && (len < 3 || found & IN_ENGLISH != 0 || found & (FIRST | LAST) == 0) {
                if is_honorific(&lower) || self.strong_cue(me + 1) {
                    cue_left = 2;
                }
                continue;
            }
            if !cued {
                cue_left = 0;
            }
            let end = word.1;
            match (self.out.last_mut(), prev_end) {
                (Some(last), Some(pe)) if ms == pe + 1 && t.c[pe] == ' ' => last.1 = end,
                _ => self.out.push((ms, end)),
            }
            prev_end = Some(end);
        }
        self.out
    }
}

fn lower_chars(py: Python<'_>, t: &Text, chars: &[char]) -> String {
    if chars.iter().all(|c| c.is_ascii()) {
        return chars.iter().map(|c| c.to_ascii_lowercase()).collect();
    }
    let _ = t;
    super::text::python_lower(py, chars)
}

/// names._sentence_start.
pub fn sentence_start(t: &Text, start: usize) -> bool {
    let mut i = start;
    while i > 0
        && matches!(
            t.c[i - 1],
            ' ' | '\t' | '"' | '\'' | '\u{201c}' | '(' | '*' | '-'
        )
    {
        i -= 1;
    }
    if i == 0 {
        return true;
    }
    matches!(t.c[i - 1], '.' | '!' | '?' | '\n' | ':' | ';' | '>')
        || t.f[i - 1] & super::text::DIGIT != 0
}

fn whole_line(t: &Text, start: usize, end: usize) -> bool {
    matches!(t.at(end), None | Some('\n')) && sentence_start(t, start)
}
