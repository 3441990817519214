#!/usr/bin/env bash
# Create or refresh .venv from the lock, idempotently. Called by `make venv` (and every target needing it).
# uv is used for the install because it resolves and installs the ~1000-package lock in well under a
# minute where pip takes several; it is itself pinned and installed with pip.
set -euo pipefail

readonly UV_VERSION="0.13.8"
readonly VENV_DIR="${VENV_DIR:-.venv}"
readonly LOCK_FILE="requirements.lock"

die() { printf 'bootstrap-venv: %s\n' "$*" >&2; exit 1; }

find_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null 2>&1 \
      && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      printf '%s\n' "$candidate"
      return 0
    fi
  done
  die "Python 3.11 is required (Airflow 3.3.2 image is python3.11). Install it, or set PYTHON=/path/to/python3.11."
}

main() {
  [[ -f "$LOCK_FILE" ]] || die "$LOCK_FILE is missing; run 'make lock' to generate it from requirements*.txt."
  local python
  python="$(find_python)"
  if [[ ! -x "$VENV_DIR/bin/python" ]]; then
    echo "bootstrap-venv: creating $VENV_DIR with $python"
    "$python" -m venv "$VENV_DIR"
  fi
  if ! "$VENV_DIR/bin/uv" --version 2>/dev/null | grep -q "^uv $UV_VERSION"; then
    "$VENV_DIR/bin/python" -m pip install --quiet --disable-pip-version-check "uv==$UV_VERSION"
  fi
  echo "bootstrap-venv: syncing $VENV_DIR with $LOCK_FILE (first run downloads ~1 GB, 2-5 min)"
  # --compile-bytecode: like pip (and so the image), write every module's .pyc at install time. uv does not by
  # default, and with PYTHONDONTWRITEBYTECODE set no process writes them either: every Airflow process then
  # compiles ~1000 modules from source (2.6 s of CPU of `airflow db migrate`'s 4.9 s; docs/PERFORMANCE.md).
  "$VENV_DIR/bin/uv" pip sync --quiet --compile-bytecode --python "$VENV_DIR/bin/python" "$LOCK_FILE"
  "$VENV_DIR/bin/uv" pip install --quiet --python "$VENV_DIR/bin/python" --no-deps -e .
}

main "$@"
