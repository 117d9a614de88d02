# KVM/QEMU backend: start virtlogd and libvirtd (no systemd needed), make sure the "default" network
# and the "default" storage pool exist and run, and libvirt-python is in the venv. Idempotent.
kvm_virsh() { $SUDO virsh -q -c qemu:///system "$@"; }
# Without udev, /dev/kvm stays root-only: libvirt then finds KVM "not available" to the qemu user on
# every call and probes QEMU's capabilities again each time (seconds per domain define or start).
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
  $SUDO chgrp kvm /dev/kvm && $SUDO chmod 660 /dev/kvm
fi
pgrep -x virtlogd >/dev/null || $SUDO virtlogd -d
pgrep -x libvirtd >/dev/null || $SUDO libvirtd -d
for _ in $(seq 1 100); do
  kvm_virsh version >/dev/null 2>&1 && break
  sleep 0.1
done
if ! kvm_virsh net-info default >/dev/null 2>&1; then
  kvm_virsh net-define /usr/share/libvirt/networks/default.xml >/dev/null
fi
if ! kvm_virsh net-info default | grep -E '^Active:\s+yes' >/dev/null; then
  kvm_virsh net-start default >/dev/null
fi
if ! kvm_virsh pool-info default >/dev/null 2>&1; then
  kvm_virsh pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
  kvm_virsh pool-build default >/dev/null 2>&1 || true
fi
if ! kvm_virsh pool-info default | grep -E '^State:\s+running' >/dev/null; then
  kvm_virsh pool-start default >/dev/null
fi
.venv/bin/python -c "import libvirt, pycdlib" 2>/dev/null || .venv/bin/pip install -q "libvirt-python>=9.0" "pycdlib>=1.14"
unset -f kvm_virsh
# The bootable test guest disk (Debian cloud kernel + busybox initramfs + extlinux): built once, about
# 7 s and one kernel package download, then cached in $HVKIT_CACHE (default ~/.cache/hvkit).
.venv/bin/python -c 'from hvkit.testing.guest_image import build_guest_image as b; b("hvkit-kvm-tests")' >/dev/null
