#!/usr/bin/env bash
# Installs what the dashboard's browser tests need. Idempotent and cached.
#
#   deploy/browser.sh install   Debian's chromium (apt-get, first run only) and
#                               axe-core's axe.min.js (npm, cached) (default)
#   deploy/browser.sh env       print the export lines (after install)
#
# Chromium comes from Debian's packages, never a browser build of its own
# (nothing but the package registries is reachable from CI). axe-core is
# fetched with npm into ${XDG_CACHE_HOME:-$HOME/.cache}/disburse/axe-core/<version>/;
# nothing of it is committed. DISBURSE_CHROMIUM and DISBURSE_AXE_JS override.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

AXE_VERSION=4.14.1
AXE_DIR="${XDG_CACHE_HOME:-$HOME/.cache}/disburse/axe-core/$AXE_VERSION"
AXE_JS="${DISBURSE_AXE_JS:-$AXE_DIR/node_modules/axe-core/axe.min.js}"
CHROMIUM="${DISBURSE_CHROMIUM:-/usr/bin/chromium}"

install_chromium() {
  if [[ -x "$CHROMIUM" ]]; then
    return
  fi
  if [[ $EUID -ne 0 ]] || ! command -v apt-get >/dev/null; then
    die "$CHROMIUM not found: install Chromium (Debian: sudo apt-get install -y chromium) or set DISBURSE_CHROMIUM"
  fi
  say "installing chromium with apt-get (first run only)..."
  mkdir -p "$STATE_DIR"
  if ! { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium ||
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium; }; } >"$STATE_DIR/chromium-install.log" 2>&1; then
    die "apt-get install chromium failed; install it by hand and rerun"
  fi
  [[ -x "$CHROMIUM" ]] || die "chromium installed but $CHROMIUM is missing; set DISBURSE_CHROMIUM"
}

install_axe() {
  if [[ -f "$AXE_JS" ]]; then
    return
  fi
  command -v npm >/dev/null || die "npm is required to fetch axe-core $AXE_VERSION (Debian: apt-get install -y npm)"
  say "fetching axe-core $AXE_VERSION with npm"
  mkdir -p "$AXE_DIR"
  npm install --silent --no-audit --no-fund --no-save --prefix "$AXE_DIR" "axe-core@$AXE_VERSION" >&2 ||
    die "npm install axe-core@$AXE_VERSION failed"
  [[ -f "$AXE_JS" ]] || die "axe-core installed but $AXE_JS is missing"
}

case "${1:-install}" in
install)
  install_chromium
  install_axe
  ;;
env)
  printf 'DISBURSE_CHROMIUM=%q\nDISBURSE_AXE_JS=%q\n' "$CHROMIUM" "$AXE_JS"
  ;;
*)
  die "usage: $0 [install|env]"
  ;;
esac
