#!/bin/sh
# Runs the sandbox tests again as an unprivileged user (nobody), so the path
# taken when quanteval is not started as root -- namespaces inside a user
# namespace, no per-worker uid, no memory cgroup -- is tested on every run
# that happens as root. Exits 77 (skipped) where that cannot be arranged.
#   run_unprivileged.sh TEST_BINARY
binary=$1
as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
if [ "$(id -u)" != 0 ]; then
  echo "not root: the normal sandbox test run already takes the unprivileged path"
  exit 77
fi
if ! command -v setpriv >/dev/null 2>&1; then
  echo "setpriv (util-linux) is missing"
  exit 77
fi
if ! as_nobody test -x "$binary"; then
  echo "nobody cannot reach $binary (a build folder under a private home?)"
  exit 77
fi
if ! as_nobody unshare --user --map-current-user true 2>/dev/null; then
  echo "this host gives unprivileged users no user namespaces"
  exit 77
fi
cd "$(dirname "$binary")" || exit 1
exec setpriv --reuid=65534 --regid=65534 --clear-groups "$binary"
