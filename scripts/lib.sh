# Shared by scripts/test.sh and scripts/bench.sh (sourced, not run).

# apt_install PACKAGE...: install the Debian packages given (the caller lists only the
# missing ones) as root, or with sudo -n as another user. Fails with a clear message
# where there is no apt-get.
apt_install() {
  (($#)) || return 0
  echo "    installing: $*" >&2
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: $* missing and no apt-get here; install them by hand" >&2
    return 1
  fi
  local sudo=()
  if [[ $(id -u) -ne 0 ]]; then sudo=(sudo -n); fi
  export DEBIAN_FRONTEND=noninteractive
  "${sudo[@]}" apt-get update -q
  "${sudo[@]}" apt-get install -y -qq -o Dpkg::Use-Pty=0 --no-install-recommends "$@"
}
