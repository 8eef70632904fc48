"""The ``RouteRequest`` the pipeline hands the router.

A plain Python module on purpose: ``prompt_text`` is a property here over a
dataclass field of ``RouteRequest``, and code compiled with mypyc (the request
path, ``_compiled.py``) reads the fields of its own classes directly. Kept out
of the compiled modules, the property is what every reader gets.
"""

from __future__ import annotations

from typing import Any

from switchman_sidecar.routing import BudgetView, RouteRequest

__all__ = ["BUDGET_OK", "LazyPromptRequest"]

BUDGET_OK = BudgetView()
"""The budget view of a pod without a budget (read-only, shared)."""


class LazyPromptRequest(RouteRequest):
    """A ``RouteRequest`` whose ``prompt_text`` is built only if the router reads it.

    Joining the message texts costs a walk over the whole prompt; most
    decisions (a pinned model, an alias, rules that do not read the task)
    never look at it.
    """

    __slots__ = ("_body", "_text")

    def __init__(
        self,
        body: dict[str, Any] | None,
        model: str,
        api: str = "chat",
        headers: dict[str, str] | None = None,
        input_tokens: int = 0,
        max_output_tokens: int | None = None,
        needs: frozenset[str] = frozenset(),
        pii_types: frozenset[str] = frozenset(),
        budget: BudgetView = BUDGET_OK,
    ) -> None:
        self._body = body
        self._text: str | None = None
        # Named parameters, not **fields: packing and unpacking a dict of them
        # doubled the cost of building the request.
        RouteRequest.__init__(
            self,
            model=model,
            api=api,
            headers=headers if headers is not None else {},
            input_tokens=input_tokens,
            max_output_tokens=max_output_tokens,
            needs=needs,
            pii_types=pii_types,
            budget=budget,
        )

    @property
    def prompt_text(self) -> str:
        if self._text is None:
            self._text = _prompt_text(self._body) if self._body is not None else ""
        return self._text

    @prompt_text.setter
    def prompt_text(self, value: str) -> None:
        if value:
            self._text = value


def _prompt_text(body: dict[str, Any]) -> str:
    parts: list[str] = []
    for msg in body.get("messages") or []:
        content = msg.get("content") if isinstance(msg, dict) else None
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            parts.extend(
                p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)
            )
    return "\n".join(parts)
