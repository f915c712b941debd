"""Plug-ins (kinds, probes, estimators) that tests name by import path or entry point."""
