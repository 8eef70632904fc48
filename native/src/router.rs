//! The learned router's hot path: the `hash-v1` featurizer
//! (`switchman_protocol.featurize`) and the scorer
//! (`switchman_sidecar.routing.learned.LearnedScorer`), with the same results as
//! the Python reference (tests/protocol/test_featurize_native.py,
//! tests/routing/test_learned_native.py).
//!
//! A scorer's `analyze` returns the prompt's features as a `Features` object (the
//! indices stay in Rust: no Python set of ~100 ints per request), which its
//! `predict_list` reads directly; any other collection of indices works too.
use pyo3::exceptions::{PyIndexError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyList, PySet, PySlice, PyString};

mod featurize;
mod scorer;
mod selection;

use featurize::{Kind, Shape, HEAD, SAMPLE_MAX, TAIL};
use scorer::{Scorer, Sums, Table, MAX_FEATURES};

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(task_kind, m)?)?;
    m.add_function(wrap_pyfunction!(analyze_set, m)?)?;
    m.add_function(wrap_pyfunction!(analyze, m)?)?;
    m.add_function(wrap_pyfunction!(featurize_batch, m)?)?;
    m.add_function(wrap_pyfunction!(rank_order, m)?)?;
    m.add_function(wrap_pyfunction!(featurizer_word_lists, m)?)?;
    m.add_class::<Features>()?;
    m.add_class::<LearnedScorer>()?;
    m.add("MAX_FEATURES", MAX_FEATURES)?;
    Ok(())
}

/// The task classifier's word lists, named by their Python originals: a test
/// compares them, so editing one side alone fails it.
#[pyfunction]
fn featurizer_word_lists() -> Vec<(String, Vec<&'static str>)> {
    featurize::word_lists()
}

/// The task kinds' names as interned Python strings (one allocation per process).
fn kind_name(py: Python<'_>, kind: Kind) -> Bound<'_, PyString> {
    static NAMES: GILOnceCell<Vec<Py<PyString>>> = GILOnceCell::new();
    let names = NAMES.get_or_init(py, || {
        Kind::ALL
            .iter()
            .map(|k| PyString::intern(py, k.name()).unbind())
            .collect()
    });
    names[kind.index()].bind(py).clone()
}

/// The prompt as Python's `text.encode("utf-8", "replace")` gives it (lone
/// surrogates become `?`), with its shape: length in code points, line breaks.
enum Utf8<'a, 'py> {
    Borrowed(&'a str),
    Encoded(Bound<'py, pyo3::types::PyBytes>),
}

impl Utf8<'_, '_> {
    fn bytes(&self) -> &[u8] {
        match self {
            Utf8::Borrowed(s) => s.as_bytes(),
            Utf8::Encoded(b) => b.as_bytes(),
        }
    }
}

fn utf8<'a, 'py>(text: &'a Bound<'py, PyString>) -> PyResult<Utf8<'a, 'py>> {
    match text.to_str() {
        Ok(s) => Ok(Utf8::Borrowed(s)),
        // Not encodable as is: lone surrogates. Python's own codec replaces each.
        Err(_) => Ok(Utf8::Encoded(
            text.call_method1(pyo3::intern!(text.py(), "encode"), ("utf-8", "replace"))?
                .downcast_into()?,
        )),
    }
}

/// What the featurizer reads of a prompt: its sample (the lower-cased UTF-8 of its
/// ends) and, when asked, its shape.
struct Prompt {
    buf: [u8; SAMPLE_MAX],
    len: usize,
    shape: Shape,
}

impl Prompt {
    fn read(text: &Bound<'_, PyString>, with_shape: bool) -> PyResult<Prompt> {
        let chars = text.len()?;
        let mut p = Prompt {
            buf: [0; SAMPLE_MAX],
            len: 0,
            shape: Shape {
                chars: chars as u64,
                newlines: 0,
            },
        };
        if chars > HEAD + TAIL {
            // As the Python code: only the ends are encoded (a long non-ASCII prompt
            // is not converted, nor its UTF-8 kept in the str object), and
            // `str.count` counts the line breaks.
            let py = text.py();
            let end = chars as isize;
            let head = text.get_item(PySlice::new(py, 0, HEAD as isize, 1))?;
            let tail = text.get_item(PySlice::new(py, end - TAIL as isize, end, 1))?;
            let (head, tail) = (utf8(head.downcast()?)?, utf8(tail.downcast()?)?);
            p.len = featurize::sample_ends(head.bytes(), tail.bytes(), &mut p.buf);
            if with_shape {
                p.shape.newlines = text
                    .call_method1(pyo3::intern!(py, "count"), ("\n",))?
                    .extract()?;
            }
        } else {
            let data = utf8(text)?;
            let bytes = data.bytes();
            p.len = featurize::sample_whole(bytes, &mut p.buf);
            // "\n" is one byte and never part of another character's encoding.
            p.shape.newlines = bytes.iter().filter(|&&b| b == b'\n').count() as u64;
        }
        Ok(p)
    }

    fn sample(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The kind and the unique feature indices (in first-seen order) of one prompt.
fn run(text: &Bound<'_, PyString>, mask: u64, out: &mut Vec<u64>) -> PyResult<Kind> {
    let prompt = Prompt::read(text, true)?;
    Ok(featurize::analyze(
        prompt.sample(),
        &prompt.shape,
        mask,
        out,
    ))
}

/// `task_kind(text)`.
#[pyfunction]
fn task_kind<'py>(text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyString>> {
    let prompt = Prompt::read(text, false)?;
    Ok(kind_name(text.py(), featurize::task_kind(prompt.sample())))
}

/// `analyze_set(text, dim)` with `mask = dim - 1` (the caller checks that `dim` is
/// a power of two; any `dim` above 2^64 acts as 2^64, since no hash reaches it).
#[pyfunction]
fn analyze_set<'py>(
    text: &Bound<'py, PyString>,
    mask: u64,
) -> PyResult<(Bound<'py, PyString>, Bound<'py, PySet>)> {
    let mut out = Vec::new();
    let kind = run(text, mask, &mut out)?;
    let py = text.py();
    Ok((kind_name(py, kind), PySet::new(py, &out)?))
}

/// `analyze(text, dim)`: the indices sorted, with `mask = dim - 1`.
#[pyfunction]
fn analyze<'py>(
    text: &Bound<'py, PyString>,
    mask: u64,
) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyList>)> {
    let mut out = Vec::new();
    let kind = run(text, mask, &mut out)?;
    out.sort_unstable();
    let py = text.py();
    Ok((kind_name(py, kind), PyList::new(py, &out)?))
}

/// `featurize(texts, dim)`: sorted indices per prompt, with `mask = dim - 1`.
#[pyfunction]
fn featurize_batch<'py>(
    py: Python<'py>,
    texts: Vec<Bound<'py, PyString>>,
    mask: u64,
) -> PyResult<Bound<'py, PyList>> {
    let mut out = Vec::new();
    let rows = PyList::empty(py);
    for text in &texts {
        run(text, mask, &mut out)?;
        out.sort_unstable();
        rows.append(PyList::new(py, &out)?)?;
    }
    Ok(rows)
}

/// A prompt's unique feature indices for one scorer (a `Collection[int]`).
#[pyclass(frozen, module = "switchman_native._native")]
struct Features {
    dim: usize,
    indices: Vec<usize>,
}

#[pymethods]
impl Features {
    fn __len__(&self) -> usize {
        self.indices.len()
    }

    fn __iter__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        Ok(PyList::new(py, &self.indices)?
            .into_any()
            .try_iter()?
            .into_any())
    }

    fn __contains__(&self, item: &Bound<'_, PyAny>) -> bool {
        item.extract::<usize>()
            .is_ok_and(|i| self.indices.contains(&i))
    }

    fn __repr__(&self) -> String {
        format!("Features({:?})", self.indices)
    }
}

/// The learned router's scorer: built once per route table from what the Python
/// `LearnedScorer` has read and checked; see its docstring for the model.
#[pyclass(frozen, module = "switchman_native._native")]
struct LearnedScorer {
    core: Scorer,
}

#[pymethods]
impl LearnedScorer {
    #[new]
    #[pyo3(signature = (dim, weights, biases, names, quantum, scale, adjust, share, votes, proto_rows))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        dim: usize,
        weights: Vec<Vec<f64>>,
        biases: Vec<f64>,
        names: Vec<String>,
        quantum: f64,
        scale: f64,
        adjust: Vec<((String, String), f64)>,
        share: f64,
        votes: Vec<Vec<f64>>,
        proto_rows: Vec<Vec<i64>>,
    ) -> PyResult<Self> {
        if dim == 0 || dim & (dim - 1) != 0 {
            return Err(PyValueError::new_err(format!(
                "feature dimension must be a power of two, got {dim}"
            )));
        }
        let table = Table {
            weights,
            biases,
            names,
            quantum,
            scale,
            adjust,
            share,
            votes,
            proto_rows,
        };
        Scorer::new(dim, table)
            .map(|core| LearnedScorer { core })
            .map_err(PyValueError::new_err)
    }

    /// The task kind and the prompt's features (`analyze_set` for this dimension).
    fn analyze<'py>(
        &self,
        text: &Bound<'py, PyString>,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, Features>)> {
        let mut out = Vec::new();
        let kind = run(text, (self.core.dim - 1) as u64, &mut out)?;
        let py = text.py();
        let features = Features {
            dim: self.core.dim,
            indices: out.into_iter().map(|i| i as usize).collect(),
        };
        Ok((kind_name(py, kind), Bound::new(py, features)?))
    }

    /// `analyze` then `predict_list`, in one call: the task kind and the
    /// probabilities in head order.
    fn analyze_predict<'py>(
        &self,
        text: &Bound<'py, PyString>,
    ) -> PyResult<(Bound<'py, PyString>, Bound<'py, PyList>)> {
        let mut out = Vec::new();
        let kind = run(text, (self.core.dim - 1) as u64, &mut out)?;
        let probs = self.unique(out.iter().map(|&i| i as usize), out.len(), kind.name());
        let py = text.py();
        Ok((kind_name(py, kind), PyList::new(py, probs)?))
    }

    /// `LearnedScorer.predict_list(indices, task)`.
    fn predict_list<'py>(
        &self,
        indices: &Bound<'py, PyAny>,
        task: &str,
    ) -> PyResult<Bound<'py, PyList>> {
        let py = indices.py();
        if let Ok(features) = indices.downcast::<Features>() {
            let f = features.get();
            if f.dim == self.core.dim {
                let probs = self.unique(f.indices.iter().copied(), f.indices.len(), task);
                return PyList::new(py, probs);
            }
        }
        // Any collection: as Python indexes a list (negative from the end), in its order.
        let n = indices.len()?;
        let dim = self.core.dim as isize;
        let mut picked = Vec::with_capacity(n);
        for item in indices.try_iter()? {
            let i: isize = item?.extract()?;
            let f = if i < 0 { i + dim } else { i };
            if !(0..dim).contains(&f) {
                return Err(PyIndexError::new_err("list index out of range"));
            }
            picked.push(f as usize);
        }
        let sums = if n > MAX_FEATURES {
            // Float sums in the collection's order, by Python's own sum() (whose
            // algorithm differs between Python versions); never on the request path,
            // where a prompt has at most ~1,800 features.
            let builtins = py.import("builtins")?;
            let sum = builtins.getattr("sum")?;
            let mut totals = Vec::with_capacity(self.core.heads());
            for j in 0..self.core.heads() {
                let column = PyList::new(py, self.core.column(j, &picked))?;
                totals.push(sum.call1((column, 0.0))?.extract::<f64>()?);
            }
            Sums::Floats(totals, self.core.proto_sums(&picked))
        } else {
            self.sums(&picked, n)
        };
        PyList::new(py, self.core.predict(n, sums, task))
    }

    #[getter]
    fn dim(&self) -> usize {
        self.core.dim
    }
}

impl LearnedScorer {
    /// Probabilities for unique indices, at most `MAX_FEATURES` of them (a prompt's
    /// features never exceed ~1,800: 901 sample bytes).
    fn unique(&self, indices: impl Iterator<Item = usize>, n: usize, task: &str) -> Vec<f64> {
        let sums = if n > 1 {
            debug_assert!(n <= MAX_FEATURES);
            self.core.quantised_sums(indices)
        } else {
            self.core.row_sums(indices.into_iter().next())
        };
        self.core.predict(n, sums, task)
    }

    fn sums(&self, picked: &[usize], n: usize) -> Sums {
        if n > 1 {
            self.core.quantised_sums(picked.iter().copied())
        } else {
            self.core.row_sums(picked.first().copied())
        }
    }
}

/// `selection.rank_order(qualities, costs, models, bar, cost_weight)`: the positions,
/// best first; `None` when a quality, cost or key is NaN or a name is not valid
/// UTF-8 (the caller then runs the Python code, whose sort NaN makes order-dependent).
///
/// Without NaN the Python keys are totally ordered (the position breaks every tie),
/// so any correct sort gives Python's order: floats compare with `-0.0 == 0.0` as
/// in a tuple comparison, names by code point (UTF-8 byte order).
#[pyfunction]
#[pyo3(signature = (qualities, costs, models, bar = 0.0, cost_weight = 0.0))]
fn rank_order(
    qualities: Vec<f64>,
    costs: Vec<f64>,
    models: Vec<Bound<'_, PyString>>,
    bar: f64,
    cost_weight: f64,
) -> PyResult<Option<Vec<usize>>> {
    let n = qualities.len();
    if costs.len() != n || models.len() != n {
        return Err(PyValueError::new_err(
            "rank_order: lists of different lengths",
        ));
    }
    if qualities.iter().chain(&costs).any(|x| x.is_nan()) || bar.is_nan() || cost_weight.is_nan() {
        return Ok(None);
    }
    let mut names = Vec::with_capacity(n);
    for m in &models {
        match m.to_str() {
            Ok(s) => names.push(s),
            Err(_) => return Ok(None),
        }
    }
    Ok(selection::rank_order(
        &qualities,
        &costs,
        &names,
        bar,
        cost_weight,
    ))
}
