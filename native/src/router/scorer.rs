//! The learned router's scorer (`switchman_sidecar.routing.learned.LearnedScorer`),
//! float for float.
//!
//! The Python scorer packs every feature's quantised weights into one integer and
//! sums ~100 of them; the sums are exact, so summing the same quantised weights as
//! `i64` here gives the same integers, and the floats that follow are the same IEEE
//! operations in the same order (no fused multiply-add: Rust never contracts).
//! `exp` and `ln` are the C library's, as in CPython's `math` module.
use std::collections::HashMap;

/// Most features for the packed (integer) sums; more fall back to float sums.
pub const MAX_FEATURES: usize = 1 << 12;

/// The per-table constants, built once per route table.
pub struct Scorer {
    pub dim: usize,
    heads: usize,
    protos: usize,
    /// Per feature: the heads' quantised weights, then the prototypes'.
    quantised: Vec<i64>,
    /// Per feature: the heads' weights (the float fallback).
    floats: Vec<f64>,
    biases: Vec<f64>,
    quantum: f64,
    scale: f64,
    share: f64,
    /// Per prototype: its mean score per head, times the share.
    votes: Vec<f64>,
    /// Task kind → per head, the learned logit offset for that kind (0.0 when none).
    by_task: HashMap<String, Vec<f64>>,
    /// Per head, the offset for every kind (`*`).
    every_task: Vec<f64>,
}

/// Per-head sums of one prompt's features (and per prototype, its similarity).
pub enum Sums {
    /// Exact sums of the quantised weights (2 to `MAX_FEATURES` features).
    Quantised(Vec<i64>, Vec<i64>),
    /// Float sums (0, 1 or more than `MAX_FEATURES` features).
    Floats(Vec<f64>, Vec<i64>),
}

pub struct Table {
    pub weights: Vec<Vec<f64>>,
    pub biases: Vec<f64>,
    pub names: Vec<String>,
    pub quantum: f64,
    pub scale: f64,
    pub adjust: Vec<((String, String), f64)>,
    pub share: f64,
    pub votes: Vec<Vec<f64>>,
    pub proto_rows: Vec<Vec<i64>>,
}

impl Scorer {
    pub fn new(dim: usize, t: Table) -> Result<Scorer, String> {
        let heads = t.weights.len();
        if heads == 0 || t.biases.len() != heads || t.names.len() != heads {
            return Err("one name, weight row and bias per head".into());
        }
        if t.weights.iter().any(|w| w.len() != dim) {
            return Err(format!("every head needs {dim} weights"));
        }
        let protos = t.votes.len();
        if t.votes.iter().any(|v| v.len() != heads) {
            return Err("a vote per head for every prototype".into());
        }
        if protos > 0
            && (t.proto_rows.len() != dim || t.proto_rows.iter().any(|r| r.len() != protos))
        {
            return Err("a quantised weight per prototype for every feature".into());
        }
        let width = heads + protos;
        let inv = 1.0 / t.quantum;
        let mut quantised = vec![0i64; dim * width];
        let mut floats = vec![0f64; dim * heads];
        for (j, column) in t.weights.iter().enumerate() {
            for (f, &w) in column.iter().enumerate() {
                // Python's round(): half to even, to an exact integer.
                quantised[f * width + j] = (w * inv).round_ties_even() as i64;
                floats[f * heads + j] = w;
            }
        }
        if protos > 0 {
            for (f, row) in t.proto_rows.iter().enumerate() {
                quantised[f * width + heads..(f + 1) * width].copy_from_slice(row);
            }
        }
        let mut by_task: HashMap<String, Vec<f64>> = HashMap::new();
        let mut every_task = vec![0.0; heads];
        for ((model, task), offset) in t.adjust {
            for (j, name) in t.names.iter().enumerate() {
                if *name == model {
                    by_task
                        .entry(task.clone())
                        .or_insert_with(|| vec![0.0; heads])[j] = offset;
                    if task == "*" {
                        every_task[j] = offset;
                    }
                }
            }
        }
        Ok(Scorer {
            dim,
            heads,
            protos,
            quantised,
            floats,
            biases: t.biases,
            quantum: t.quantum,
            scale: t.scale,
            share: t.share,
            votes: t.votes.concat(),
            by_task,
            every_task,
        })
    }

    pub fn heads(&self) -> usize {
        self.heads
    }

    /// Exact sums of the quantised weights of `indices` (each below `dim`).
    pub fn quantised_sums(&self, indices: impl Iterator<Item = usize>) -> Sums {
        let width = self.heads + self.protos;
        let mut acc = vec![0i64; width];
        for f in indices {
            let row = &self.quantised[f * width..(f + 1) * width];
            for (a, w) in acc.iter_mut().zip(row) {
                *a += w;
            }
        }
        let protos = acc.split_off(self.heads);
        Sums::Quantised(acc, protos)
    }

    /// One feature's weights (the `n == 1` case), or none (`n == 0`).
    pub fn row_sums(&self, index: Option<usize>) -> Sums {
        let (h, width) = (self.heads, self.heads + self.protos);
        match index {
            Some(f) => Sums::Floats(
                self.floats[f * h..(f + 1) * h].to_vec(),
                self.quantised[f * width + h..(f + 1) * width].to_vec(),
            ),
            None => Sums::Floats(vec![0.0; h], vec![0; self.protos]),
        }
    }

    /// Column `j` of the float weights at `indices`, in their order (for a float sum).
    pub fn column(&self, j: usize, indices: &[usize]) -> Vec<f64> {
        indices
            .iter()
            .map(|&f| self.floats[f * self.heads + j])
            .collect()
    }

    /// Exact per-prototype sums at `indices`.
    pub fn proto_sums(&self, indices: &[usize]) -> Vec<i64> {
        let width = self.heads + self.protos;
        let mut acc = vec![0i64; self.protos];
        for &f in indices {
            for (a, w) in acc
                .iter_mut()
                .zip(&self.quantised[f * width + self.heads..])
            {
                *a += w;
            }
        }
        acc
    }

    fn offsets(&self, task: &str) -> impl Iterator<Item = f64> + '_ {
        let own = self.by_task.get(task);
        (0..self.heads).map(move |j| own.map_or(0.0, |v| v[j]) + self.every_task[j])
    }

    /// `predict_list`: the probability of a good answer per head for a prompt with
    /// `n` features whose sums are `sums`.
    pub fn predict(&self, n: usize, sums: Sums, task: &str) -> Vec<f64> {
        let norm = if n > 0 {
            self.scale / (n as f64).sqrt()
        } else {
            0.0
        };
        let own = self.by_task.get(task);
        if self.protos == 0 {
            // `bias + adjust[(name, task)] + adjust[(name, "*")]`, left to right.
            let bias = |j: usize| self.biases[j] + own.map_or(0.0, |v| v[j]) + self.every_task[j];
            return match sums {
                Sums::Quantised(heads, _) => heads
                    .iter()
                    .enumerate()
                    .map(|(j, &s)| sigmoid(bias(j) + norm * ((s as f64) * self.quantum)))
                    .collect(),
                Sums::Floats(totals, _) => totals
                    .iter()
                    .enumerate()
                    .map(|(j, &t)| sigmoid(bias(j) + norm * t))
                    .collect(),
            };
        }
        let keep = 1.0 - self.share;
        let (xs, sims): (Vec<f64>, Vec<i64>) = match sums {
            Sums::Quantised(heads, sims) => {
                let step = norm * self.quantum;
                let xs = heads
                    .iter()
                    .zip(&self.biases)
                    .map(|(&s, &b)| b + step * (s as f64))
                    .collect();
                (xs, sims)
            }
            Sums::Floats(totals, sims) => {
                let xs = totals
                    .iter()
                    .zip(&self.biases)
                    .map(|(&t, &b)| b + norm * t)
                    .collect();
                (xs, sims)
            }
        };
        // The nearest prototype: the first of the largest sums.
        let mut near = 0;
        for (c, &s) in sims.iter().enumerate() {
            if s > sims[near] {
                near = c;
            }
        }
        let vote = &self.votes[near * self.heads..(near + 1) * self.heads];
        let mut probs: Vec<f64> = xs
            .iter()
            .zip(vote)
            .map(|(&x, &mean)| keep * sigmoid(x) + mean)
            .collect();
        for (j, offset) in self.offsets(task).enumerate() {
            if offset != 0.0 {
                // min(max(p, 1e-12), 1 - 1e-12) as Python computes it (NaN stays NaN).
                let p = probs[j].clamp(1e-12, 1.0 - 1e-12);
                probs[j] = sigmoid((p / (1.0 - p)).ln() + offset);
            }
        }
        probs
    }
}

/// `learned.sigmoid`: the two branches of the Python code, so the same floats.
#[inline]
pub fn sigmoid(x: f64) -> f64 {
    if x >= 0.0 {
        1.0 / (1.0 + (-x).exp())
    } else {
        let e = x.exp();
        e / (1.0 + e)
    }
}
