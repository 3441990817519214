"""Pytest fixtures for the local Databricks workspace emulator."""
