//! The PII scan's word-list recognizers (sidecar/switchman_sidecar/pii):
//! PERSON (names.py). The Python modules stay the reference; a scanner gives
//! the same spans for every text (tests/pii/test_native_equivalence.py).
use std::collections::HashSet;

use pyo3::prelude::*;
use pyo3::types::PyString;

mod address;
mod cues;
mod locations;
mod names;
mod text;

use text::{Props, Text};

/// The gazetteer's lists (gazetteer.Gazetteer), lower case.
pub struct Words {
    pub first: HashSet<String>,
    pub last: HashSet<String>,
    pub common: HashSet<String>,
    pub english: HashSet<String>,
    pub street: HashSet<String>,
    pub places: HashSet<String>,
    pub place_first: HashSet<String>,
    pub common_names: HashSet<String>,
}

/// Word lists and the interpreter's character tables, handed over once; a
/// scan holds the GIL and keeps no state between calls.
#[pyclass(frozen, module = "switchman_native._native")]
pub struct PiiScanner {
    words: Words,
    props: Props,
}

#[pymethods]
impl PiiScanner {
    #[new]
    #[allow(clippy::too_many_arguments)]
    #[pyo3(signature = (first_names, last_names, common_words, english, street_words, places, place_first_words, common_names, flags, lower, astral))]
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
    ) -> PyResult<Self> {
        Ok(PiiScanner {
            words: Words {
                first: first_names,
                last: last_names,
                common: common_words,
                english,
                street: street_words,
                places,
                place_first: place_first_words,
                common_names,
            },
            props: Props::new(flags, lower, astral)?,
        })
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
        let Ok(s) = text.to_str() else {
            return Ok(None);
        };
        let t = Text::new(py, s, &self.props)?;
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
        let Ok(s) = text.to_str() else {
            return Ok(None);
        };
        let t = Text::new(py, s, &self.props)?;
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
        let Ok(s) = text.to_str() else {
            return Ok(None);
        };
        let t = Text::new(py, s, &self.props)?;
        Ok(Some(locations::find_locations(py, &t, &self.words, &taken)))
    }
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PiiScanner>()?;
    Ok(())
}
