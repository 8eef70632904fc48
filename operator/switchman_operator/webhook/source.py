"""The injection template and values, reloaded from the ConfigMap-mounted files.

The kubelet swaps ConfigMap volumes atomically (a symlink flip), so the files
are re-read and compared by content every ``reload_interval``. A change that
does not load (bad YAML, unknown variable, unknown value) is logged and the
last good pair stays in use: a typo in the chart must not stop injection.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from ..injection import InjectionValues, Template, TemplateError, ValuesError, load_template

__all__ = ["InjectionSource", "Loaded"]

log = logging.getLogger("switchman.webhook")


@dataclass(frozen=True, slots=True)
class Loaded:
    template: Template
    values: InjectionValues
    #: The raw text of both files, to tell a real change from a re-read.
    key: tuple[str, str]


class InjectionSource:
    def __init__(self, template_file: Path, values_file: Path) -> None:
        self.template_file = template_file
        self.values_file = values_file
        self.current: Loaded | None = None
        self.last_error = ""
        #: Successful loads, including the first (tests wait on it).
        self.generation = 0

    def _read(self) -> tuple[str, str]:
        values = self.values_file.read_text() if self.values_file.exists() else ""
        return self.template_file.read_text(), values

    def poll(self) -> bool:
        """Re-read the files; True when a new template or values were taken into use."""
        try:
            key = self._read()
        except OSError as exc:
            return self._failed(f"cannot read the injection template: {exc}")
        if self.current is not None and key == self.current.key:
            return False
        try:
            loaded = Loaded(load_template(key[0]), InjectionValues.from_json(key[1]), key)
        except (TemplateError, ValuesError) as exc:
            return self._failed(str(exc))
        first = self.current is None
        self.current, self.last_error = loaded, ""
        self.generation += 1
        log.info(
            "injection template %s (generation %d)",
            "loaded" if first else "reloaded",
            self.generation,
        )
        return True

    def _failed(self, message: str) -> bool:
        if message != self.last_error:
            keeping = "keeping the previous one" if self.current else "nothing to inject with"
            log.error("injection template rejected (%s): %s", keeping, message)
        self.last_error = message
        return False
