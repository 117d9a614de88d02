"""Cassettes of a backend's HTTP traffic (vcrpy), scrubbed before they are written.

What the backends' ``recording`` modules share: the record modes, dropping credential headers and
cookies, and scrubbing request and response bodies with the backend's own text scrubber.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

__all__ = ["RecordMode", "cassette_recorder", "scrub_body", "scrub_secrets"]

RecordMode = Literal["record", "replay", "auto"]
_VCR_MODES = {"record": "all", "replay": "none", "auto": "once"}
_DROPPED_REQUEST_HEADERS = ("authorization", "cookie")
_DROPPED_RESPONSE_HEADERS = ("set-cookie", "authorization")


def scrub_secrets(text: str, secrets: Iterable[str] = ()) -> str:
    """Replace every listed secret (at least 3 characters) with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def scrub_body(body: Any, scrub: Callable[[str], str]) -> Any:
    """A body with ``scrub`` applied to its text; a body that is not UTF-8 text passes as it is."""
    if isinstance(body, bytes):
        try:
            return scrub(body.decode("utf-8")).encode("utf-8")
        except UnicodeDecodeError:
            return body
    if isinstance(body, str):
        return scrub(body)
    return body


def cassette_recorder(
    mode: RecordMode,
    scrub: Callable[[str], str],
    *,
    match_on: list[str],
    matchers: Mapping[str, Callable[[Any, Any], None]],
    patches: Callable[[], tuple[tuple[Any, str, Any], ...]] | None = None,
) -> Any:
    """A ``vcr.VCR`` in ``mode`` that scrubs bodies with ``scrub`` and drops credential headers and cookies.

    ``matchers`` are registered under their names (use them in ``match_on``); ``patches`` gives vcrpy's
    ``custom_patches`` once vcrpy is imported (for SDKs that bind ``http.client`` classes at import time).
    """
    try:
        import vcr
    except ImportError as exc:
        raise ImportError("recording needs vcrpy: pip install 'hvkit[test]' (or pip install vcrpy)") from exc
    if mode not in _VCR_MODES:
        raise ValueError(f"mode must be one of {', '.join(_VCR_MODES)}, got {mode!r}")

    def before_request(request: Any) -> Any:
        for header in list(request.headers):
            if header.lower() in _DROPPED_REQUEST_HEADERS:
                request.headers.pop(header)
        request.body = scrub_body(request.body, scrub)
        return request

    def before_response(response: dict[str, Any]) -> dict[str, Any]:
        headers = response.get("headers", {})
        for header in list(headers):
            if header.lower() in _DROPPED_RESPONSE_HEADERS:
                headers.pop(header)
        body = response.get("body", {})
        if "string" in body:
            body["string"] = scrub_body(body["string"], scrub)
        return response

    recorder = vcr.VCR(
        custom_patches=patches() if patches else (),
        record_mode=_VCR_MODES[mode],
        match_on=match_on,
        before_record_request=before_request,
        before_record_response=before_response,
        decode_compressed_response=True,
        filter_headers=list(_DROPPED_REQUEST_HEADERS),
    )
    for name, matcher in matchers.items():
        recorder.register_matcher(name, matcher)
    return recorder
