"""VMware vCenter and ESXi through pyvmomi (``pip install 'hvkit[vmware]'``)."""

from .backend import VmwareBackend

__all__ = ["VmwareBackend"]
