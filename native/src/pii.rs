//! The PII scan's word-list recognizers (sidecar/switchman_sidecar/pii):
//! PERSON (names.py). The Python modules stay the reference; a scanner gives
//! the same spans for every text (tests/pii/test_native_equivalence.py).
use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::PyString;
use rustc_hash::FxHashMap;

mod address;
mod checks;
mod cues;
mod locations;
mod names;
mod numbers;
mod text;

use text::{Props, Text};

/// The gazetteer's lists (gazetteer.Gazetteer), lower case, as one map from
/// a word to the lists that hold it (one lookup answers every list).
pub struct Words {
    bits: FxHashMap<String, u8>,
}

pub const FIRST: u8 = 1;
pub const LAST: u8 = 1 << 1;
pub const COMMON: u8 = 1 << 2;
pub const ENGLISH: u8 = 1 << 3;
pub const STREET: u8 = 1 << 4;
pub const PLACES: u8 = 1 << 5;
pub const PLACE_FIRST: u8 = 1 << 6;
pub const COMMON_NAMES: u8 = 1 << 7;

/// Each list's name (gazetteer._FIELDS) and its bit.
const LISTS: [(&str, u8); 8] = [
    ("first_names", FIRST),
    ("last_names", LAST),
    ("common_words", COMMON),
    ("english", ENGLISH),
    ("street_words", STREET),
    ("places", PLACES),
    ("place_first_words", PLACE_FIRST),
    ("common_names", COMMON_NAMES),
];

impl Words {
    /// The lists that hold `word`.
    pub fn of(&self, word: &str) -> u8 {
        self.bits.get(word).copied().unwrap_or(0)
    }

    /// The lists in gazetteer.py's text form: a line `\t<list>` opens a list,
    /// each following line is one word, and `\tend` closes the text. Every
    /// list must be there once; anything else (a truncated file) is an error.
    fn parse(data: &[u8]) -> Result<Words, String> {
        let text = std::str::from_utf8(data).map_err(|e| format!("word lists: {e}"))?;
        let mut bits: FxHashMap<String, u8> = FxHashMap::default();
        let mut seen = 0u8;
        let mut bit = 0u8;
        let mut ended = false;
        for line in text.split('\n') {
            if ended {
                if line.is_empty() {
                    continue;
                }
                return Err("word lists: text after the end".into());
            }
            if let Some(name) = line.strip_prefix('\t') {
                if name == "end" {
                    ended = true;
                    continue;
                }
                bit = LISTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, b)| *b)
                    .ok_or_else(|| format!("word lists: unknown list {name:?}"))?;
                if seen & bit != 0 {
                    return Err(format!("word lists: {name:?} twice"));
                }
                seen |= bit;
            } else if !line.is_empty() {
                if bit == 0 {
                    return Err("word lists: a word before the first list".into());
                }
                *bits.entry(line.to_owned()).or_default() |= bit;
            }
        }
        if !ended || seen != u8::MAX {
            return Err("word lists: incomplete".into());
        }
        Ok(Words { bits })
    }
}

/// (start, end, rank, code): a finding of `scan`.
type Scanned = (usize, usize, i64, i64);

/// Codes of the findings `scan` adds (an input finding is its index, >= 0).
const STREET_ADDRESS: i64 = -1;
const PERSON: i64 = -2;
const LOCATION: i64 = -3;

/// spans.resolve_overlaps: indices of the findings kept (best rank first,
/// then the longer span, then the earlier; ties in input order), in the
/// order chosen.
fn resolve_overlaps(found: &[Scanned]) -> Vec<usize> {
    if found.len() < 2 {
        return (0..found.len()).collect();
    }
    let mut order: Vec<usize> = (0..found.len()).collect();
    order.sort_by_key(|&i| {
        let (s, e, rank, _) = found[i];
        (rank, s as i64 - e as i64, s)
    });
    let mut starts: Vec<usize> = Vec::new();
    let mut ends: Vec<usize> = Vec::new();
    let mut chosen = Vec::new();
    for i in order {
        let (s, e, _, _) = found[i];
        let k = starts.partition_point(|&x| x < s);
        if k < starts.len() && starts[k] < e {
            continue;
        }
        if k > 0 && ends[k - 1] > s {
            continue;
        }
        starts.insert(k, s);
        ends.insert(k, e);
        chosen.push(i);
    }
    chosen
}

/// Word lists and the interpreter's character tables, handed over once; a
/// scan holds the GIL and keeps no state between calls.
#[pyclass(frozen, module = "switchman_native._native")]
pub struct PiiScanner {
    words: Words,
    props: Props,
    checks: checks::Checks,
}

#[pymethods]
impl PiiScanner {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (first_names, last_names, common_words, english, street_words, places, place_first_words, common_names, flags, lower, astral, checks))]
    fn new(
        first_names: HashSet<String>,
        last_names: HashSet<String>,
        common_words: HashSet<String>,
        english: HashSet<String>,
        street_words: HashSet<String>,
        places: HashSet<String>,
        place_first_words: HashSet<String>,
        common_names: HashSet<String>,
        flags: &[u8],
        lower: &[u8],
        astral: Py<PyAny>,
        checks: (Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>),
    ) -> PyResult<Self> {
        let lists = [
            first_names,
            last_names,
            common_words,
            english,
            street_words,
            places,
            place_first_words,
            common_names,
        ];
        let mut bits: FxHashMap<String, u8> = FxHashMap::default();
        for (list, (_, bit)) in lists.into_iter().zip(LISTS) {
            for word in list {
                *bits.entry(word).or_default() |= bit;
            }
        }
        Self::build(Words { bits }, flags, lower, astral, checks)
    }

    /// The same scanner from the lists' text form (gazetteer.py's cache file),
    /// parsed here: no Python copy of the lists is made for it.
    #[staticmethod]
    fn from_text(
        data: &[u8],
        flags: &[u8],
        lower: &[u8],
        astral: Py<PyAny>,
        checks: (Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>),
    ) -> PyResult<Self> {
        let words = Words::parse(data).map_err(pyo3::exceptions::PyValueError::new_err)?;
        Self::build(words, flags, lower, astral, checks)
    }

    /// Per list (gazetteer._FIELDS order), how many words it holds.
    fn list_sizes(&self) -> Vec<(&'static str, usize)> {
        LISTS
            .iter()
            .map(|(name, bit)| {
                let n = self.words.bits.values().filter(|b| *b & bit != 0).count();
                (*name, n)
            })
            .collect()
    }

    /// detector.Detector.scan after the structured and custom recognizers:
    /// addresses (stopping at ``found``), names (outside what outranks
    /// them), places (outside everything), then overlaps resolved. ``found``
    /// holds (start, end, rank); the result (start, end, rank, code) with code
    /// the index of an input finding, or -1 STREET_ADDRESS, -2 PERSON,
    /// -3 LOCATION, by start (the caller sorts as Python does). None: scan in
    /// Python (lone surrogates).
    #[pyo3(signature = (text, found, names, addresses))]
    fn scan(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
        found: Vec<(usize, usize, i64)>,
        names: bool,
        addresses: bool,
    ) -> PyResult<Option<Vec<Scanned>>> {
        let Some(t) = self.text(py, text)? else {
            return Ok(None);
        };
        let mut all: Vec<Scanned> = found
            .iter()
            .enumerate()
            .map(|(i, &(s, e, r))| (s, e, r, i as i64))
            .collect();
        let spans =
            |all: &[Scanned]| -> Vec<(usize, usize)> { all.iter().map(|f| (f.0, f.1)).collect() };
        if addresses {
            let hard = spans(&all);
            let found = address::Addresses::new(py, &t, &self.words).find(&hard);
            all.extend(found.into_iter().map(|(s, e)| (s, e, 30, STREET_ADDRESS)));
        }
        if names {
            let mut chosen: Vec<(usize, usize)> = resolve_overlaps(&all)
                .into_iter()
                .map(|i| (all[i].0, all[i].1))
                .collect();
            chosen.sort_unstable();
            let found = names::Names::new(py, &t, &self.words).find(&chosen);
            all.extend(found.into_iter().map(|(s, e)| (s, e, 40, PERSON)));
        }
        if addresses {
            let taken = spans(&all);
            let found = locations::find_locations(py, &t, &self.words, &taken);
            all.extend(found.into_iter().map(|(s, e)| (s, e, 45, LOCATION)));
        }
        let mut kept: Vec<Scanned> = resolve_overlaps(&all).into_iter().map(|i| all[i]).collect();
        // by start (chosen spans do not overlap): the caller's sort finds
        // them in order
        kept.sort_by_key(|f| (f.0, f.1));
        Ok(Some(kept))
    }

    /// patterns._number_spans: per pattern (IBAN, card, IPv4, SSN, phone)
    /// the candidate spans, or None (as ``find_persons``).
    #[allow(clippy::type_complexity)]
    fn number_spans(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
    ) -> PyResult<Option<[Vec<(usize, usize)>; 5]>> {
        let Some(t) = self.text(py, text)? else {
            return Ok(None);
        };
        let n = numbers::number_spans(&t);
        Ok(Some([n.iban, n.card, n.ip4, n.ssn, n.phone]))
    }

    /// patterns.find_structured's number-led findings: per entity (IBAN,
    /// card, IPv4, SSN, phone) the validated spans, or None (as
    /// ``find_persons``).
    #[allow(clippy::type_complexity)]
    fn structured(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
    ) -> PyResult<Option<[Vec<(usize, usize)>; 5]>> {
        let Some(t) = self.text(py, text)? else {
            return Ok(None);
        };
        let spans = numbers::number_spans(&t);
        let v = checks::validate(py, &t, &spans, &self.checks)?;
        Ok(Some([v.iban, v.card, v.ip4, v.ssn, v.phone]))
    }

    /// names.find_persons: (start, end) of each PERSON finding, or None when
    /// the text cannot be read as UTF-8 (lone surrogates: scan in Python).
    #[pyo3(signature = (text, skip))]
    fn find_persons(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
        skip: Vec<(usize, usize)>,
    ) -> PyResult<Option<Vec<(usize, usize)>>> {
        let Some(t) = self.text(py, text)? else {
            return Ok(None);
        };
        Ok(Some(names::Names::new(py, &t, &self.words).find(&skip)))
    }

    /// address.find_addresses: (start, end) of each STREET_ADDRESS finding,
    /// or None (as ``find_persons``).
    #[pyo3(signature = (text, barriers))]
    fn find_addresses(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
        barriers: Vec<(usize, usize)>,
    ) -> PyResult<Option<Vec<(usize, usize)>>> {
        let Some(t) = self.text(py, text)? else {
            return Ok(None);
        };
        Ok(Some(
            address::Addresses::new(py, &t, &self.words).find(&barriers),
        ))
    }

    /// address.find_locations: (start, end) of each LOCATION finding, or
    /// None (as ``find_persons``).
    #[pyo3(signature = (text, taken))]
    fn find_locations(
        &self,
        py: Python<'_>,
        text: &Bound<'_, PyString>,
        taken: Vec<(usize, usize)>,
    ) -> PyResult<Option<Vec<(usize, usize)>>> {
        let Some(t) = self.text(py, text)? else {
            return Ok(None);
        };
        Ok(Some(locations::find_locations(py, &t, &self.words, &taken)))
    }
}

impl PiiScanner {
    /// The text with its character properties, or None when it has no UTF-8
    /// form (lone surrogates): the caller then scans in Python.
    fn text(&self, py: Python<'_>, text: &Bound<'_, PyString>) -> PyResult<Option<Text<'_>>> {
        match text.to_str() {
            Ok(s) => Text::new(py, s, &self.props).map(Some),
            Err(_) => Ok(None),
        }
    }

    fn build(
        words: Words,
        flags: &[u8],
        lower: &[u8],
        astral: Py<PyAny>,
        checks: (Py<PyAny>, Py<PyAny>, Py<PyAny>, Py<PyAny>),
    ) -> PyResult<Self> {
        let (phone_ok, possible, iban_ok, ip_ok) = checks;
        Ok(PiiScanner {
            words,
            props: Props::new(flags, lower, astral)?,
            checks: checks::Checks {
                phone_ok,
                possible,
                iban_ok,
                ip_ok,
            },
        })
    }
}

/// The fixed word lists this port carries, each named by its Python original
/// (module.NAME): tests/pii/test_native.py compares them, so editing one side
/// alone fails a test even where no test text holds the word.
#[pyfunction]
fn pii_word_lists() -> Vec<(&'static str, Vec<&'static str>)> {
    vec![
        ("address.STREET_ENDINGS", address::STREET_ENDINGS.to_vec()),
        ("address.PLACE_CUES", locations::PLACE_CUES.to_vec()),
        ("patterns.SSN_CONTEXT", checks::SSN_CONTEXT.to_vec()),
        ("patterns.PHONE_CONTEXT", checks::PHONE_CONTEXT.to_vec()),
        (
            "patterns.NOT_PHONE_CONTEXT",
            checks::NOT_PHONE_CONTEXT.to_vec(),
        ),
        (
            "patterns.STRONG_PHONE_CONTEXT",
            checks::STRONG_PHONE_CONTEXT.to_vec(),
        ),
        (
            "patterns._OTHER_NUMBER_STEMS",
            checks::OTHER_NUMBER_STEMS.to_vec(),
        ),
        ("patterns.UNIT_BEFORE", checks::UNIT_BEFORE.to_vec()),
        ("names.PARTICLES", names::PARTICLES.to_vec()),
        ("names.STRONG_TAILS", names::STRONG_TAILS.to_vec()),
        ("names.WEAK_TAILS", names::WEAK_TAILS.to_vec()),
        ("names._CONTRACTIONS", names::CONTRACTIONS.to_vec()),
    ]
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PiiScanner>()?;
    m.add_function(wrap_pyfunction!(pii_word_lists, m)?)?;
    Ok(())
}
