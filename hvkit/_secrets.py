"""Names of options that hold secrets, and how they are shown."""

from __future__ import annotations

SECRET_KEYS = frozenset({"password", "token", "secret", "api_token", "token_value", "ticket", "cookie", "session"})


def mask(value: object) -> str:
    return "***" if value else repr(value)


def is_secret(key: str) -> bool:
    key = key.lower()
    return key in SECRET_KEYS or any(word in key for word in ("password", "secret", "token"))
