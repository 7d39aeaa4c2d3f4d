"""A prevalence outside (0, 1) stops the app at startup instead of showing meaningless PPV/NPV."""

import pytest
from django.core.checks import run_checks

from diagnosis.checks import prevalence_check


def test_the_default_prevalence_passes(settings):
    assert 0 < settings.COVIDXRAY_PREVALENCE < 1
    assert prevalence_check() == []


@pytest.mark.parametrize("prevalence", [0, 1, 0.0, 1.0, -0.05, 5, "0.05", None, True])
def test_a_prevalence_outside_zero_one_is_an_error(settings, prevalence):
    settings.COVIDXRAY_PREVALENCE = prevalence
    [error] = prevalence_check()
    assert error.id == "diagnosis.E001"
    assert "strictly between 0 and 1" in error.msg


def test_the_check_is_registered_with_django(settings):
    settings.COVIDXRAY_PREVALENCE = 1.5
    assert "diagnosis.E001" in [message.id for message in run_checks()]
