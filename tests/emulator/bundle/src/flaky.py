"""Fails on its first attempt and succeeds on the next (state kept in a marker file)."""

import pathlib
import sys

marker = pathlib.Path(sys.argv[1]) / "attempted"
if not marker.exists():
    marker.write_text("1")
    raise RuntimeError("first attempt fails")
print("second attempt succeeds")
