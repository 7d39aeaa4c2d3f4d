"""Fixtures for the PACS tests: the group PACS patients are shared with, and a view of the stored files."""

from pathlib import Path

import pytest
from django.contrib.auth.models import Group


@pytest.fixture
def radiology(make_doctor) -> Group:
    """The default share group with one approved doctor in it."""
    group = Group.objects.create(name="Radiology")
    group.user_set.add(make_doctor(email="radiologist@hospital.example", full_name="Wilhelm Roentgen"))
    return group


@pytest.fixture
def stored_files():
    """Files in the scans storage now; call it again to compare (other tests' files stay put)."""
    from diagnosis.models import Scan

    root = Path(Scan._meta.get_field("image").storage.location)

    def listing() -> set[Path]:
        return {path for path in root.rglob("*") if path.is_file()} if root.exists() else set()

    return listing
