"""Connection URLs: ``kind[+transport]://[user[:password]@]host[:port][/path][?options]``."""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping

import attrs

from ._secrets import SECRET_KEYS, mask
from .errors import InvalidSpec

__all__ = ["URL", "parse_url"]


def _to_dict(value: Mapping[str, str]) -> dict[str, str]:
    return dict(value)


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

    def render(self, *, hide_secrets: bool = True) -> str:
        scheme = self.kind + (f"+{self.transport}" if self.transport else "")
        auth = ""
        if self.username is not None:
            auth = urllib.parse.quote(self.username, safe="@")
            if self.password is not None:
                auth += ":" + ("***" if hide_secrets else urllib.parse.quote(self.password, safe=""))
            auth += "@"
        netloc = auth + (self.host or "")
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
    if not isinstance(text, str) or "://" not in text:
        raise InvalidSpec(f"connection URL {mask_url(text)!r} must look like kind://host (e.g. kvm:///system)")
    scheme, rest = text.split("://", 1)
    kind, _, transport = scheme.lower().partition("+")
    if not kind or not kind.replace("-", "").isalnum():
        raise InvalidSpec(f"connection URL has an invalid scheme {scheme!r}")
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
        port_text = tail[1:] if tail.startswith(":") else ""
    else:
        host, _, port_text = hostport.partition(":")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise InvalidSpec(f"connection URL {mask_url(text)!r} has an invalid port {port_text!r}")
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
