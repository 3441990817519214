"""spark_python_task without Spark: copies files between two (mapped) directories, replacing the output."""

import pathlib
import shutil
import sys

print(f"args={sys.argv[1:]}")
source, target = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
if target.exists():
    shutil.rmtree(target)
target.mkdir(parents=True)
copied = 0
for path in sorted(source.rglob("*.json")):
    (target / path.name).write_bytes(path.read_bytes())
    copied += 1
(target / "_SUCCESS").write_text("")
(target / ".hidden.crc").write_text("checksum")
print(f"copied={copied}")
