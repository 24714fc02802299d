#!/usr/bin/env bash
# Installs promtool (Debian's prometheus package) for the alert and
# recording rule tests of deploy/prometheus. Idempotent: does nothing when
# promtool is already on PATH. Nothing is cached in the repository.
#
#   deploy/promtool.sh install   install when missing (default)
#   deploy/promtool.sh path      print promtool's path (after install)
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

install() {
  if command -v promtool >/dev/null; then
    return
  fi
  command -v apt-get >/dev/null || die "promtool missing and no apt-get: install Prometheus's promtool (2.42 or later)"
  local sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  say "installing promtool from the distribution's prometheus package"
  # Try without refreshing the package lists first; refresh once on failure.
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null ||
    { $sudo apt-get update -q >/dev/null &&
      $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends prometheus >/dev/null; } ||
    die "could not install the prometheus package"
  command -v promtool >/dev/null || die "the prometheus package installed no promtool"
}

case "${1:-install}" in
  install) install ;;
  path) command -v promtool || die "promtool not installed (run deploy/promtool.sh install)" ;;
  *) die "usage: $0 [install|path]" ;;
esac
