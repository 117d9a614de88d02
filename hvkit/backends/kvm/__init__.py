"""KVM/QEMU (and any libvirt driver) through libvirt-python. Install with ``pip install 'hvkit[kvm]'``."""

from .backend import KvmBackend

__all__ = ["KvmBackend"]
