"""A XAPI (XenServer / XCP-ng) pool simulator, generated from the XenAPI data model, for offline tests."""

from .model import Failure, check_error, model
from .server import XapiSimulator

__all__ = ["Failure", "XapiSimulator", "check_error", "model"]
