"""Connection options: credentials from arguments, the URL, environment variables or a profile."""

from __future__ import annotations

import math
import os
import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from ._secrets import is_secret
from ._url import URL, parse_url
from .errors import InvalidSpec, NotFound
from .models._checks import shown

__all__ = ["ConnectOptions", "as_bool", "as_float", "as_int", "config_path", "load_profile", "resolve"]

CONFIG_ENV = "HVKIT_CONFIG"
DEFAULT_CONFIG = Path("~/.config/hvkit/config.toml")
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
MAX_SECONDS = 1e7  # timeouts and delays: about 115 days
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

    def int_option(self, name: str, default: int, *, low: int, high: int) -> int:
        """Option ``name`` as a whole number in ``low..high`` (InvalidSpec otherwise)."""
        return as_int(name, self.options.get(name, default), low=low, high=high)

    def float_option(self, name: str, default: float, *, low: float, high: float) -> float:
        """Option ``name`` as a finite number in ``low..high`` (InvalidSpec otherwise)."""
        return as_float(name, self.options.get(name, default), low=low, high=high)


def as_bool(name: str, value: object) -> bool:
    """``True``/``False``, or one of 1/0, true/false, yes/no, on/off (any case)."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower() if isinstance(value, str | int) else ""
    if text not in _BOOL:
        raise InvalidSpec(f"option {name} must be true or false, got {shown(value)}")
    return _BOOL[text]


def as_int(name: str, value: object, *, low: int, high: int) -> int:
    """An int (not a bool) or a string of ASCII digits, in ``low..high``."""
    if isinstance(value, str) and _INT.fullmatch(value.strip()) and len(value) <= 100:
        number = int(value.strip())
    elif isinstance(value, int) and not isinstance(value, bool):
        number = value
    else:
        raise InvalidSpec(f"option {name} must be a whole number, got {shown(value)}")
    if not low <= number <= high:
        raise InvalidSpec(f"option {name} must be between {low} and {high}, got {shown(number)}")
    return number


def as_float(name: str, value: object, *, low: float, high: float) -> float:
    """A finite int or float (not a bool) or a decimal string in ASCII, in ``low..high``."""
    if isinstance(value, str) and _FLOAT.fullmatch(value.strip()) and len(value) <= 100:
        number = float(value.strip())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        try:
            number = float(value)
        except OverflowError:
            number = math.inf
    elif isinstance(value, str) and value.strip().lower().lstrip("+-") in ("nan", "inf", "infinity"):
        number = math.nan
    else:
        raise InvalidSpec(f"option {name} must be a number, got {shown(value)}")
    if not math.isfinite(number):
        raise InvalidSpec(f"option {name} must be a finite number, got {shown(value)}")
    if number < low:
        raise InvalidSpec(f"option {name} must be at least {low}, got {number}")
    if number > high:
        raise InvalidSpec(f"option {name} must be at most {high}, got {number}")
    return number


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
    if profile is not None and not isinstance(profile, str):
        raise InvalidSpec(f"profile must be a profile's name, got {type(profile).__name__}")
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
    for key in ("username", "password", "token", "ca_file"):
        if merged.get(key) is not None and not isinstance(merged[key], str):
            raise InvalidSpec(f"{key} must be a string, got {type(merged[key]).__name__}")  # never the value
    timeout = as_float("timeout", merged.get("timeout", 30.0), low=0.001, high=MAX_SECONDS)
    if "task_timeout" in options:  # options read by core itself, whatever the backend
        options["task_timeout"] = as_float("task_timeout", options["task_timeout"], low=0.001, high=MAX_SECONDS)
    if "local_files" in options:
        options["local_files"] = as_bool("local_files", options["local_files"])
    verify_tls = as_bool("verify_tls", merged.get("verify_tls", True))
    ca_file = merged.get("ca_file")
    if ca_file is not None and verify_tls:
        _check_ca_file(ca_file)
    return ConnectOptions(
        url=attrs.evolve(parsed, password=None, query={}),
        username=merged.get("username"),
        password=merged.get("password"),
        token=merged.get("token"),
        verify_tls=verify_tls,
        ca_file=ca_file,
        timeout=timeout,
        options=options,
    )


def _check_ca_file(ca_file: str) -> None:
    """A CA file must be a readable regular file: say which one, before any connection is tried."""
    if not ca_file:
        raise InvalidSpec("ca_file is empty: give the path of a CA certificate file (PEM)")
    try:
        path = Path(ca_file).expanduser()
        if not path.exists():
            raise InvalidSpec(f"ca_file {str(path)!r} does not exist")
        if not path.is_file():  # a folder, a FIFO or a device: never opened (a FIFO would block)
            raise InvalidSpec(f"ca_file {str(path)!r} is not a regular file (a CA certificate file, PEM)")
        with path.open("rb") as handle:
            handle.read(1)
    except InvalidSpec:
        raise
    except (OSError, ValueError, RuntimeError) as exc:  # no permission, NUL or a lone surrogate in the name, no ~user
        raise InvalidSpec(f"ca_file {ca_file[:200]!r} cannot be read: {type(exc).__name__}") from None
