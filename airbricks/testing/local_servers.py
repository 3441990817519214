"""Pytest fixtures for the local S3 server and the API replay server."""
