"""Patient images live in ``STORAGES["scans"]``: never under a public URL, only served by checked views."""

from django.core.files.storage import storages


def scan_store():
    return storages["scans"]
