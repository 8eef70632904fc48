"""Stage 2 of injection: the template (data from the chart) rendered for one pod.

The template is a YAML document with four keys: ``sidecar`` (the container),
``volumes``, ``appEnv`` (variables for the app containers) and ``annotations``.
It is parsed first and substituted second, so it is always valid YAML and no
value can inject structure:

* a scalar that is exactly ``${name}`` becomes the value itself (number,
  string, null); ``${name|string}`` forces a string (env values, annotations);
* ``${name}`` inside a longer string is interpolated as text;
* a mapping entry whose value renders to null is dropped, and so is a mapping
  left empty by that. This is how optional fields (limits) disappear.

Unknown names are errors; ``load_template`` renders once with the defaults so
a broken template is refused when it is loaded, not when a pod arrives.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from .values import InjectionValues

__all__ = ["Rendered", "Template", "TemplateError", "load_template", "render", "variables"]

_WHOLE = re.compile(r"^\$\{\s*([A-Za-z][A-Za-z0-9]*)\s*(\|\s*string\s*)?\}$")
_PART = re.compile(r"\$\{\s*([A-Za-z][A-Za-z0-9]*)\s*(?:\|\s*string\s*)?\}")
_KEYS = ("sidecar", "volumes", "appEnv", "annotations")


class TemplateError(ValueError):
    """The template cannot be used (bad YAML, unknown variable, wrong shape)."""


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template, with the text it came from (for change detection)."""

    tree: Mapping[str, Any]
    source: str


@dataclass(frozen=True, slots=True)
class Rendered:
    sidecar: dict[str, Any]
    volumes: list[dict[str, Any]]
    app_env: list[dict[str, Any]]
    annotations: dict[str, str]


def variables(values: InjectionValues, operator_ca: str | None) -> dict[str, Any]:
    """The names a template may use: every value in camelCase, plus the operator CA."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(values):
        head, *rest = f.name.split("_")
        value = getattr(values, f.name)
        out[head + "".join(p.title() for p in rest)] = (
            list(value) if isinstance(value, tuple) else value
        )
    out["operatorCA"] = operator_ca or None
    return out


def _lookup(name: str, env: Mapping[str, Any]) -> Any:
    if name not in env:
        raise TemplateError(f"unknown template variable ${{{name}}}; known: {', '.join(env)}")
    return env[name]


def _subst(node: Any, env: Mapping[str, Any]) -> Any:
    if isinstance(node, str):
        whole = _WHOLE.match(node)
        if whole:
            value = _lookup(whole[1], env)
            return None if value is None else (str(value) if whole[2] else value)

        def part(m: re.Match[str]) -> str:
            value = _lookup(m[1], env)
            return "" if value is None else str(value)

        return _PART.sub(part, node)
    if isinstance(node, Mapping):
        out: dict[str, Any] = {}
        for key, child in node.items():
            value = _subst(child, env)
            if value is None or (isinstance(value, dict) and not value and child):
                continue
            out[str(key)] = value
        return out
    if isinstance(node, list):
        return [_subst(child, env) for child in node]
    return node


def render(template: Template, values: InjectionValues, operator_ca: str | None) -> Rendered:
    tree = _subst(template.tree, variables(values, operator_ca))
    sidecar = tree.get("sidecar")
    if not isinstance(sidecar, dict) or not isinstance(sidecar.get("name"), str):
        raise TemplateError("template: sidecar must be a container with a name")
    volumes = tree.get("volumes") or []
    if not isinstance(volumes, list) or not all(
        isinstance(v, dict) and isinstance(v.get("name"), str) for v in volumes
    ):
        raise TemplateError("template: volumes must be a list of volumes with names")
    app_env = tree.get("appEnv") or []
    if not isinstance(app_env, list) or not all(
        isinstance(v, dict) and isinstance(v.get("name"), str) for v in app_env
    ):
        raise TemplateError("template: appEnv must be a list of env vars with names")
    annotations = tree.get("annotations") or {}
    if not isinstance(annotations, dict) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        raise TemplateError("template: annotations must map names to strings")
    return Rendered(sidecar, volumes, app_env, annotations)


def load_template(text: str) -> Template:
    """Parse and check a template by rendering it once with the default values."""
    try:
        tree = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise TemplateError(f"template is not valid YAML: {exc}") from None
    if not isinstance(tree, dict):
        raise TemplateError("template must be a mapping")
    unknown = sorted(set(tree) - set(_KEYS))
    if unknown:
        raise TemplateError(f"template: unknown keys {', '.join(unknown)}; known: {_KEYS}")
    template = Template(tree, text)
    render(template, InjectionValues(), "-----BEGIN CERTIFICATE-----\n")
    return template
