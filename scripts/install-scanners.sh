#!/usr/bin/env bash
# Create or refresh .venv-scanners/ (policy scanners that conflict with Airflow's pins) from
# requirements-scanners.lock, idempotently. checkov pins termcolor differently from apache-airflow, so it
# cannot live in .venv. uv (installed in .venv by scripts/bootstrap-venv.sh) does the work, as for .venv.
#
#   scripts/install-scanners.sh          install/refresh (no-op when the lock is unchanged)
#   scripts/install-scanners.sh --lock   re-resolve requirements-scanners.lock from requirements-scanners.txt
set -euo pipefail

readonly SCANNER_VENV="${SCANNER_VENV:-.venv-scanners}"
readonly PINS_FILE="requirements-scanners.txt"
readonly LOCK_FILE="requirements-scanners.lock"
readonly MAIN_VENV="${VENV_DIR:-.venv}"
readonly PYTHON_VERSION="3.11"

die() { printf 'install-scanners: %s\n' "$*" >&2; exit 1; }

find_uv() {
  if [[ -x "$MAIN_VENV/bin/uv" ]]; then
    printf '%s\n' "$MAIN_VENV/bin/uv"
  elif command -v uv >/dev/null 2>&1; then
    command -v uv
  else
    die "uv not found; run 'make venv' first (it installs uv into $MAIN_VENV)."
  fi
}

lock_digest() {
  sha256sum "$LOCK_FILE" | cut -d' ' -f1
}

relock() {
  local uv="$1"
  "$uv" pip compile --quiet --python-version "$PYTHON_VERSION" --no-header --annotation-style line \
    "$PINS_FILE" -o "$LOCK_FILE"
  echo "install-scanners: wrote $LOCK_FILE"
}

install() {
  local uv="$1" stamp="$SCANNER_VENV/.airbricks-lock-sha256" digest
  [[ -f "$LOCK_FILE" ]] || die "$LOCK_FILE is missing; run '$0 --lock' to generate it from $PINS_FILE."
  digest="$(lock_digest)"
  if [[ -x "$SCANNER_VENV/bin/checkov" && -f "$stamp" && "$(<"$stamp")" == "$digest" ]]; then
    return 0
  fi
  if [[ ! -x "$SCANNER_VENV/bin/python" ]]; then
    # Same interpreter as .venv when there is one (no download); uv writes a '*' .gitignore into the venv,
    # so the scanner venv never shows up in git or in the secret scan.
    local python="$PYTHON_VERSION"
    [[ -x "$MAIN_VENV/bin/python" ]] && python="$MAIN_VENV/bin/python"
    "$uv" venv --quiet --python "$python" "$SCANNER_VENV" \
      || die "could not create $SCANNER_VENV with Python $PYTHON_VERSION (install python3.11 or run 'make venv')."
  fi
  echo "install-scanners: syncing $SCANNER_VENV with $LOCK_FILE"
  "$uv" pip sync --quiet --python "$SCANNER_VENV/bin/python" "$LOCK_FILE"
  printf '%s\n' "$digest" >"$stamp"
}

main() {
  cd "$(dirname "${BASH_SOURCE[0]}")/.."
  local uv
  uv="$(find_uv)"
  case "${1:-}" in
    --lock) relock "$uv" ;;
    "") install "$uv" ;;
    *) die "unknown argument '$1' (use no argument to install, or --lock)" ;;
  esac
}

main "$@"
