# Cross-vendor migration: a real OpenSSH server on loopback (127.0.0.1), for tests of disk export
# over SSH from a node (the Proxmox simulator's storage directory). Its own config, host key and
# client key live in one directory; nothing else of the machine's SSH set-up is touched. Idempotent.
MIG_SSH_DIR=${HVKIT_MIGRATION_SSH_DIR:-/var/lib/hvkit/migration-ssh}
MIG_SSH_PORT=${HVKIT_MIGRATION_SSH_PORT:-2222}
$SUDO mkdir -p "$MIG_SSH_DIR" /run/sshd
$SUDO chmod 700 "$MIG_SSH_DIR"
[ -f "$MIG_SSH_DIR/host_ed25519_key" ] || $SUDO ssh-keygen -q -t ed25519 -N '' -f "$MIG_SSH_DIR/host_ed25519_key"
[ -f "$MIG_SSH_DIR/client_ed25519" ] || $SUDO ssh-keygen -q -t ed25519 -N '' -f "$MIG_SSH_DIR/client_ed25519"
$SUDO cp "$MIG_SSH_DIR/client_ed25519.pub" "$MIG_SSH_DIR/authorized_keys"
$SUDO tee "$MIG_SSH_DIR/sshd_config" >/dev/null <<CONF
Port $MIG_SSH_PORT
ListenAddress 127.0.0.1
HostKey $MIG_SSH_DIR/host_ed25519_key
AuthorizedKeysFile $MIG_SSH_DIR/authorized_keys
PidFile $MIG_SSH_DIR/sshd.pid
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
StrictModes no
UsePAM no
X11Forwarding no
AllowTcpForwarding no
CONF
if ! { [ -f "$MIG_SSH_DIR/sshd.pid" ] && $SUDO kill -0 "$($SUDO cat "$MIG_SSH_DIR/sshd.pid")" 2>/dev/null; }; then
  $SUDO /usr/sbin/sshd -f "$MIG_SSH_DIR/sshd_config"
fi
for _ in $(seq 1 50); do
  $SUDO ssh-keyscan -p "$MIG_SSH_PORT" -t ed25519 127.0.0.1 2>/dev/null | $SUDO tee "$MIG_SSH_DIR/known_hosts" >/dev/null
  [ -s "$MIG_SSH_DIR/known_hosts" ] && break
  sleep 0.1
done
export HVKIT_MIGRATION_SSH_DIR="$MIG_SSH_DIR" HVKIT_MIGRATION_SSH_PORT="$MIG_SSH_PORT"
unset MIG_SSH_DIR MIG_SSH_PORT
