//! Compiled hot paths of the Switchman sidecar, exposed to Python as
//! `switchman_native._native`. Each module registers its own functions and
//! classes; the Python reference implementations stay the specification, and
//! tests compare the two on the shared data.
use pyo3::prelude::*;

mod lane;
mod lane_sse;
mod pii;
mod request;
mod router;

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    router::register(m)?;
    pii::register(m)?;
    request::register(m)?;
    lane::register(m)?;
    Ok(())
}
