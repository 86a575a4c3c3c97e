# Tenants for attack tests (sourced after lib.sh): unprivileged users the test creates,
# running as themselves or as root of their own user namespace (with their own mount and
# PID namespaces), as docs/security.md's threat model says a tenant may be.
#
#   tenant_user NAME       creates the system user vrdma-t-NAME once; prints its name
#   as_user USER CMD...    CMD as USER (no capabilities, no supplementary groups), in $NS
#   as_tenant USER CMD...  CMD as USER, root in a new user namespace with new mount and PID
#                          namespaces (unshare -r --mount --pid --fork), in $NS
#   tenant_ready           lets unprivileged users reach the daemon's socket in $WORK

tenant_user() {
  local name="vrdma-t-$1"
  if ! id -u "$name" >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin "$name" 2>/dev/null ||
      id -u "$name" >/dev/null
  fi
  echo "$name"
}

as_user() {
  local user=$1
  shift
  ip netns exec "$NS" setpriv --reuid "$user" --regid "$user" --clear-groups --inh-caps=-all \
    --bounding-set=-all -- env VRDMA_SOCKET="$VRDMA_SOCKET" "$@"
}

as_tenant() {
  local user=$1
  shift
  as_user "$user" unshare --user --map-root-user --mount --pid --fork -- "$@"
}

tenant_ready() {
  chmod 0755 "$WORK"
}
