"""The sim backend: an in-process reference hypervisor."""

from ._world import forget
from .backend import SimBackend

__all__ = ["SimBackend", "forget"]
