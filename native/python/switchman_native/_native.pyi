# Type stubs of the compiled module (native/src). One section per source file.

# --- router.rs ---
# The hash-v1 featurizer (switchman_protocol.featurize) and the learned router's
# scorer (switchman_sidecar.routing.learned); ``mask`` is ``dim - 1``.
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any

MAX_FEATURES: int

def task_kind(text: str) -> str: ...
def analyze_set(text: str, mask: int) -> tuple[str, set[int]]: ...
def analyze(text: str, mask: int) -> tuple[str, list[int]]: ...
def featurize_batch(texts: list[str], mask: int) -> list[list[int]]: ...
def rank_order(
    qualities: Sequence[float],
    costs: Sequence[float],
    models: Sequence[str],
    bar: float = 0.0,
    cost_weight: float = 0.0,
) -> list[int] | None: ...
def featurizer_word_lists() -> list[tuple[str, list[str]]]: ...

class Features:
    """A prompt's unique feature indices, kept in Rust for one scorer."""

    def __len__(self) -> int: ...
    def __iter__(self) -> Iterator[int]: ...
    def __contains__(self, item: object) -> bool: ...

class LearnedScorer:
    def __init__(
        self,
        dim: int,
        weights: list[list[float]],
        biases: list[float],
        names: list[str],
        quantum: float,
        scale: float,
        adjust: list[tuple[tuple[str, str], float]],
        share: float,
        votes: list[list[float]],
        proto_rows: list[tuple[int, ...]],
    ) -> None: ...
    @property
    def dim(self) -> int: ...
    def analyze(self, text: str) -> tuple[str, Features]: ...
    def analyze_predict(self, text: str) -> tuple[str, list[float]]: ...
    def predict_list(self, indices: Collection[int], task: str) -> list[float]: ...

# --- pii.rs ---

def pii_word_lists() -> list[tuple[str, list[str]]]: ...

# phone_ok, possible_number, iban_ok, ip_ok (switchman_sidecar.pii.native)
_Checks = tuple[
    Callable[[str, int, str], bool],
    Callable[[str], bool],
    Callable[[str], bool],
    Callable[[str], bool],
]

class PiiScanner:
    """The PII scan's word-list recognizers (switchman_sidecar.pii.native)."""

    def __init__(
        self,
        first_names: frozenset[str],
        last_names: frozenset[str],
        common_words: frozenset[str],
        english: frozenset[str],
        street_words: frozenset[str],
        places: frozenset[str],
        place_first_words: frozenset[str],
        common_names: frozenset[str],
        flags: bytes,
        lower: bytes,
        astral: Callable[[str], tuple[int, str]],
        checks: _Checks,
    ) -> None: ...
    @staticmethod
    def from_text(
        data: bytes,
        flags: bytes,
        lower: bytes,
        astral: Callable[[str], tuple[int, str]],
        checks: _Checks,
    ) -> PiiScanner: ...
    def list_sizes(self) -> list[tuple[str, int]]: ...
    def scan(
        self, text: str, found: list[tuple[int, int, int]], names: bool, addresses: bool
    ) -> list[tuple[int, int, int, int]] | None: ...
    def number_spans(self, text: str) -> list[list[tuple[int, int]]] | None: ...
    def structured(self, text: str) -> list[list[tuple[int, int]]] | None: ...
    def find_persons(
        self, text: str, skip: list[tuple[int, int]]
    ) -> list[tuple[int, int]] | None: ...
    def find_addresses(
        self, text: str, barriers: list[tuple[int, int]]
    ) -> list[tuple[int, int]] | None: ...
    def find_locations(
        self, text: str, taken: list[tuple[int, int]]
    ) -> list[tuple[int, int]] | None: ...

# --- request.rs ---

def parse_request(
    data: bytes, max_body: int
) -> tuple[str, str, str, dict[str, str], bytes, bool] | None:
    """(method, path, query, headers, body, keep_alive) of one whole plain
    HTTP/1.1 request, or None (then httptools parses the bytes)."""

def parse_response(
    data: bytes, max_body: int
) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool] | None:
    """(status, headers, body, keep_alive) of one whole plain HTTP/1.1 answer
    with a content-length body, or None (then httptools parses the bytes)."""

# --- lane.rs ---

LaneRoute = tuple[
    str,
    str,
    str,
    str,
    int,
    bytes,
    bytes,
    tuple[float, float, float],
    int,
    float,
    list[tuple[float, float, int]],
]
"""(name, model, upstream_name, ip, port, head, tail, (input_price, cached_price,
output_price), context_window, per_try_timeout_s, [(input_price, output_price,
max_output_tokens) per candidate])."""

class Lane:
    """The native lane's thread (sidecar/switchman_sidecar/lane.py)."""

    def __init__(self, notify_fd: int, settle_delay_s: float = 0.0) -> None: ...
    def start(
        self,
        listen_fd: int,
        max_body: int,
        header_timeout_s: float,
        keepalive_timeout_s: float,
        boot: str,
    ) -> None: ...
    def set_routes(self, routes: list[LaneRoute] | None, forward: list[str]) -> None: ...
    def take(self) -> list[tuple[Any, ...]]:
        """("done", ...), ("handoff", fd, data, failure) or ("dead", why) events."""
    def stop(self, grace_s: float) -> None: ...
    def set_credit(self, limit: float | None) -> None: ...
    def credit(self) -> tuple[float | None, float]: ...
    def reclaim(self) -> float: ...
    def busy(self) -> int: ...
    def join(self) -> None: ...
