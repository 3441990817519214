"""Local stand-ins for the outside world: an S3 server (moto), an API replay server, and ``make demo``.

Nothing here is imported by DAG files; each module imports its heavy dependencies when used.
"""
