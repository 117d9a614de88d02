"""hvkit-toy: an in-memory hypervisor behind ``toy://NAME`` URLs, built from the public driver kit only."""

from .backend import ToyBackend

__all__ = ["ToyBackend"]
