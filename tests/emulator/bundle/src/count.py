"""spark_python_task: prints its arguments, proving parameters and task values arrive."""

import sys

who, length = sys.argv[1], int(sys.argv[2])
print(f"who={who} length={length}")
if length <= 0:
    raise ValueError("the greeting must not be empty")
