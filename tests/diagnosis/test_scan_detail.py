"""The scan page: result, probability against the threshold, validation, PPV/NPV here, timings, statement."""

import re
from html import unescape

import pytest
from django.urls import reverse

from diagnosis.models import Scan
from diagnosis.views.scans import duration_text
from mlcore.models import Evaluation, ModelVersion
from tests.conftest import THREE_CLASSES

pytestmark = pytest.mark.django_db


def page(client, scan) -> str:
    response = client.get(reverse("diagnosis:scan_detail", args=[scan.pk]))
    assert response.status_code == 200
    return response.content.decode()


def status_json(client, scan) -> dict:
    return client.get(reverse("diagnosis:scan_status", args=[scan.pk])).json()


def test_the_page_shows_the_versions_validation_with_intervals_and_counts(doctor_client, scan):
    html = page(doctor_client, scan)

    assert "validated-v1" in html
    assert "90.0% (95% CI 82.6% to 94.5%), 90 of 100 images with COVID-19" in html
    assert "95.0% (95% CI 91.0% to 97.3%), 190 of 200 images without COVID-19" in html


def test_predictive_values_change_with_the_hospitals_prevalence(doctor_client, scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.05
    at_five = page(doctor_client, scan)
    settings.COVIDXRAY_PREVALENCE = 0.1
    at_ten = page(doctor_client, scan)

    assert "48.6% (range 32.7% to 64.5%)" in at_five
    assert "about 49 in 100 have COVID-19" in at_five
    assert "66.7% (range 50.6% to 79.3%)" in at_ten
    assert "98.8% (range 97.9% to 99.4%)" in at_ten
    assert "Of patients with this result at a prevalence of 10%, about 67 in 100 have COVID-19" in at_ten


def test_the_probability_bar_marks_the_threshold(doctor_client, scan):
    html = page(doctor_client, scan)

    assert 'id="threshold-marker" class="threshold-marker" style="left: 70.0%"' in html
    assert 'style="width: 91.0%"' in html
    assert 'aria-valuenow="91.0"' in html
    assert '<span id="scan-threshold">0.700</span>' in html


def test_the_page_shows_the_timings_and_the_batch(doctor_client, scan):
    html = page(doctor_client, scan)

    for key, text in [("queue_wait", "120 ms"), ("preprocess", "8 ms"), ("network", "40 ms"), ("total", "170 ms")]:
        assert f'id="timing-{key}">{text}</dd>' in html
    assert 'id="timing-batch_size">1</dd>' in html


@pytest.mark.parametrize(
    ("milliseconds", "text"), [(None, "—"), (7.6, "8 ms"), (999.4, "999 ms"), (4210, "4.2 s"), (185_000, "3 min 5 s")]
)
def test_durations_read_in_the_unit_a_person_expects(milliseconds, text):
    assert duration_text(milliseconds) == text


def test_the_page_says_it_is_decision_support_and_links_the_report(doctor_client, scan):
    html = page(doctor_client, scan)

    assert "Decision support, not a diagnosis." in html
    assert f'href="{reverse("diagnosis:scan_report", args=[scan.pk])}"' in html


def test_without_a_test_evaluation_the_figures_are_marked_not_available(doctor_client, scan, validated_version):
    validated_version.evaluations.all().delete()

    html = page(doctor_client, scan)

    assert "validated-v1 has no evaluation with both classes" in html
    assert 'id="reading-available" hidden' in html
    assert "% (range" not in html


def test_the_page_says_its_figures_come_from_the_internal_test_split_with_a_warning(doctor_client, scan):
    html = page(doctor_client, scan)

    assert 'Figures from <span id="reading-evidence">the internal test split of 300 images</span>' in html
    assert re.search(
        r'<p id="reading-warning"[^>]*>Internal test split: same sources as training; '
        r"overstates what a new hospital will see.</p>",
        html,
    )
    assert re.search(r'<p id="reading-confounded"[^>]*hidden>', html)


def test_the_page_quotes_a_local_evaluation_without_the_warning(doctor_client, scan, validated_version):
    evaluation = validated_version.evaluations.get()
    evaluation.kind = Evaluation.Kind.LOCAL
    evaluation.save()

    html = page(doctor_client, scan)
    data = status_json(doctor_client, scan)

    assert '<span id="reading-evidence">local evaluation on 300 images of this hospital</span>' in html
    assert re.search(r'<p id="reading-warning"[^>]*hidden></p>', html)
    assert data["reading"]["evidence"]["text"] == "local evaluation on 300 images of this hospital"
    assert data["reading"]["evidence"]["warning"] == ""


def test_a_confounded_test_split_is_flagged_beside_the_figures(doctor_client, scan, validated_version):
    evaluation = validated_version.evaluations.get()
    evaluation.metrics |= {"per_source": {"ieee8023": {"n": 5, "positives": 5, "negatives": 0}}}
    evaluation.save()

    html = page(doctor_client, scan)

    assert re.search(r'<p id="reading-confounded"[^>]*>Confounded: ieee8023 \(only positive\)\.', html)


def test_the_status_json_keeps_its_keys_and_adds_the_reading(doctor_client, scan, settings):
    settings.COVIDXRAY_PREVALENCE = 0.1

    data = status_json(doctor_client, scan)

    assert {"status", "label", "probability", "threshold", "model_version", "timings_ms", "batch_size"} <= set(data)
    assert data["timings_ms"]["queue_wait"] == 120.0
    assert data["timings_text"]["total"] == "170 ms"
    assert (data["probability_percent"], data["threshold_percent"], data["positive"]) == (91.0, 70.0, True)
    assert data["reading"]["ppv"]["value"] == pytest.approx(0.6667, abs=1e-4)
    assert data["reading"]["explanation"].startswith("Of patients with this result at a prevalence of 10%")
    assert data["report_url"] == reverse("diagnosis:scan_report", args=[scan.pk])


def test_a_pending_scan_has_no_reading_and_no_report_yet(doctor_client, scan):
    Scan.objects.filter(pk=scan.pk).update(status="pending", label="", probability=None, model_version=None)

    data = status_json(doctor_client, scan)
    html = page(doctor_client, scan)

    assert data["reading"]["available"] is False
    assert data["report_url"] is None
    assert (data["probability_percent"], data["positive"]) == (None, None)
    assert re.search(r'<a id="scan-report-link"[^>]*\shidden>', html)


@pytest.mark.parametrize(("threshold", "marker", "label"), [(0.7, 70.0, 70.0), (0.008, 0.8, 12.0), (0.99, 99.0, 88.0)])
def test_the_threshold_label_stays_inside_the_bar_while_its_marker_does_not_move(
    doctor_client, scan, threshold, marker, label
):
    Scan.objects.filter(pk=scan.pk).update(threshold=threshold)

    data = status_json(doctor_client, scan)

    assert (data["threshold_percent"], data["threshold_label_percent"]) == (marker, label)
    assert (
        f'id="threshold-label" class="threshold-label" style="left: {label}%"'
        in doctor_client.get(reverse("diagnosis:scan_detail", args=[scan.pk])).content.decode()
    )


def class_rows(html: str) -> list[tuple[str, str, str]]:
    """(class name, display name, probability) of the page's per-class list, in order."""
    return re.findall(
        r'<dt class="col-6[^"]*" data-class="([^"]+)">([^<]+)</dt><dd class="col-6 mb-0">([^<]+)</dd>', html
    )


def test_a_two_class_reading_shows_both_classes_by_name_and_its_call_in_words(doctor_client, scan):
    html = page(doctor_client, scan)
    data = status_json(doctor_client, scan)

    assert class_rows(html) == [("COVID", "COVID-19 pneumonia", "0.910"), ("NORMAL", "Normal", "0.090")]
    assert re.search(r'<span id="scan-label" class="badge text-bg-danger">COVID-19 pneumonia</span>', html)
    assert 'P(<span class="scan-positive-name">COVID-19</span>) = <strong id="scan-probability">0.910' in html
    assert data["negative_rule"] == ""
    assert '<span id="scan-negative-rule"></span>' in html
    assert [entry["display"] for entry in data["class_probabilities"]] == ["COVID-19 pneumonia", "Normal"]


def test_a_three_class_reading_shows_every_class_the_call_and_the_rule_below_the_threshold(
    doctor_client, scan, make_version
):
    version = make_version("tiny-3", activate=False, class_names=THREE_CLASSES)
    Scan.objects.filter(pk=scan.pk).update(
        model_version=version,
        result=Scan.Result.NEGATIVE,
        label="OTHER_PNEUMONIA",
        probability=0.3,
        probabilities={"NORMAL": 0.1, "OTHER_PNEUMONIA": 0.6, "COVID": 0.3},
    )

    html = page(doctor_client, scan)
    data = status_json(doctor_client, scan)

    assert class_rows(html) == [
        ("COVID", "COVID-19 pneumonia", "0.300"),
        ("OTHER_PNEUMONIA", "Other pneumonia (not COVID-19)", "0.600"),
        ("NORMAL", "Normal", "0.100"),
    ]
    assert '<dt class="col-6 fw-semibold" data-class="OTHER_PNEUMONIA">' in html  # the called class stands out
    assert '<dt class="col-6 fw-normal" data-class="NORMAL">' in html
    assert re.search(
        r'<span id="scan-label" class="badge text-bg-success">Other pneumonia \(not COVID-19\)</span>', html
    )
    assert "; below it, the more probable of Other pneumonia (not COVID-19) and Normal</span>." in html
    assert (data["result_display"], data["positive"]) == ("Other pneumonia (not COVID-19)", False)
    assert [entry["called"] for entry in data["class_probabilities"]] == [False, True, False]


def decision_support(html: str) -> str:
    """The disclaimer's paragraph as a reader sees it: tags dropped, white space collapsed."""
    paragraph = html[html.index('id="decision-support">') :].split(">", 1)[1].split("</p>")[0]
    return " ".join(unescape(re.sub(r"<[^>]+>", "", paragraph)).split())


COVID_DISCLAIMER = (
    "Decision support, not a diagnosis. This reading helps clinicians prioritise; it neither diagnoses nor rules "
    "out COVID-19. The doctor's own reading of the radiograph and of the patient decides."
)


def test_the_disclaimer_names_the_versions_positive_class(doctor_client, scan):
    assert decision_support(page(doctor_client, scan)) == COVID_DISCLAIMER

    tuberculosis = ModelVersion.objects.create(
        name="tb", class_names=["TUBERCULOSIS", "NORMAL"], positive_class="TUBERCULOSIS"
    )
    Scan.objects.filter(pk=scan.pk).update(model_version=tuberculosis, label="TUBERCULOSIS")

    assert decision_support(page(doctor_client, scan)) == COVID_DISCLAIMER.replace("COVID-19", "Tuberculosis")
