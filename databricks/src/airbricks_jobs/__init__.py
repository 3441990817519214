"""Job code of the airbricks Databricks Asset Bundle (bronze -> silver -> gold over the raw zone).

The transformations (``hackernews``, ``github``) are pure ``DataFrame -> DataFrame`` functions; the
``pipeline`` module does the reading and writing. The same code runs on a Databricks job cluster and on the
local emulator: every storage location arrives as a job parameter, never built inside the code.
"""
