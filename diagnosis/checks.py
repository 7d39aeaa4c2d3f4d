"""System checks: settings that would make the scan page show wrong numbers stop the app at startup."""

from django.conf import settings
from django.core.checks import Error


def prevalence_check(app_configs=None, **kwargs) -> list[Error]:
    """PPV and NPV are computed at COVIDXRAY_PREVALENCE; outside (0, 1) they are meaningless."""
    prevalence = settings.COVIDXRAY_PREVALENCE
    if isinstance(prevalence, int | float) and not isinstance(prevalence, bool) and 0 < prevalence < 1:
        return []
    return [
        Error(
            f"COVIDXRAY_PREVALENCE is {prevalence!r}; it must be a number strictly between 0 and 1.",
            hint="The share of scanned patients who truly have COVID-19 pneumonia here, e.g. 0.05 for 5%.",
            id="diagnosis.E001",
        )
    ]
