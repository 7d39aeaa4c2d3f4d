"""The printable one-page report of a scan: what it shows, who may open it, and that opening it is logged."""

import datetime
import re
from html import unescape

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from diagnosis.models import Review, Scan
from mlcore.models import Evaluation, ModelVersion
from tests.conftest import THREE_CLASSES

pytestmark = pytest.mark.django_db


@pytest.fixture
def scan(diagnosed_scan, validated_version) -> Scan:
    patient = diagnosed_scan.patient
    patient.date_of_birth = datetime.date(1912, 6, 23)
    patient.sex = "M"
    patient.save()
    diagnosed_scan.model_version = validated_version
    diagnosed_scan.view = "PA"
    diagnosed_scan.acquisition_date = datetime.date(2026, 3, 2)
    diagnosed_scan.original_filename = "turing-chest.png"
    diagnosed_scan.save()
    return diagnosed_scan


def report(client, scan):
    return client.get(reverse("diagnosis:scan_report", args=[scan.pk]))


def test_the_report_shows_patient_scan_images_result_and_model(doctor_client, scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.1

    response = report(doctor_client, scan)

    assert response.status_code == 200
    html = response.content.decode()
    for text in [
        "St Mary&#x27;s Hospital",
        "Requested by Ada Lovelace",
        "Alan Turing",
        "MRN-0001",
        "23 Jun 1912",
        "Male",
        "2 Mar 2026",
        "PA (posteroanterior)",
        "PNG · turing-chest.png",
        "P(COVID-19) = 0.910",
        "threshold 0.700",
        "Version <strong>validated-v1</strong>",
        'figures from <span id="report-evidence">the internal test split of 300 images</span>',
        "Internal test split: same sources as training; overstates what a new hospital will see.",
        "90.0% (95% CI 82.6% to 94.5%)",
        "PPV at 10%",
        "66.7% (range 50.6% to 79.3%)",
        "about 67 in 100 have COVID-19",
        "Decision support, not a diagnosis.",
        "Not yet reviewed.",
    ]:
        assert text in html, text
    assert f'src="{reverse("diagnosis:scan_image", args=[scan.pk, "preview"])}"' in html
    assert f'src="{reverse("diagnosis:scan_image", args=[scan.pk, "heatmap"])}"' in html
    assert 'class="threshold-marker" style="left: 70.0%"' in html
    assert "css/report.css" in html
    assert 'data-action="print"' in html


def test_the_report_shows_the_review_and_who_generated_it(doctor_client, doctor, scan):
    Review.objects.create(
        scan=scan, agrees_with_model=False, final_finding="OTHER", comment="Atelectasis, left base.", reviewer=doctor
    )

    html = report(doctor_client, scan).content.decode()

    assert "Other finding" in html
    assert "Disagrees with the model" in html
    assert "Atelectasis, left base." in html
    assert "Not yet reviewed." not in html
    assert "by Ada Lovelace." in " ".join(html.split())


def test_another_doctor_gets_404_and_nothing_is_logged(client, make_doctor, scan):
    client.force_login(make_doctor(email="other@hospital.example"))

    assert report(client, scan).status_code == 404
    assert not LogEntry.objects.get_for_object(scan).filter(action=LogEntry.Action.ACCESS).exists()


def test_opening_the_report_is_logged(doctor_client, doctor, scan):
    report(doctor_client, scan)

    entry = LogEntry.objects.get_for_object(scan).get(action=LogEntry.Action.ACCESS)
    assert (entry.actor, entry.additional_data) == (doctor, {"read": "report"})


@pytest.mark.parametrize("status", ["pending", "processing", "failed"])
def test_a_scan_without_a_result_has_no_report(doctor_client, scan, status):
    Scan.objects.filter(pk=scan.pk).update(status=status)

    response = report(doctor_client, scan)

    assert response.status_code == 404
    html = response.content.decode()
    assert f"Scan {scan.pk} has no report yet" in html
    assert "Alan Turing" not in html
    assert not LogEntry.objects.get_for_object(scan).filter(action=LogEntry.Action.ACCESS).exists()


def test_the_report_names_a_local_evaluation_and_a_confounded_source(doctor_client, scan, validated_version):
    evaluation = validated_version.evaluations.get()
    evaluation.kind = Evaluation.Kind.LOCAL
    labels = {"confusion_matrix": {"labels": ["NORMAL", "COVID"]}}
    evaluation.metrics |= {"per_source": {"ward-b": {"n": 4, "positives": 0, "negatives": 4} | labels}}
    evaluation.save()

    html = report(doctor_client, scan).content.decode()

    assert 'figures from <span id="report-evidence">local evaluation on 300 images of this hospital</span>' in html
    assert "Internal test split" not in html
    assert '<p class="small mb-1 fw-semibold" id="report-confounded">Confounded: ward-b (only NORMAL).' in html


def test_the_report_lists_both_classes_of_a_two_class_version(doctor_client, scan):
    html = report(doctor_client, scan).content.decode()

    assert "<td>COVID-19 pneumonia</td><td>0.910</td>" in html
    assert "<td>Normal</td><td>0.090</td>" in html
    assert ">COVID-19 pneumonia</span>" in html
    assert "below it" not in html


def test_the_report_lists_every_class_of_a_three_class_version_and_the_call(doctor_client, scan, make_version):
    version = make_version("tiny-3", activate=False, class_names=THREE_CLASSES)
    Scan.objects.filter(pk=scan.pk).update(
        model_version=version,
        result=Scan.Result.NEGATIVE,
        label="OTHER_PNEUMONIA",
        probability=0.3,
        probabilities={"NORMAL": 0.1, "OTHER_PNEUMONIA": 0.6, "COVID": 0.3},
    )

    html = report(doctor_client, scan).content.decode()

    rows = re.findall(r"<td>([^<]+)</td><td>([0-9.]+)</td>", html)
    assert rows == [
        ("COVID-19 pneumonia", "0.300"),
        ("Other pneumonia (not COVID-19)", "0.600"),
        ("Normal", "0.100"),
    ]
    assert 'id="report-result">Other pneumonia (not COVID-19)</span>' in html
    assert "below it, the more probable of Other pneumonia (not COVID-19) and Normal" in html


def test_the_reports_disclaimer_names_the_versions_positive_class(doctor_client, scan):
    def disclaimer() -> str:
        html = report(doctor_client, scan).content.decode()
        paragraph = html[html.index("<strong>Decision support") :].split("</p>")[0]
        return " ".join(unescape(re.sub(r"<[^>]+>", "", paragraph)).split())

    expected = (
        "Decision support, not a diagnosis. This reading helps clinicians prioritise; it neither diagnoses nor "
        "rules out COVID-19. The doctor's own reading of the radiograph and of the patient decides."
    )
    assert disclaimer() == expected

    tuberculosis = ModelVersion.objects.create(
        name="tb", class_names=["TUBERCULOSIS", "NORMAL"], positive_class="TUBERCULOSIS"
    )
    Scan.objects.filter(pk=scan.pk).update(model_version=tuberculosis, label="TUBERCULOSIS")

    assert disclaimer() == expected.replace("COVID-19", "Tuberculosis")
