"""Where model files and plots are stored: Django's ``STORAGES["models"]`` (a folder by default)."""

from django.core.files.storage import storages


def model_store():
    return storages["models"]
