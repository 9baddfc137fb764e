"""The Kite broker's ``broker.kite`` section, declared once. Secrets are never in it: it names the
environment variables (or the token file) that hold them."""

from __future__ import annotations

from dataclasses import dataclass

from hostspec.config import setting


@dataclass(frozen=True)
class KiteSettings:
    api_key_env: str = setting("KITE_API_KEY", "environment variable holding the API key")
    access_token_env: str = setting("KITE_ACCESS_TOKEN", "environment variable holding the access token")
    api_secret_env: str = setting("KITE_API_SECRET", "environment variable holding the API secret "
                                                     "(tradehost kite login only)")
    root: str = setting("https://api.kite.trade", "API root (a local simulator's URL in tests)")
    timeout_seconds: float = setting(7.0, "HTTP timeout per request", minimum=0.1)
    access_token_file: str | None = setting(None, "a file holding the access token, re-read when the session "
                                                  "expires (tradehost kite login --token-file writes it)")
