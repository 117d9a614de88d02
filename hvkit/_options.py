"""Connection options: credentials from arguments, the URL, environment variables or a profile."""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._secrets import is_secret
from ._url import URL, parse_url
from .errors import InvalidSpec, NotFound

__all__ = ["ConnectOptions", "config_path", "load_profile", "resolve"]

CONFIG_ENV = "HVKIT_CONFIG"
DEFAULT_CONFIG = Path("~/.config/hvkit/config.toml")
_BOOL = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _hidden(value: object) -> str:
    return "None" if value is None else "'***'"


def _hide_options(options: Mapping[str, Any]) -> str:
    return repr({k: ("***" if is_secret(k) else v) for k, v in options.items()})


@attrs.frozen
class ConnectOptions:
    """Everything a backend needs to connect. Secrets never show in its repr."""

    url: URL
    username: str | None = None
    password: str | None = attrs.field(default=None, repr=_hidden)
    token: str | None = attrs.field(default=None, repr=_hidden)
    verify_tls: bool = True
    ca_file: str | None = None
    timeout: float = 30.0
    options: Mapping[str, Any] = attrs.field(factory=dict, repr=_hide_options, hash=False)

    def option(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def bool_option(self, name: str, default: bool) -> bool:
        return as_bool(name, self.options.get(name, default))


def as_bool(name: str, value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _BOOL:
        raise InvalidSpec(f"option {name} must be true or false, got {value!r}")
    return _BOOL[text]


def config_path() -> Path:
    return Path(os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG).expanduser()


def load_profile(name: str) -> dict[str, Any]:
    """Read ``[profiles.NAME]`` from the config file (``$HVKIT_CONFIG`` or ~/.config/hvkit/config.toml)."""
    path = config_path()
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"profile {name!r}: no config file at {path} (set {CONFIG_ENV} to another)") from None
    except tomllib.TOMLDecodeError as exc:
        raise InvalidSpec(f"config file {path} is not valid TOML: {exc}") from None
    profiles = data.get("profiles", {})
    if name not in profiles:
        known = ", ".join(sorted(profiles)) or "none"
        raise NotFound(f"profile {name!r} is not in {path} (profiles there: {known})")
    profile = dict(profiles[name])
    for key in ("password", "token"):  # password_env = "VAR" reads the secret from the environment
        env_name = profile.pop(f"{key}_env", None)
        if env_name and os.environ.get(env_name):
            profile.setdefault(key, os.environ[env_name])
    return profile


def _env(kind: str, key: str) -> str | None:
    return os.environ.get(f"HVKIT_{kind.upper()}_{key}") or os.environ.get(f"HVKIT_{key}")


def resolve(
    url: str | URL | None,
    *,
    profile: str | None,
    explicit: Mapping[str, Any],
    backend_options: Mapping[str, Any],
) -> ConnectOptions:
    """Merge settings: explicit arguments win over the URL, the URL over the profile, the profile over env."""
    prof = load_profile(profile) if profile else {}
    prof_options = dict(prof.pop("options", {}))
    url_text = url if url is not None else prof.get("url") or os.environ.get("HVKIT_URL")
    if url_text is None:
        raise InvalidSpec("no connection URL: pass one, a profile, or set HVKIT_URL")
    parsed = url_text if isinstance(url_text, URL) else parse_url(url_text)
    query = dict(parsed.query)
    merged: dict[str, Any] = {}
    for key in ("username", "password", "token", "verify_tls", "ca_file", "timeout"):
        from_url: Any = getattr(parsed, key, None) if key in ("username", "password") else query.pop(key, None)
        for candidate in (explicit.get(key), from_url, prof.get(key)):
            if candidate is not None:
                merged[key] = candidate
                break
    for key in ("username", "password", "token"):
        if merged.get(key) is None:
            merged[key] = _env(parsed.kind, key.upper())
    options = {**prof_options, **query, **backend_options}
    try:
        timeout = float(merged.get("timeout", 30.0))
    except (TypeError, ValueError):
        raise InvalidSpec(f"timeout must be a number of seconds, got {merged.get('timeout')!r}") from None
    if not timeout > 0:
        raise InvalidSpec(f"timeout must be > 0 seconds, got {timeout}")
    return ConnectOptions(
        url=attrs.evolve(parsed, password=None, query={}),
        username=merged.get("username"),
        password=merged.get("password"),
        token=merged.get("token"),
        verify_tls=as_bool("verify_tls", merged.get("verify_tls", True)),
        ca_file=merged.get("ca_file"),
        timeout=timeout,
        options=options,
    )
