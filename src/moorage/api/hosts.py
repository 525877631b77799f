"""Which ``Host`` an unsigned server answers: the defence against DNS rebinding.

A server on loopback with no keys accepts any request, for local development. A web page the
developer happens to visit can still reach it: its script makes its own host name resolve to
127.0.0.1 (DNS rebinding), after which its requests are same-origin to the browser and drive
the control plane. Such requests carry the page's host name in ``Host``, which no SageMaker
client sends to a local server: clients name the address they connect to. So an unsigned
server answers only a ``Host`` that is an IP address, ``localhost`` (or a ``.localhost`` name,
which resolves to loopback by definition), this machine's own host name (which a page cannot
make its origin), or a name in ``MOORAGE_ALLOWED_HOSTS``. Jupyter and Django's
``ALLOWED_HOSTS`` guard development servers the same way.
"""

import ipaddress
import socket
from collections.abc import Iterable
from typing import Final

# Distinct Host values remembered; a client sends the same one on every request.
_REMEMBERED: Final = 64


class HostCheck:
    def __init__(self, allowed: Iterable[str] = ()) -> None:
        self._allowed = {name.strip().lower() for name in allowed if name.strip()}
        self._allowed.add(socket.gethostname().lower())
        self._verdicts: dict[str, bool] = {}

    def allows(self, host: str | None) -> bool:
        """Whether a request with this ``Host`` header (None: none sent) may be answered."""
        if host is None:
            return True
        verdict = self._verdicts.get(host)
        if verdict is None:
            verdict = self._judge(host)
            if len(self._verdicts) < _REMEMBERED:
                self._verdicts[host] = verdict
        return verdict

    def _judge(self, host: str) -> bool:
        if host.startswith("["):
            name = host[1 : host.find("]")]
        else:
            name = host.partition(":")[0]
        name = name.lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            return name == "localhost" or name.endswith(".localhost") or name in self._allowed
        return True
