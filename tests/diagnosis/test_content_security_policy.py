"""Every page works under the Content-Security-Policy: no script, style or image it needs is blocked.

Real headless Chromium reports each CSP violation on its console; the walk fails on any of them.
"""

import pytest

from diagnosis.models import Review
from tests.browser import console_errors, wait_for_text
from tests.diagnosis.test_scan_page import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_doctor_pages_and_the_admin_break_no_rule_of_the_policy(
    browser, live_server, diagnosed_scan, validated_version, doctor, staff_user
):
    diagnosed_scan.model_version = validated_version
    diagnosed_scan.save()
    Review.objects.create(
        scan=diagnosed_scan, agrees_with_model=True, final_finding="COVID", comment="Agree.", reviewer=doctor
    )
    patient = diagnosed_scan.patient
    doctor_pages = [
        ("/", "Worklist"),
        ("/patients/", patient.full_name),
        (f"/patients/{patient.pk}/", patient.mrn),
        (f"/patients/{patient.pk}/edit/", patient.full_name),
        (f"/patients/{patient.pk}/upload/", "Upload"),
        (f"/scans/{diagnosed_scan.pk}/", "COVID"),
        (f"/scans/{diagnosed_scan.pk}/report/", patient.mrn),
        ("/accounts/profile/", doctor.full_name),
    ]
    staff_pages = [
        ("/admin/", "Hospital administration"),
        ("/admin/diagnosis/scan/", patient.mrn),
        (f"/admin/diagnosis/scan/{diagnosed_scan.pk}/change/", patient.full_name),
        ("/admin/auditlog/logentry/", "log entr"),
        ("/admin/mlcore/modelversion/", validated_version.name),
        (f"/admin/mlcore/modelversion/{validated_version.pk}/change/", "Figures from the internal test split"),
        ("/admin/mlcore/evaluation/", "/data/test"),
        (f"/admin/diagnosis/scan/monitoring/{validated_version.pk}/", "verification bias"),
        (f"/admin/mlcore/modelversion/{validated_version.pk}/card/", "Intended use"),
        ("/admin/interop/apitoken/", "API token"),
        ("/admin/interop/apitoken/add/", "Valid days"),
    ]
    violations = {}

    browser.get(live_server.url + "/accounts/login/")
    violations["/accounts/login/"] = console_errors(browser)
    for user, pages in ((doctor, doctor_pages), (staff_user, staff_pages)):
        browser.delete_all_cookies()
        sign_in(browser, live_server, user)
        console_errors(browser)
        for path, text in pages:
            browser.get(live_server.url + path)
            wait_for_text(browser, "body", text)
            violations[path] = [error for error in console_errors(browser) if "Content Security Policy" in error]

    assert {path: errors for path, errors in violations.items() if errors} == {}
