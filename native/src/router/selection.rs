//! `switchman_sidecar.routing.selection.rank_order` for inputs without NaN.
use std::cmp::Ordering;

/// Floats as Python compares them inside a tuple (no NaN here): `-0.0 == 0.0`.
fn cmp(a: f64, b: f64) -> Ordering {
    a.partial_cmp(&b).unwrap_or(Ordering::Equal)
}

/// The positions, best first (see the Python function); `None` if a key is NaN.
pub fn rank_order(
    qualities: &[f64],
    costs: &[f64],
    models: &[&str],
    bar: f64,
    cost_weight: f64,
) -> Option<Vec<usize>> {
    let n = qualities.len();
    let mut order: Vec<usize> = (0..n).collect();
    if n == 0 {
        return Some(order);
    }
    if cost_weight > 0.0 {
        // max(costs): the first of the largest.
        let mut top = costs[0];
        for &c in &costs[1..] {
            if c > top {
                top = c;
            }
        }
        let keep = 1.0 - cost_weight;
        let keys: Vec<f64> = if top > 0.0 {
            qualities
                .iter()
                .zip(costs)
                .map(|(&q, &c)| cost_weight * (c / top) - keep * q)
                .collect()
        } else {
            qualities.iter().map(|&q| -keep * q).collect()
        };
        if keys.iter().any(|k| k.is_nan()) {
            return None;
        }
        order.sort_by(|&a, &b| {
            cmp(keys[a], keys[b])
                .then_with(|| cmp(costs[a], costs[b]))
                .then_with(|| models[a].cmp(models[b]))
                .then_with(|| a.cmp(&b))
        });
        return Some(order);
    }
    let by_quality = |a: &usize, b: &usize| {
        cmp(-qualities[*a], -qualities[*b])
            .then_with(|| cmp(costs[*a], costs[*b]))
            .then_with(|| models[*a].cmp(models[*b]))
            .then_with(|| a.cmp(b))
    };
    if bar > 0.0 {
        let (mut clear, mut rest): (Vec<usize>, Vec<usize>) =
            order.into_iter().partition(|&i| qualities[i] >= bar);
        clear.sort_by(|&a, &b| {
            cmp(costs[a], costs[b])
                .then_with(|| models[a].cmp(models[b]))
                .then_with(|| a.cmp(&b))
        });
        rest.sort_by(by_quality);
        clear.extend(rest);
        return Some(clear);
    }
    order.sort_by(by_quality);
    Some(order)
}
