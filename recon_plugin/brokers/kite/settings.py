"""The Kite broker's ``broker.kite`` section, declared once. Secrets are never in it: it names the
environment variables (or the token file) that hold them."""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from decimal import Decimal

from hostspec.config import SettingError, setting
from recon_plugin.brokers.kite.orders import market_protection_problem
from recon_plugin.brokers.kite.postback import parse_address

VARIABLE_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
"""What an ``*_env`` setting may hold: an environment variable's name as POSIX utilities spell them
(upper case, digits, underscores). Stricter than what a shell accepts, on purpose: a Kite API key is
lower-case letters and digits and an access token mixes cases, so a secret pasted where its
variable's name belongs never passes for a name, and is never quoted back (in an error, a log)."""


def variable_name_problem(value: str) -> str | None:
    """Why ``value`` is not an environment variable's name (without quoting it: it may be the secret
    itself), or None when it is one."""
    if VARIABLE_NAME.fullmatch(value):
        return None
    return ("is not an environment variable name (A-Z, 0-9 and _, not starting with a digit); if it is "
            "the secret itself, take it out of the file: set the variable in the environment and name it here")


@dataclass(frozen=True)
class KiteSettings:
    api_key_env: str = setting("KITE_API_KEY", "environment variable holding the API key")
    access_token_env: str = setting("KITE_ACCESS_TOKEN", "environment variable holding the access token")
    api_secret_env: str = setting("KITE_API_SECRET", "environment variable holding the API secret "
                                                     "(tradehost kite login, and postbacks' checksums)")
    root: str = setting("https://api.kite.trade", "API root (a local simulator's URL in tests)")
    timeout_seconds: float = setting(7.0, "HTTP timeout per request", minimum=0.1)
    access_token_file: str | None = setting(None, "a file holding the access token, re-read when the session "
                                                  "expires (tradehost kite login --token-file writes it)")
    market_protection: float = setting(-1.0, "market protection sent with MARKET and SL-M orders: -1 for Kite's "
                                             "automatic protection, or a percentage above 0 and at most 100 (Kite "
                                             "refuses unprotected market orders from the API)")
    push: bool = setting(True, "receive order updates through Kite's WebSocket as they happen (polling stays the "
                               "backstop)")
    ws_root: str = setting("wss://ws.kite.trade", "WebSocket root of the order updates (a local simulator's URL in "
                                                  "tests); used only with a WebSocket root of the same kind as root")
    push_silence_seconds: float = setting(8.0, "no frame (Kite sends a heartbeat about every second) for this long "
                                               "is a disconnect: the socket is opened again", minimum=1.0)
    postback_address: str | None = setting(None, "host:port to receive Kite's postbacks on (null: none); the "
                                                 "checksum is verified with the secret named by api_secret_env")

    def check(self) -> None:
        """Each ``*_env`` setting names a variable (``variable_name_problem``), refused when the file
        is loaded: before the broker (or ``kite login``) would say "environment variable <it> is not
        set", quoting a secret written in its place."""
        for field in fields(self):
            if field.name.endswith("_env") and (problem := variable_name_problem(getattr(self, field.name))):
                raise SettingError(field.name, problem)
        if problem := market_protection_problem(Decimal(str(self.market_protection))):
            raise SettingError("market_protection", problem)
        if not self.ws_root.startswith(("ws://", "wss://")):
            raise SettingError("ws_root", "must be a ws:// or wss:// URL")
        if self.postback_address is not None:
            try:
                parse_address(self.postback_address)
            except ValueError as exc:
                raise SettingError("postback_address", str(exc)) from None
