"""Secrets: which option names hold them, how they are shown, and a log filter that hides them.

Vendor SDKs log request bodies and responses at INFO/DEBUG (proxmoxer: the POST body with ``cipassword``,
the console ticket in a response). :func:`install_redaction` puts a :class:`RedactingFilter` on an SDK's
loggers so that whatever level the user turns on, passwords, tickets, tokens and cookies read ``***``.
"""

from __future__ import annotations

import logging
import re
import threading

__all__ = [
    "SDK_LOGGERS",
    "SECRET_KEYS",
    "RedactingFilter",
    "install_redaction",
    "is_secret",
    "mask",
    "redact",
]

SECRET_KEYS = frozenset({"password", "token", "secret", "api_token", "token_value", "ticket", "cookie", "session"})

# Loggers of the SDKs hvkit drives, and of the HTTP stack under them.
SDK_LOGGERS = (
    "proxmoxer",
    "urllib3",
    "requests",
    "pyVmomi",
    "winrm",
    "requests_ntlm",
    "spnego",
    "XenAPI",
    "paramiko",
)

# A key whose value is a secret: ...password..., ...secret..., ...token..., ...ticket..., cookies, sessions,
# Authorization (cipassword, vncticket, token_value, CSRFPreventionToken, PVEAuthCookie, PVEAPIToken, ...).
_WORDS = r"passw(?:or)?d|passphrase|secret|token|ticket|cookie|authorization|session|apikey|api_key"
_KEY = rf"[A-Za-z0-9_-]{{0,32}}(?:{_WORDS})[A-Za-z0-9_-]{{0,32}}"  # bounded: linear on long runs
_HIDDEN = "***"
_PATTERNS = (
    # 'key': 'value' / "key": "value" / \"key\": \"value\" (dict reprs, JSON, JSON inside a bytes repr)
    re.compile(
        rf"""(?P<pre>(?P<q>\\?["'])(?:{_KEY})(?P=q)\s*:\s*b?(?P<vq>\\?["']))(?P<val>(?:(?!(?P=vq))(?:[^\\]|\\.))*)""",
        re.IGNORECASE,
    ),
    # 'key': value without quotes (numbers, None)
    re.compile(rf"""(?P<pre>(?P<q>\\?["'])(?:{_KEY})(?P=q)\s*:\s*)(?P<val>[^\s"',}}\]\\]+)""", re.IGNORECASE),
    # headers: Authorization: PVEAPIToken=..., Cookie: PVEAuthCookie=...
    re.compile(r"(?P<pre>\b(?:authorization|proxy-authorization|cookie|set-cookie)\s*:\s*)(?P<val>[^\r\n'\"]+)", re.I),
    # key=value (form bodies, query strings, cookies, the PVEAPIToken header value)
    re.compile(rf"(?P<pre>\b(?:{_KEY})=)(?P<val>[^&\s'\",;]+)", re.IGNORECASE),
    # Proxmox tickets wherever they stand: PVE:user@realm:HEX::sig, PVEVNC:..., PVEAPIToken=...
    re.compile(r"(?P<pre>\bPVE(?:VNC|APIToken)?[:=])(?P<val>[^\s'\"&,;}]+)"),
)

_ANY_KEY = re.compile(rf"{_WORDS}|PVE", re.IGNORECASE)


def mask(value: object) -> str:
    return "***" if value else repr(value)


def is_secret(key: str) -> bool:
    key = key.lower()
    return key in SECRET_KEYS or any(word in key for word in ("password", "secret", "token"))


def redact(text: str) -> str:
    """``text`` with the values of secret-looking keys, auth headers and Proxmox tickets replaced by ``***``."""
    if not _ANY_KEY.search(text):  # most messages: one quick pass
        return text
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("pre") + (_HIDDEN if m.group("val") else ""), text)
    return text


class RedactingFilter(logging.Filter):
    """Rewrites each record's message with :func:`redact`; never drops a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to logging's own error report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = RedactingFilter()
_install_lock = threading.Lock()


def install_redaction(*prefixes: str) -> None:
    """Put the redacting filter on the loggers named ``prefixes`` and on every logger below them.

    A filter on a logger sees only the records logged on that very logger, so each existing child gets
    it too; call again after importing the SDK (backends call it when they connect). Idempotent.
    """
    names = prefixes or SDK_LOGGERS
    with _install_lock:
        existing = [n for n in list(logging.root.manager.loggerDict) if isinstance(n, str)]
        for name in {*names, *(n for n in existing if any(n.startswith(p + ".") for p in names))}:
            logger = logging.getLogger(name)
            if _FILTER not in logger.filters:
                logger.addFilter(_FILTER)
