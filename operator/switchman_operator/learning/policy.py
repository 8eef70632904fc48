"""A RoutingPolicy's router parameters from its ConfigMaps. Pure.

Two ConfigMaps feed a policy's learned router:

* the **model** (``spec.router.modelRef``: a ``switchman-router/v1`` file
  written by ``switchman router train``), owned by the user;
* the **learned offsets** (``<policy>-switchman-learned``, key
  ``offsets.json``), owned and written by the operator from feedback
  (``learning/feedback.py``), so what was learned survives restarts and is
  shared by every replica.

The model may be gzipped (``router train --out NAME.json.gz``; a ConfigMap holds
1 MiB in all, about 20 models' heads as plain JSON): ``kubectl create configmap
--from-file`` then puts it under ``binaryData``, which is read too.

The compiler merges both into ``RouteTable.router``. A 430 KB model is parsed
once per distinct text (the route table is recompiled on every budget write),
hence the cache keyed by the text itself.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
from collections.abc import Mapping

from switchman_protocol.v1 import routes_pb2

from .train import load_model, model_text

__all__ = [
    "OFFSETS_FORMAT",
    "OFFSETS_KEY",
    "STATE_PREFIXES",
    "decode_offsets",
    "encode_offsets",
    "model_from_configmaps",
]

OFFSETS_KEY = "offsets.json"
OFFSETS_FORMAT = "switchman-learned/v1"
#: Params the online update owns: counts, sums and the offsets the sidecar applies.
STATE_PREFIXES = ("fb_n/", "fb_s/", "adj/")


@functools.lru_cache(maxsize=32)
def _parse(text: str) -> routes_pb2.RouterParams | str:
    """A model from a ConfigMap value: the JSON text under ``data``, or under
    ``binaryData`` (base64, as the API gives it) the file's bytes, plain or gzipped
    (``kubectl create configmap --from-file`` puts a gzipped file there)."""
    try:
        if text.lstrip()[:1] in ("{", ""):
            return load_model(text)
        try:
            raw = base64.b64decode(text, validate=True)
        except binascii.Error:
            return load_model(text)  # neither JSON nor base64: load_model says why
        return load_model(model_text(raw))
    except ValueError as exc:
        return str(exc)


def model_from_configmaps(
    configmaps: Mapping[str, Mapping[str, str]], name: str, key: str
) -> routes_pb2.RouterParams | str:
    """The parsed model, or a message saying why there is none (for a status condition).

    The returned proto is shared by the cache: copy it, never modify it.
    """
    data = configmaps.get(name)
    if data is None:
        return f"ConfigMap {name} not found"
    text = data.get(key)
    if text is None:
        return f"ConfigMap {name} has no key {key}"
    parsed = _parse(text)
    if isinstance(parsed, str):
        return f"ConfigMap {name}/{key}: {parsed}"
    return parsed


def decode_offsets(data: Mapping[str, str] | None) -> dict[str, float]:
    """The learned state in an offsets ConfigMap; an unreadable one counts as empty
    (it is the operator's own cache of feedback, rebuilt by new feedback)."""
    if not data or OFFSETS_KEY not in data:
        return {}
    try:
        doc = json.loads(data[OFFSETS_KEY])
    except ValueError:
        return {}
    if not isinstance(doc, dict) or doc.get("format") != OFFSETS_FORMAT:
        return {}
    params = doc.get("params")
    if not isinstance(params, dict):
        return {}
    return {
        str(k): float(v)
        for k, v in params.items()
        if isinstance(v, int | float) and str(k).startswith(STATE_PREFIXES)
    }


def encode_offsets(params: Mapping[str, float]) -> dict[str, str]:
    """ConfigMap ``data`` for the learned state (sorted: equal state, equal bytes)."""
    state = {k: params[k] for k in sorted(params) if k.startswith(STATE_PREFIXES)}
    doc = {"format": OFFSETS_FORMAT, "params": state}
    return {OFFSETS_KEY: json.dumps(doc, sort_keys=True, separators=(",", ":"))}
