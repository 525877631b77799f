"""Stateful sessions (InvokeEndpoint ``SessionId``): requests of a session go to the instance
that opened it.

The model owns its sessions: it answers a ``NEW_SESSION`` request with
``X-Amzn-SageMaker-New-Session-Id: <id>; Expires=<time>`` and a request that closes one with
``X-Amzn-SageMaker-Closed-Session-Id: <id>``. moorage only remembers where each open session
lives. A session id it does not know (expired, closed, or its instance gone) is routed as any
request is, and the model answers it as it sees fit.
"""

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Final

from moorage.contract import CLOSED_SESSION_ID, NEW_SESSION_ID

if TYPE_CHECKING:
    from moorage.routing.table import InstanceRoute, VariantRoute

NEW_SESSION: Final = "NEW_SESSION"
# A session whose model gave no readable expiry is forgotten after this long.
_DEFAULT_LIFETIME_S: Final = 3600.0


@dataclass(eq=False, slots=True)
class _Session:
    variant: "VariantRoute"
    instance: "InstanceRoute"
    expires: float  # time.time()


@dataclass(eq=False, slots=True)
class Sessions:
    """One endpoint's open sessions, by id."""

    _open: dict[str, _Session] = field(default_factory=dict)
    # Expired sessions are dropped when the table has doubled since the last sweep.
    _swept_at: int = 64

    def __len__(self) -> int:
        return len(self._open)

    def find(self, session_id: str) -> "tuple[VariantRoute, InstanceRoute] | None":
        """Where the session lives, while it is open and its instance still serves."""
        session = self._open.get(session_id)
        if session is None:
            return None
        if session.expires <= time.time() or session.instance not in session.variant.instances:
            del self._open[session_id]
            return None
        return session.variant, session.instance

    def note(
        self,
        headers: Sequence[tuple[str, str]],
        variant: "VariantRoute",
        instance: "InstanceRoute",
    ) -> None:
        """Record what the model's answer (``headers``) says it opened or closed."""
        for name, value in headers:
            name = name.lower()
            if name == NEW_SESSION_ID:
                session_id, _, expiry = value.partition(";")
                self._open[session_id.strip()] = _Session(variant, instance, _expires(expiry))
                if len(self._open) >= self._swept_at:
                    self._sweep()
            elif name == CLOSED_SESSION_ID:
                self._open.pop(value.strip(), None)

    def _sweep(self) -> None:
        now = time.time()
        for session_id in [k for k, s in self._open.items() if s.expires <= now]:
            del self._open[session_id]
        self._swept_at = max(64, 2 * len(self._open))


def _expires(attribute: str) -> float:
    """The time an ``Expires=2024-09-10T18:23:45Z`` attribute names; a default lifetime if it
    names none."""
    key, _, value = attribute.strip().partition("=")
    if key.strip().lower() == "expires":
        try:
            return datetime.fromisoformat(value.strip()).timestamp()
        except ValueError:
            pass
    return time.time() + _DEFAULT_LIFETIME_S
