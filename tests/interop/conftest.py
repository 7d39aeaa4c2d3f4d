"""The diagnosis suite's patient and scan fixtures, and API tokens for the FHIR tests."""

import datetime

import pytest

from interop.services import api_token_issue
from tests.diagnosis.conftest import diagnosed_scan, patient, scan, validated_version  # noqa: F401


@pytest.fixture
def issue_token():
    def issue(user, *, days: int | None = 1) -> str:
        return api_token_issue(user=user, valid_for=datetime.timedelta(days=days) if days else None)[1]

    return issue
