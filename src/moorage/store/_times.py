"""Times as the store keeps them: whole milliseconds since the Unix epoch, UTC.

Integers compare and sort the same on every engine, and round-trip exactly; SageMaker's wire
times carry milliseconds too.
"""

from datetime import UTC, datetime, timedelta
from typing import Final

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)


def to_ms(value: datetime) -> int:
    """``value`` (timezone-aware) as milliseconds since the epoch; finer digits are dropped."""
    if value.tzinfo is None:
        raise ValueError(f"the store needs timezone-aware times, not naive {value.isoformat()}")
    return (value - _EPOCH) // _MILLISECOND


def from_ms(value: int) -> datetime:
    """Milliseconds since the epoch as a UTC ``datetime``."""
    return _EPOCH + value * _MILLISECOND


def now_ms() -> int:
    return to_ms(datetime.now(UTC))
