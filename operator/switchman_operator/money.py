"""Money in integer micro-USD.

Spend is summed over millions of records and compared with limits; floats
drift, integers do not. Every cost enters the operator through ``to_micros``
(round half to even on the sixth decimal, the precision of the
``x-switchman-cost`` header) and leaves through ``to_usd`` for display.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

__all__ = ["MICROS_PER_USD", "format_usd", "to_micros", "to_usd"]

MICROS_PER_USD = 1_000_000


def to_micros(usd: float) -> int:
    """USD (as a float from the wire) to integer micro-USD, exactly as printed to 6 places."""
    if usd != usd or usd in (float("inf"), float("-inf")):  # NaN / inf: refuse to count garbage
        raise ValueError(f"cost {usd!r} is not a finite number")
    return int((Decimal(repr(usd)) * MICROS_PER_USD).quantize(Decimal(1), ROUND_HALF_EVEN))


def to_usd(micros: int) -> float:
    return micros / MICROS_PER_USD


def format_usd(micros: int) -> str:
    """``$1.234567`` style text for events and printer columns."""
    sign = "-" if micros < 0 else ""
    whole, frac = divmod(abs(micros), MICROS_PER_USD)
    return f"{sign}${whole}.{frac:06d}"
