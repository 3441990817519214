"""spark_python_task that sleeps (cancel and timeout tests); it writes its pid first."""

import os
import sys
import time

print(f"pid={os.getpid()}", flush=True)
time.sleep(float(sys.argv[1]))
print("woke up")
