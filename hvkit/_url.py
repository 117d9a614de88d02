"""Connection URLs: ``kind[+transport]://[user[:password]@]host[:port][/path][?options]``."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping

import attrs

from ._secrets import SECRET_KEYS, mask
from .errors import InvalidSpec
from .models._checks import has_control

__all__ = ["URL", "parse_url"]

_SCHEME_PART = re.compile(r"[a-z][a-z0-9-]*")
_PORT = re.compile(r"[0-9]{1,5}")


def _to_dict(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise InvalidSpec(f"URL query must be a mapping of strings, got {type(value).__name__}")
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise InvalidSpec("URL query keys and values must be strings")
    return dict(value)


def _check_fields(url: URL) -> None:
    if not isinstance(url.kind, str) or not _SCHEME_PART.fullmatch(url.kind):
        raise InvalidSpec(f"URL kind must be a lower-case ASCII name like 'kvm', got {type(url.kind).__name__}")
    if url.transport is not None and (not isinstance(url.transport, str) or not _SCHEME_PART.fullmatch(url.transport)):
        raise InvalidSpec("URL transport must be a lower-case ASCII name like 'ssh' or None")
    for field in ("username", "password", "host"):
        if getattr(url, field) is not None and not isinstance(getattr(url, field), str):
            raise InvalidSpec(f"URL {field} must be a string or None")
    if url.host is not None and (has_control(url.host) or any(c.isspace() or c in "/?#@\\" for c in url.host)):
        raise InvalidSpec(f"URL host {url.host!r} holds a blank, a control character or one of / ? # @ \\")
    if url.port is not None and (
        isinstance(url.port, bool) or not isinstance(url.port, int) or not 0 < url.port < 65536
    ):
        raise InvalidSpec("URL port must be a whole number from 1 to 65535 or None")
    if not isinstance(url.path, str):
        raise InvalidSpec("URL path must be a string")
    if url.path and not url.path.startswith("/"):  # as parsed: what follows the host starts with '/'
        raise InvalidSpec(f"URL path must be empty or start with '/', got {url.path!r}")


@attrs.frozen(repr=False)
class URL:
    """A parsed connection URL. Its repr and str hide the password and secret query options."""

    kind: str
    transport: str | None = None
    username: str | None = None
    password: str | None = None
    host: str | None = None
    port: int | None = None
    path: str = ""
    query: Mapping[str, str] = attrs.field(factory=dict, converter=_to_dict, hash=False)

    def __attrs_post_init__(self) -> None:
        _check_fields(self)

    def render(self, *, hide_secrets: bool = True) -> str:
        scheme = self.kind + (f"+{self.transport}" if self.transport else "")
        auth = ""
        if self.username is not None:
            auth = urllib.parse.quote(self.username, safe="@")
            if self.password is not None:
                auth += ":" + ("***" if hide_secrets else urllib.parse.quote(self.password, safe=""))
            auth += "@"
        host = self.host or ""
        netloc = auth + (f"[{host}]" if ":" in host else host)  # an IPv6 address in brackets
        if self.port is not None:
            netloc += f":{self.port}"
        text = f"{scheme}://{netloc}{self.path}"
        if self.query:
            items = {k: (mask(v) if hide_secrets and k.lower() in SECRET_KEYS else v) for k, v in self.query.items()}
            text += "?" + urllib.parse.urlencode(items)
        return text

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"URL({self.render()!r})"


def parse_url(text: str) -> URL:
    """Parse a connection URL; raise InvalidSpec saying what is wrong."""
    if text == "":
        raise InvalidSpec("connection URL is empty: it must look like kind://host (e.g. kvm:///system)")
    if not isinstance(text, str) or "://" not in text:
        raise InvalidSpec(f"connection URL {mask_url(text)!r} must look like kind://host (e.g. kvm:///system)")
    if has_control(text):
        raise InvalidSpec(f"connection URL {mask_url(text)!r} contains a control character")
    scheme, rest = text.split("://", 1)
    kind, plus, transport = scheme.lower().partition("+")
    if not _SCHEME_PART.fullmatch(kind) or (plus and not _SCHEME_PART.fullmatch(transport)):
        raise InvalidSpec(f"connection URL has an invalid scheme {scheme!r} (ASCII letters, digits and '-')")
    rest, _, query_text = rest.partition("?")
    netloc, slash, path = rest.partition("/")
    auth, at, hostport = netloc.rpartition("@")
    username = password = None
    if at:
        user_text, colon, pass_text = auth.partition(":")
        username = urllib.parse.unquote(user_text)
        password = urllib.parse.unquote(pass_text) if colon else None
    host, port = _split_port(hostport, text)
    query = dict(urllib.parse.parse_qsl(query_text, keep_blank_values=True))
    return URL(kind, transport or None, username, password, host or None, port, slash + path, query)


def _split_port(hostport: str, text: str) -> tuple[str, int | None]:
    if hostport.startswith("["):  # IPv6 literal
        end = hostport.find("]")
        if end < 0:
            raise InvalidSpec(f"connection URL {mask_url(text)!r} has an unclosed '[' in its host")
        host, tail = hostport[1:end], hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise InvalidSpec(f"connection URL {mask_url(text)!r} has {tail!r} after the ']' of its host")
        port_text, has_port = tail[1:], bool(tail)
    else:
        host, colon, port_text = hostport.partition(":")
        has_port = bool(colon)
    if any(c.isspace() or c in "#\\" for c in host):
        raise InvalidSpec(f"connection URL {mask_url(text)!r} has a blank, '#' or '\\' in its host")
    if not has_port:
        return host, None
    if not _PORT.fullmatch(port_text) or not 0 < int(port_text) < 65536:  # ASCII digits only
        raise InvalidSpec(f"connection URL {mask_url(text)!r} has an invalid port {port_text!r} (1-65535)")
    return host, int(port_text)


def mask_url(text: object) -> str:
    """Best effort: hide a password in a URL that may not even parse."""
    if not isinstance(text, str):
        return repr(text)
    scheme, sep, rest = text.partition("://")
    netloc, slash, tail = rest.partition("/")
    auth, at, host = netloc.rpartition("@")
    if at and ":" in auth:
        auth = auth.split(":", 1)[0] + ":***"
    return f"{scheme}{sep}{auth}{at}{host}{slash}{tail.split('?', 1)[0]}"
