#!/usr/bin/env bash
# Install the Debian packages the test suite and `make demo DB=postgres` use as real parts (PostgreSQL for the
# metadata DB, Chromium for the UI test), only where they are missing. Called by `make system-packages`, which
# `make test` runs first; idempotent and quick when everything is there.
#
# Needs root or sudo only when something is missing. Without either it prints the one command to run and
# exits 0: the tests that need the missing part then fail or skip loudly, naming it.
set -euo pipefail

# "command that proves it is installed" → "Debian package that provides it"
readonly -a REQUIRED=(
  "initdb:postgresql"
  "chromium:chromium fonts-liberation"
)

readonly APT_LOG="${TMPDIR:-/tmp}/airbricks-system-packages.log"

log() { printf 'system-packages: %s\n' "$*" >&2; }

# PostgreSQL's server binaries live in a versioned directory that is not on PATH.
has_command() {
  local name="$1"
  command -v "$name" >/dev/null 2>&1 && return 0
  compgen -G "/usr/lib/postgresql/*/bin/$name" >/dev/null
}

missing_packages() {
  local entry
  for entry in "${REQUIRED[@]}"; do
    has_command "${entry%%:*}" || printf '%s\n' "${entry#*:}"
  done
}

as_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

main() {
  local -a missing
  # One entry may name several packages (a browser and the fonts its screenshots need).
  read -r -a missing <<<"$(missing_packages | tr '\n' ' ')"
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    log "missing ${missing[*]} and no apt-get here: install them with your package manager."
    return 0
  fi
  log "installing ${missing[*]} (Debian packages; apt output in $APT_LOG)"
  if ! as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$APT_LOG" 2>&1 \
    || ! as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$APT_LOG" 2>&1; then
    tail -n 20 "$APT_LOG" >&2
    log "could not install ${missing[*]}: run 'sudo apt-get install ${missing[*]}' and re-run."
  fi
}

main "$@"
