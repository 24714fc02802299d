#!/usr/bin/env bash
# Installs the ClickHouse engine as a library (chDB) for the reports tests
# and the embedded default of `disburse dev`. Idempotent and cached.
#
#   deploy/chdb.sh install   fetch and unpack once (default)
#   deploy/chdb.sh env       print the export line (after install)
#
# What it installs: the chdb wheel (version below) from the Python package
# index through pip, unpacked to
# ${XDG_CACHE_HOME:-$HOME/.cache}/disburse/chdb/<version>/ (about 870 MB
# unpacked; the wheel, about 180 MB, is deleted afterwards), plus a link
# libpython.so to the system's libpython3 (installed from Debian's packages
# if missing). The wheel's library is a Python extension that also exports
# the libchdb C API; reports/chdb loads it (see docs/decisions.md).
# DISBURSE_CHDB_DIR overrides the directory.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

tmp=""
VERSION=3.7.2 # keep in step with reports/chdb.Version
DIR="${DISBURSE_CHDB_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/disburse/chdb/$VERSION}"

installed() { [[ -f "$DIR/chdb/_chdb.abi3.so" && -e "$DIR/libpython.so" ]]; }

# python_lib prints the path of the shared libpython of python3, installing
# Debian's package when it is missing.
python_lib() {
  local ver libdir so
  command -v python3 >/dev/null || die "python3 is required (with pip) to fetch the chdb wheel"
  ver="$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  libdir="$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
  so="$libdir/libpython$ver.so.1.0"
  if [[ ! -e "$so" ]]; then
    command -v apt-get >/dev/null || die "$so missing: install your distribution's libpython$ver"
    say "installing libpython$ver from the distribution's packages"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "libpython$ver" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "libpython$ver" >/dev/null; } ||
      die "could not install libpython$ver"
  fi
  echo "$so"
}

install() {
  if installed; then
    return
  fi
  local start=$SECONDS pylib
  pylib="$(python_lib)"
  mkdir -p "$(dirname "$DIR")"
  tmp="$(mktemp -d "$(dirname "$DIR")/.install.XXXXXX")"
  trap 'rm -rf "$tmp"' EXIT
  say "fetching the chdb $VERSION wheel (about 180 MB) with pip"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    -d "$tmp/wheel" "chdb==$VERSION" || die "pip download chdb==$VERSION failed"
  say "unpacking the engine library"
  python3 - "$tmp/wheel"/chdb-"$VERSION"-*.whl "$tmp/lib" <<'PY'
import sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if n.endswith(".so") and (n.startswith("chdb/") or n.startswith("chdb.libs/"))]
    for n in names:
        z.extract(n, dest)
PY
  chmod -R a+rX "$tmp/lib"
  ln -s "$pylib" "$tmp/lib/libpython.so"
  rm -rf "$DIR"
  mv "$tmp/lib" "$DIR"
  say "chdb $VERSION installed in $DIR in $((SECONDS - start))s"
}

case "${1:-install}" in
  install) install ;;
  env)
    installed || die "not installed: run $0 install"
    echo "export DISBURSE_CHDB_DIR=$DIR"
    ;;
  *) echo "usage: $0 install|env" >&2; exit 2 ;;
esac
