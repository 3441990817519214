"""Reliability figures: the fault-injection suite (tests/faults) records one outcome per fault here."""
