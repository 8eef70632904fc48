//! The `hash-v1` featurizer of `switchman_protocol.featurize`, byte for byte.
//!
//! The Python module is the specification: a trained router depends on every
//! feature index, so this code must compute exactly what `analyze_set` and
//! `task_kind` compute there (tests compare the two on the shared data and on
//! generated text). It works on the prompt's UTF-8 bytes, which the caller
//! produces the way Python's `str.encode("utf-8", "replace")` does.
use std::cell::RefCell;
use std::sync::OnceLock;

/// Bytes of the prompt's start and end that are tokenized (`HEAD_CHARS`, `TAIL_CHARS`).
pub const HEAD: usize = 600;
pub const TAIL: usize = 300;
/// The longest sample: head, a newline, tail.
pub const SAMPLE_MAX: usize = HEAD + 1 + TAIL;
const BIGRAM: u64 = 0x9E37_79B1;
const SHAPE_SEED: u32 = 0x5EED;

/// Task kinds, in the order of `TASK_KINDS`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Kind {
    Code,
    Math,
    Extraction,
    Summarization,
    Translation,
    Classification,
    Reasoning,
    Qa,
    Chat,
}

impl Kind {
    pub const ALL: [Kind; 9] = [
        Kind::Code,
        Kind::Math,
        Kind::Extraction,
        Kind::Summarization,
        Kind::Translation,
        Kind::Classification,
        Kind::Reasoning,
        Kind::Qa,
        Kind::Chat,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Code => "code",
            Kind::Math => "math",
            Kind::Extraction => "extraction",
            Kind::Summarization => "summarization",
            Kind::Translation => "translation",
            Kind::Classification => "classification",
            Kind::Reasoning => "reasoning",
            Kind::Qa => "qa",
            Kind::Chat => "chat",
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

// ---- CRC-32 (zlib's: reflected polynomial 0xEDB88320) ------------------------

const fn crc_table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut k = 0;
        while k < 8 {
            c = if c & 1 != 0 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
            k += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
}

static CRC_TABLE: [u32; 256] = crc_table();

/// `zlib.crc32(data, start)`. Tokens are a few bytes long, where a byte-wise table
/// is as fast as anything wider.
pub fn crc32(data: &[u8], start: u32) -> u32 {
    let mut c = !start;
    for &b in data {
        c = CRC_TABLE[((c ^ b as u32) & 0xFF) as usize] ^ (c >> 8);
    }
    !c
}

// ---- the task classifier's word lists (`_KEYWORDS`, `_STRONG`, ...) -----------

/// Keyword kinds in `_ORDER`, the order in which they are counted.
const ORDER: [Kind; 7] = [
    Kind::Code,
    Kind::Translation,
    Kind::Summarization,
    Kind::Extraction,
    Kind::Math,
    Kind::Classification,
    Kind::Reasoning,
];
/// Kinds one strong word decides, in the order of `_STRONG`.
const STRONG_ORDER: [Kind; 4] = [
    Kind::Translation,
    Kind::Summarization,
    Kind::Extraction,
    Kind::Classification,
];
const KEYWORDS: [(Kind, &str); 7] = [
    (
        Kind::Code,
        "def python javascript typescript java rust golang sql regex bash function \
         functions implement compile compiler debug refactor stacktrace traceback \
         return returns code program script assert class method array string list \
         algorithm api bug",
    ),
    (
        Kind::Translation,
        "translate translation translated french german spanish chinese japanese \
         italian portuguese korean russian",
    ),
    (
        Kind::Summarization,
        "summary summarize summarise summarization tldr condense shorten",
    ),
    (
        Kind::Extraction,
        "extract extraction parse json fields field entities entity table csv yaml schema",
    ),
    (
        Kind::Math,
        "solve equation integral derivative probability calculate compute sum \
         remainder prime percent dollars total integer integers real fraction \
         triangle area radius polynomial frac sqrt many much cost",
    ),
    (
        Kind::Classification,
        "classify classification category categorize categorise sentiment label \
         spam toxic positive negative",
    ),
    (
        Kind::Reasoning,
        "puzzle clue clues logic following statement statements options choices \
         correct best true false infer",
    ),
];
const STRONG: [(Kind, &str); 4] = [
    (Kind::Translation, "translate translation"),
    (
        Kind::Summarization,
        "summarize summarise summarization tldr",
    ),
    (Kind::Extraction, "extract"),
    (Kind::Classification, "classify"),
];
const QUESTION_WORDS: &str = "who what when where which why how";

/// The classifier's word lists by the names of their Python originals
/// (`keywords:<kind>` for `_KEYWORDS`, `strong:<kind>` for `_STRONG`,
/// `question` for `_QUESTION_WORDS`), for the test that compares them.
pub fn word_lists() -> Vec<(String, Vec<&'static str>)> {
    let mut out = Vec::new();
    for (kind, list) in KEYWORDS {
        out.push((
            format!("keywords:{}", kind.name()),
            list.split_whitespace().collect(),
        ));
    }
    for (kind, list) in STRONG {
        out.push((
            format!("strong:{}", kind.name()),
            list.split_whitespace().collect(),
        ));
    }
    out.push((
        "question".to_string(),
        QUESTION_WORDS.split_whitespace().collect(),
    ));
    out
}

/// Flag bits of a lexicon word: bit `i` keyword of `ORDER[i]`, bit `8 + i` strong
/// word of `STRONG_ORDER[i]`, `QUESTION` a question word.
const STRONG_SHIFT: u32 = 8;
const QUESTION: u32 = 1 << 16;
const KEYWORD_MASK: u32 = (1 << ORDER.len()) - 1;
/// The lexicon's words are letter runs of these lengths (checked when it is built).
const WORD_MIN: usize = 3;
const WORD_MAX: usize = 14;

struct Lexicon {
    /// Open addressing on the word's CRC-32: 0 empty, else 1 + the word's id.
    slots: Vec<u16>,
    words: Vec<(&'static [u8], u32)>,
}

impl Lexicon {
    fn build() -> Lexicon {
        let mut words: Vec<(&'static [u8], u32)> = Vec::new();
        let mut add = |word: &'static str, flag: u32| {
            let bytes = word.as_bytes();
            assert!((WORD_MIN..=WORD_MAX).contains(&bytes.len()));
            assert!(bytes.iter().all(u8::is_ascii_lowercase));
            match words.iter_mut().find(|(w, _)| *w == bytes) {
                Some((_, flags)) => *flags |= flag,
                None => words.push((bytes, flag)),
            }
        };
        for (kind, list) in KEYWORDS {
            let bit = ORDER
                .iter()
                .position(|k| *k == kind)
                .expect("kind in ORDER");
            list.split_whitespace().for_each(|w| add(w, 1 << bit));
        }
        for (kind, list) in STRONG {
            let bit = STRONG_ORDER.iter().position(|k| *k == kind).expect("kind");
            list.split_whitespace()
                .for_each(|w| add(w, 1 << (STRONG_SHIFT + bit as u32)));
        }
        QUESTION_WORDS
            .split_whitespace()
            .for_each(|w| add(w, QUESTION));
        assert!(words.len() <= SEEN_WORDS * 64);
        let size = (words.len() * 4).next_power_of_two();
        let mut slots = vec![0u16; size];
        for (id, (word, _)) in words.iter().enumerate() {
            let mut i = crc32(word, 0) as usize & (size - 1);
            while slots[i] != 0 {
                i = (i + 1) & (size - 1);
            }
            slots[i] = id as u16 + 1;
        }
        Lexicon { slots, words }
    }

    /// The word's id and flags, if it is one of the lexicon's (`crc` is its CRC-32).
    #[inline]
    fn find(&self, word: &[u8], crc: u32) -> Option<(usize, u32)> {
        let mask = self.slots.len() - 1;
        let mut i = crc as usize & mask;
        loop {
            let slot = self.slots[i] as usize;
            if slot == 0 {
                return None;
            }
            let (w, flags) = self.words[slot - 1];
            if w == word {
                return Some((slot - 1, flags));
            }
            i = (i + 1) & mask;
        }
    }
}

fn lexicon() -> &'static Lexicon {
    static LEXICON: OnceLock<Lexicon> = OnceLock::new();
    LEXICON.get_or_init(Lexicon::build)
}

/// Words of the lexicon seen in one prompt, as a bit set (64 words per `u64`).
const SEEN_WORDS: usize = 4;

// ---- the sample and its tokens ------------------------------------------------

/// `_sample` of a prompt of at most `HEAD + TAIL` characters: its lower-cased UTF-8
/// bytes, cut to their first 600 and last 300 when longer than 900.
pub fn sample_whole(utf8: &[u8], out: &mut [u8; SAMPLE_MAX]) -> usize {
    if utf8.len() > HEAD + TAIL {
        return sample_ends(utf8, utf8, out);
    }
    out[..utf8.len()].copy_from_slice(utf8);
    out[..utf8.len()].make_ascii_lowercase(); // bytes.lower(): ASCII only
    utf8.len()
}

/// `_sample` of a longer prompt from the UTF-8 of its first `HEAD` and last `TAIL`
/// characters (each at least as many bytes): the head's first 600 bytes, a newline,
/// the tail's last 300, lower-cased.
pub fn sample_ends(head: &[u8], tail: &[u8], out: &mut [u8; SAMPLE_MAX]) -> usize {
    out[..HEAD].copy_from_slice(&head[..HEAD]);
    out[HEAD] = b'\n';
    out[HEAD + 1..].copy_from_slice(&tail[tail.len() - TAIL..]);
    out.make_ascii_lowercase();
    SAMPLE_MAX
}

/// `\s` of a bytes pattern, and what `bytes.rstrip()` strips.
#[inline]
fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C)
}

/// Decisive markers: (any code marker, any math marker, a code fence).
fn markers(raw: &[u8]) -> (bool, bool, bool) {
    const CODE: [&[u8]; 7] = [
        b"```",
        b"def ",
        b"#include",
        b"import ",
        b"()",
        b"write a function",
        b"write a python",
    ];
    const MATH: [&[u8]; 4] = [b"\\frac", b"\\sqrt", b"$$", b"\\("];
    let (mut code, mut math, mut fence) = (false, false, false);
    for i in 0..raw.len() {
        let rest = &raw[i..];
        match raw[i] {
            b'`' if rest.starts_with(CODE[0]) => {
                code = true;
                fence = true;
                break; // a fence decides both
            }
            b'd' | b'#' | b'i' | b'(' | b'w' if !code => {
                code = CODE[1..].iter().any(|m| rest.starts_with(m));
            }
            b'\\' | b'$' if !math => {
                math = MATH.iter().any(|m| rest.starts_with(m));
            }
            _ => {}
        }
    }
    (code, math, fence)
}

/// What one pass over the tokens learns for the task classifier.
struct Scan {
    seen: [u64; SEEN_WORDS],
    digits: u64,
    operator: bool,
    first_is_question: bool,
}

/// `_kind`: the task classifier's rules, in the Python code's order.
fn decide(raw: &[u8], code: bool, math: bool, scan: &Scan) -> Kind {
    if code {
        return Kind::Code;
    }
    if math {
        return Kind::Math;
    }
    let lex = lexicon();
    let mut strong = 0u32;
    let mut keywords = 0usize;
    let mut per_kind = [0usize; ORDER.len()];
    for (block, &bits) in scan.seen.iter().enumerate() {
        let mut bits = bits;
        while bits != 0 {
            let id = block * 64 + bits.trailing_zeros() as usize;
            bits &= bits - 1;
            let flags = lex.words[id].1;
            strong |= flags >> STRONG_SHIFT;
            if flags & KEYWORD_MASK != 0 {
                keywords += 1;
                for (k, count) in per_kind.iter_mut().enumerate() {
                    *count += (flags >> k & 1) as usize;
                }
            }
        }
    }
    for (i, kind) in STRONG_ORDER.iter().enumerate() {
        if strong >> i & 1 != 0 {
            return *kind;
        }
    }
    if keywords >= 2 {
        let (mut best, mut hits) = (None, 1);
        for (kind, &n) in ORDER.iter().zip(per_kind.iter()) {
            if n > hits {
                best = Some(*kind);
                hits = n;
            }
        }
        if let Some(kind) = best {
            return kind;
        }
    }
    if scan.digits >= 2 && scan.operator {
        return Kind::Math;
    }
    let end = raw.iter().rposition(|b| !is_space(*b));
    if scan.first_is_question || end.is_some_and(|i| raw[i] == b'?') {
        return Kind::Qa;
    }
    Kind::Chat
}

/// Tokenize the sample (`_TOKEN`: letter runs, digit runs, any other non-space
/// byte alone), feeding each token's CRC-32 to `feature` when it is given.
fn scan(raw: &[u8], mut feature: Option<&mut dyn FnMut(u32)>) -> Scan {
    let lex = lexicon();
    let mut out = Scan {
        seen: [0; SEEN_WORDS],
        digits: 0,
        operator: false,
        first_is_question: false,
    };
    let mut first = true;
    let n = raw.len();
    let mut i = 0;
    while i < n {
        let b = raw[i];
        let start = i;
        i += 1;
        if b.is_ascii_lowercase() {
            while i < n && raw[i].is_ascii_lowercase() {
                i += 1;
            }
            let word = &raw[start..i];
            let lexical = (WORD_MIN..=WORD_MAX).contains(&word.len());
            if feature.is_some() || lexical {
                let crc = crc32(word, 0);
                if let Some(f) = feature.as_mut() {
                    f(crc);
                }
                if lexical {
                    if let Some((id, flags)) = lex.find(word, crc) {
                        out.seen[id / 64] |= 1 << (id % 64);
                        if first && flags & QUESTION != 0 {
                            out.first_is_question = true;
                        }
                    }
                }
            }
        } else if b.is_ascii_digit() {
            while i < n && raw[i].is_ascii_digit() {
                i += 1;
            }
            out.digits += 1;
            if let Some(f) = feature.as_mut() {
                f(crc32(&raw[start..i], 0));
            }
        } else if is_space(b) {
            continue;
        } else {
            out.operator |= matches!(b, b'+' | b'-' | b'*' | b'/' | b'=' | b'^' | b'%' | b'$');
            if let Some(f) = feature.as_mut() {
                f(crc32(&raw[start..i], 0));
            }
        }
        first = false;
    }
    out
}

/// `task_kind` on a prompt's sample (`sample_whole`, `sample_ends`).
pub fn task_kind(raw: &[u8]) -> Kind {
    let (code, math, _) = markers(raw);
    if code || math {
        return if code { Kind::Code } else { Kind::Math };
    }
    decide(raw, code, math, &scan(raw, None))
}

/// The shape of the whole prompt: its length in characters and its line breaks.
pub struct Shape {
    pub chars: u64,
    pub newlines: u64,
}

fn bit_length(x: u64) -> u32 {
    64 - x.leading_zeros()
}

/// `analyze_set` on a prompt's sample and shape: the task kind and the feature
/// indices, unique, into `out` (cleared first; in the order first produced up to
/// `BITMAP_MAX_DIM`, sorted above). `mask` is `dim - 1`.
pub fn analyze(raw: &[u8], shape: &Shape, mask: u64, out: &mut Vec<u64>) -> Kind {
    let (code, math, fence) = markers(raw);
    out.clear();
    let mut dedup = Dedup::new(mask);
    let step = BIGRAM & mask;
    let mut prev: Option<u64> = None;
    let mut feature = |crc: u32| {
        let uni = crc as u64 & mask;
        dedup.push(uni, out);
        if let Some(p) = prev {
            // `((a * _BIGRAM) ^ b) & mask` on masked operands (both below 2^32).
            dedup.push((p.wrapping_mul(step) & mask) ^ uni, out);
        }
        prev = Some(uni);
    };
    let tokens = scan(raw, Some(&mut feature));
    let kind = decide(raw, code, math, &tokens);
    let mut text = [0u8; 40];
    let shapes: [(&[u8], u64); 4] = [
        (b"len=", bit_length(shape.chars / 16) as u64),
        (b"num=", bit_length(tokens.digits) as u64),
        (b"lines=", bit_length(shape.newlines) as u64),
        (b"fence=", fence as u64),
    ];
    for (prefix, value) in shapes {
        let len = fmt(&mut text, prefix, value);
        dedup.push(crc32(&text[..len], SHAPE_SEED) as u64 & mask, out);
    }
    let name = kind.name().as_bytes();
    text[..5].copy_from_slice(b"task=");
    text[5..5 + name.len()].copy_from_slice(name);
    dedup.push(
        crc32(&text[..5 + name.len()], SHAPE_SEED) as u64 & mask,
        out,
    );
    dedup.finish(out);
    kind
}

/// `b"<prefix>%d" % value` into `buf`; returns its length.
fn fmt(buf: &mut [u8; 40], prefix: &[u8], value: u64) -> usize {
    buf[..prefix.len()].copy_from_slice(prefix);
    let mut digits = [0u8; 20];
    let mut v = value;
    let mut k = digits.len();
    loop {
        k -= 1;
        digits[k] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    let d = &digits[k..];
    buf[prefix.len()..prefix.len() + d.len()].copy_from_slice(d);
    prefix.len() + d.len()
}

// ---- unique indices -----------------------------------------------------------

/// Dimensions up to this use a bit map per thread to drop repeated indices.
const BITMAP_MAX_DIM: u64 = 1 << 24;

thread_local! {
    static BITMAP: RefCell<Vec<u64>> = const { RefCell::new(Vec::new()) };
}

/// Keeps the first occurrence of each index: a bit map (cleared again by `finish`,
/// index by index) for the usual dimensions, a sort for huge ones.
enum Dedup {
    Bitmap(Vec<u64>),
    Sort,
}

impl Dedup {
    fn new(mask: u64) -> Dedup {
        if mask < BITMAP_MAX_DIM {
            let words = (mask as usize >> 6) + 1;
            let mut map = BITMAP.with(|b| std::mem::take(&mut *b.borrow_mut()));
            if map.len() < words {
                map.resize(words, 0);
            }
            Dedup::Bitmap(map)
        } else {
            Dedup::Sort
        }
    }

    #[inline]
    fn push(&mut self, index: u64, out: &mut Vec<u64>) {
        match self {
            Dedup::Bitmap(map) => {
                let (word, bit) = ((index >> 6) as usize, 1u64 << (index & 63));
                if map[word] & bit == 0 {
                    map[word] |= bit;
                    out.push(index);
                }
            }
            Dedup::Sort => out.push(index),
        }
    }

    fn finish(self, out: &mut Vec<u64>) {
        match self {
            Dedup::Bitmap(mut map) => {
                for &index in out.iter() {
                    map[(index >> 6) as usize] = 0;
                }
                BITMAP.with(|b| *b.borrow_mut() = map);
            }
            Dedup::Sort => {
                out.sort_unstable();
                out.dedup();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc_matches_zlib() {
        assert_eq!(crc32(b"", 0), 0);
        assert_eq!(crc32(b"hello", 0), 0x3610_A686);
        assert_eq!(crc32(b"123456789", 0), 0xCBF4_3926);
    }

    #[test]
    fn lexicon_finds_its_words() {
        let lex = lexicon();
        for (word, flags) in &lex.words {
            assert_eq!(lex.find(word, crc32(word, 0)).map(|f| f.1), Some(*flags));
        }
        assert!(lex.find(b"zebra", crc32(b"zebra", 0)).is_none());
    }
}
