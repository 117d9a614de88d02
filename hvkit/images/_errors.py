"""Errors of image import and verification (all are :class:`hvkit.errors.HvkitError`)."""

from __future__ import annotations

from ..errors import HvkitError

__all__ = ["ImageChecksumMismatch", "ImageError", "SignatureError"]


class ImageError(HvkitError):
    """An image could not be fetched, checked or imported; nothing of it was left behind."""


class ImageChecksumMismatch(ImageError):
    """The image's bytes (or its content, on verify) differ from the checksum they must have."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        self.expected = expected
        self.actual = actual
        super().__init__(f"{what}: checksum mismatch (expected {expected}, got {actual})")


class SignatureError(ImageError):
    """The checksum file's OpenPGP signature is bad, or made by a key the named keyring does not hold."""
