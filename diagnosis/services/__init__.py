"""Writes for the diagnosis app: patients and scans (``scans``), and their inference (``inference``)."""
