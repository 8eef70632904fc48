//! The cue regexes of names.py, each answering yes or no (never a span), so
//! they run on a one-byte rendering of the text (`Text::folded` for the
//! case-insensitive ones, `Text::cased` for the others) where every class the
//! Python pattern uses has an exact ASCII counterpart: `\s` is `[\t ]`, `\w`
//! is `[0-9a-z_]` (folded) and `\b` the ASCII word boundary. A regex without
//! look-around accepts the same strings in any engine, so the answers are
//! Python's. The Python source of each is quoted beside it.
use std::sync::LazyLock;

use regex::bytes::Regex;

fn re(pattern: &str) -> Regex {
    Regex::new(pattern).expect("a valid cue pattern")
}

/// names.STRONG_CUE_REV_RE (`match` on the reversed text before a run).
pub static STRONG_CUE_REV: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)^[\t ,:]*(?:si[\t ]+eman\b|[:?][\t ]*eman\b|ma[\t ]+i\b|m['\x01]i\b|raed\b|",
        r"(?:yb[\t ]+)?dengis\b|sdrager\b|ylerecnis\b|dellac\b|(?:(?:mih|reh)[\t ]+)?deman\b|",
        r"em[\t ]+s?llac\b|si[\t ]+yhw\b|ot[\t ]+etubirt\b|",
        r"(?:(?:si|saw|eman)[\t ]+)?(?:(?:nosrep[\t ]+)?tcatnoc|tneitap|remotsuc|tneilc|",
        r"eeyolpme|resu|yraicifeneb|redloh)\b|:[\t ]*morf\b|:[\t ]*cc\b|:[\t ]*ot\b|",
        r"\.?ntta\b|noitnetta\b|teem\b|tem\b|si[\t ]+siht\b|(?:ot|htiw)[\t ]+kaeps\b|",
        r"rof[\t ]+ksa\b)"
    ))
});

/// names.WEAK_CUE_RE (`search` in the text before a run).
pub static WEAK_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)(?:\bby|\bwith|\band|\bhi|\bhello|\bhey|\bthanks|\bthank[\t ]+you|\bmanager|",
        r"\bdirector)[\t ,]*\z"
    ))
});

/// names.PERSON_CUE_RE (`search`).
pub static PERSON_CUE: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)(?:\bstarring|\bfeaturing|\btold|\basked|\bsaid|\bsays|\bshouted[\t ]+at|",
        r"\bmarried|\bson[\t ]+of|\bdaughter[\t ]+of|\bwife|\bhusband|\bfriend)[\t ,]*\z"
    ))
});

/// names.AFTER_RE (`match` after a run).
pub static AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)^[ ,]*(?:(?:just|also|never|always|really|still|only|already|often|then)",
        r"[\t ]+)?(?:said|says|told|asked|wrote|is[\t ]+an?\b|is[\t ]+from\b|was\b|",
        r"and[\t ]+i\b|has\b|had\b|who\b|lives|works|thinks|wants|called|replied|shouted|",
        r"had[\t ]+given|spent\b|will[\t ]+be\b|,[\t ]+can[\t ]+(?:i|you)|",
        r"(?:[a-z]+[\t ]+)?(?:his|her|him)\b)"
    ))
});

/// names.DIALOGUE_RE (`match`): `:[ ]?\\?["\u201c]`.
pub static DIALOGUE: LazyLock<Regex> = LazyLock::new(|| re(r#"(?-u)^:[ ]?\\?["\x02]"#));

/// names.POSSESSED_RE (`match`).
pub static POSSESSED: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)^[ ]+(?:(?:new|old|home|own|best|late|ex-?)[ ]+)?(?:address|phone|number|",
        r"e-?mail|wife|husband|son|daughter|mother|father|mom|mum|dad|sister|brother|friend|",
        r"boyfriend|girlfriend|partner|boss|birthday|family|children|kids|parents|uncle|aunt|",
        r"cousin)\b"
    ))
});

// The case-sensitive ones, on `Text::cased`: a capital `[U]` is `[A-Z\x04]`,
// a letter `[^\W\d_]` is `[A-Za-z\x03\x04]`, and a word character is
// `[0-9A-Za-z_\x03\x04]` (so `\b` is spelt out).

/// names.LIST_BEFORE_REV_RE (`match` on the reversed text before a run).
pub static LIST_BEFORE_REV: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)^(?:[ ],[A-Za-z\x03\x04]+[A-Z\x04]|",
        r"[ ]dna[ ],?[A-Za-z\x03\x04]+[A-Z\x04][ ],[A-Za-z\x03\x04]+[A-Z\x04])"
    ))
});

/// names.LIST_AFTER_RE (`match`).
pub static LIST_AFTER: LazyLock<Regex> = LazyLock::new(|| {
    re(concat!(
        r"(?-u)^(?:,[ ]|[ ]and[ ])[A-Z\x04][A-Za-z\x03\x04]+",
        r"(?:,|[ ]and[ ]|\.|[ ](?:were|are)(?:[^0-9A-Za-z_\x03\x04]|\z))"
    ))
});

/// names.PLURAL_AFTER_RE (`match`): `[ ](?:were|are)\b`.
pub static PLURAL_AFTER: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)^[ ](?:were|are)(?:[^0-9A-Za-z_\x03\x04]|\z)"));

/// names.PAIR_BEFORE_RE (`search`): `[U][^\W\d_]+[ ]and[ ]\Z`.
pub static PAIR_BEFORE: LazyLock<Regex> =
    LazyLock::new(|| re(r"(?-u)[A-Z\x04][A-Za-z\x03\x04]+[ ]and[ ]\z"));
