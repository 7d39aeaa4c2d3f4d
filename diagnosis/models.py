"""Patients, scans and their results (see the web-app and inference issues)."""
