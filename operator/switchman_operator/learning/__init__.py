"""The learned router: offline training, evaluation, and online updates from outcomes.

Pure functions over protos and plain data (numpy inside); the operator calls
``update_router`` when usage batches carry feedback, and the CLI calls
``train``/``evaluate``. See docs/routing.md.
"""

from __future__ import annotations

from .dataset import Example, from_llmrouter, load_examples, load_prices, parse_examples, split
from .online import update_router
from .train import (
    TrainSettings,
    dump_model,
    load_model,
    model_bytes,
    predict,
    read_model_file,
    train,
)

__all__ = [
    "Example",
    "TrainSettings",
    "dump_model",
    "from_llmrouter",
    "load_examples",
    "load_model",
    "load_prices",
    "model_bytes",
    "parse_examples",
    "predict",
    "read_model_file",
    "split",
    "train",
    "update_router",
]
