"""What one ``convbench serve`` runs with: store, address, token, worker limit."""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass, field

from ..errors import ConfigError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``: only this machine can connect.

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, False, True)
    """
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Settings:
    """``token`` None on a loopback address means none is asked for; any other address gets
    a generated one unless given (:meth:`checked`)."""

    store: str | None
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None
    max_runs: int = 1
    open_browser: bool = False
    poll_s: float = 1.0  # the shared store poll of the live view (≤ 2 s behind)
    max_body: int = 256 * 1024  # bytes of a request body (a config, a search spec)
    extra: dict = field(default_factory=dict)

    @property
    def needs_token(self) -> bool:
        """Whether calls must carry the token: always off loopback, or when one is set."""
        return self.token is not None or not is_loopback(self.host)

    def checked(self) -> Settings:
        """Validate, and generate a token where one is needed but not given.

        >>> Settings(store=None, host="0.0.0.0").checked().token is not None
        True
        """
        if self.max_runs < 1:
            raise ConfigError(f"--max-runs {self.max_runs}: at least 1 run must be allowed.")
        if not 0 < self.port < 65536:
            raise ConfigError(f"--port {self.port}: use a port between 1 and 65535.")
        if self.token is not None and len(self.token) < 8:
            raise ConfigError("--token is too short: use at least 8 characters (or leave it "
                              "out and one is generated).")
        if self.needs_token and self.token is None:
            self.token = secrets.token_urlsafe(18)
        return self

    def url(self, path: str = "/") -> str:
        """The address to open, with the token when one is needed."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        if ":" in host and not host.startswith("["):
            host = f"[{host}]"
        query = f"?token={self.token}" if self.token else ""
        return f"http://{host}:{self.port}{path}{query}"
