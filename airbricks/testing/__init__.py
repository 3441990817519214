"""Pytest plugins exposing the local stand-ins (S3 server, API replay, Databricks emulator) as fixtures.

Enable them in a conftest with ``pytest_plugins = ["airbricks.testing.local_servers", ...]``.
"""
