"""Staff see which evidence scan pages quote and which sources confound it, and mark evaluations local."""

import pytest
from django.urls import reverse

from mlcore.core.evaluation import evaluate, jsonable
from mlcore.models import Evaluation, ModelVersion

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(db) -> ModelVersion:
    return ModelVersion.objects.create(
        name="shown-v1", status="succeeded", class_names=["COVID", "NORMAL"], threshold=0.5
    )


def add_evaluation(version, kind, *, sources=("a", "a", "b", "b"), data_dir="/data/folder") -> Evaluation:
    metrics = evaluate(
        labels=["COVID", "NORMAL", "COVID", "NORMAL"],
        probabilities=[[0.9, 0.1], [0.1, 0.9], [0.8, 0.2], [0.3, 0.7]],
        threshold=0.5,
        class_names=["COVID", "NORMAL"],
        positive_class="COVID",
        sources=list(sources),
    )
    if kind == Evaluation.Kind.TEST_SPLIT:
        version.metrics = jsonable(metrics)
        version.save()
    return Evaluation.objects.create(
        version=version, kind=kind, data_dir=data_dir, threshold=0.5, metrics=jsonable(metrics)
    )


def version_page(client, version) -> str:
    response = client.get(reverse("admin:mlcore_modelversion_change", args=[version.pk]))
    assert response.status_code == 200
    return response.content.decode()


def test_the_version_page_says_the_scan_pages_quote_the_internal_test_split_with_its_warning(staff_client, version):
    split = add_evaluation(version, Evaluation.Kind.TEST_SPLIT)

    html = version_page(staff_client, version)

    assert f"Figures from the internal test split of 4 images (evaluation {split.pk})." in html
    assert "Internal test split: same sources as training; overstates what a new hospital will see." in html
    assert "Every source has more than one class." in html


def test_the_version_page_names_a_local_evaluation_once_there_is_one(staff_client, version):
    add_evaluation(version, Evaluation.Kind.TEST_SPLIT)
    local = add_evaluation(version, Evaluation.Kind.LOCAL)

    html = version_page(staff_client, version)

    assert f"Figures from local evaluation on 4 images of this hospital (evaluation {local.pk})." in html


def test_a_confounded_test_split_is_flagged_on_the_version_page_and_its_source_rows(staff_client, version):
    add_evaluation(version, Evaluation.Kind.TEST_SPLIT, sources=("ieee8023", "nih", "ieee8023", "nih"))

    html = version_page(staff_client, version)

    assert "Confounded: ieee8023 (only COVID), nih (only NORMAL)." in html
    assert html.count("confounded: this source cannot show discrimination") == 4  # two rows, version and inline


def test_the_evaluation_list_flags_confounded_rows(staff_client, version):
    add_evaluation(version, Evaluation.Kind.EXTERNAL, sources=("x", "x", "y", "y"))
    add_evaluation(version, Evaluation.Kind.EXTERNAL, sources=("x", "y", "x", "y"))

    html = staff_client.get(reverse("admin:mlcore_evaluation_changelist")).content.decode()

    assert html.count("Confounded: x (only COVID), y (only NORMAL).") == 1
    assert "Every source has more than one class." in html


def act(client, action, *evaluations):
    return client.post(
        reverse("admin:mlcore_evaluation_changelist"),
        {"action": action, "_selected_action": [e.pk for e in evaluations]},
        follow=True,
    )


def test_staff_mark_an_external_evaluation_local_and_back(staff_client, version):
    external = add_evaluation(version, Evaluation.Kind.EXTERNAL)

    act(staff_client, "mark_local", external)
    external.refresh_from_db()
    assert external.kind == Evaluation.Kind.LOCAL

    act(staff_client, "mark_external", external)
    external.refresh_from_db()
    assert external.kind == Evaluation.Kind.EXTERNAL


def test_a_test_split_cannot_be_marked_local(staff_client, version):
    split = add_evaluation(version, Evaluation.Kind.TEST_SPLIT)
    external = add_evaluation(version, Evaluation.Kind.EXTERNAL)

    response = act(staff_client, "mark_local", split, external)

    split.refresh_from_db()
    external.refresh_from_db()
    assert (split.kind, external.kind) == (Evaluation.Kind.TEST_SPLIT, Evaluation.Kind.LOCAL)
    html = response.content.decode()
    assert "is the held-out test split of shown-v1; it cannot be relabelled." in html
    assert "1 evaluation(s) marked: Local evaluation (this hospital&#x27;s images)." in html


def test_staff_who_may_only_view_evaluations_cannot_mark_them(client, make_doctor, version):
    from django.contrib.auth.models import Permission

    viewer = make_doctor(email="viewer@hospital.example", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_evaluation"))
    client.force_login(viewer)
    external = add_evaluation(version, Evaluation.Kind.EXTERNAL)

    act(client, "mark_local", external)

    external.refresh_from_db()
    assert external.kind == Evaluation.Kind.EXTERNAL


def test_the_version_list_says_which_evidence_each_version_is_quoted_from(staff_client, version):
    bare = ModelVersion.objects.create(name="bare-v2", status="succeeded", threshold=0.5)
    add_evaluation(version, Evaluation.Kind.EXTERNAL)

    html = staff_client.get(reverse("admin:mlcore_modelversion_changelist")).content.decode()

    assert '<td class="field-evidence_kind">External validation</td>' in html
    assert '<td class="field-evidence_kind">nothing</td>' in html
    assert bare.name in html


THREE = ["COVID", "NORMAL", "OTHER_PNEUMONIA"]


def test_a_three_class_version_shows_covid_against_the_rest_the_full_matrix_and_patient_intervals(
    staff_client, version
):
    version.class_names = THREE
    labels = ["COVID", "NORMAL", "OTHER_PNEUMONIA"] * 4
    probabilities = [[0.8, 0.1, 0.1], [0.1, 0.8, 0.1], [0.6, 0.1, 0.3]] * 4  # every pneumonia called COVID
    metrics = evaluate(
        labels=labels,
        probabilities=probabilities,
        threshold=0.5,
        class_names=THREE,
        positive_class="COVID",
        sources=["a", "b", "c"] * 4,
        patient_ids=[f"p{i // 2}" for i in range(12)],
        resamples=100,
    )
    version.metrics = jsonable(metrics)
    version.save()

    html = version_page(staff_client, version)

    assert "AUC (COVID against the rest)" in html
    assert "AUC, 95% interval by patient" in html
    assert "OTHER_PNEUMONIA called COVID" in html
    assert "1.000 [0.510-1.000] (4/4)" in html  # Wilson interval of 4 of 4 pneumonias called COVID
    assert "<th>called OTHER_PNEUMONIA</th>" in html
    assert "<th>true NORMAL</th><td>4 (100.0%)</td><td>0 (0.0%)</td><td>0 (0.0%)</td>" in html
    assert "Confounded: a (only COVID), b (only NORMAL), c (only OTHER_PNEUMONIA)." in html


def test_a_two_class_versions_stored_metrics_still_render(staff_client, version):
    """Metrics as versions stored them before N classes: no class counts, no bootstrap, no per-class shares."""
    version.metrics = {
        "n": 4,
        "positives": 2,
        "negatives": 2,
        "threshold": 0.5,
        "accuracy": 0.75,
        "auc": 0.75,
        "sensitivity": {"value": 1.0, "low": 0.34, "high": 1.0, "count": 2, "total": 2},
        "specificity": {"value": 0.5, "low": 0.09, "high": 0.91, "count": 1, "total": 2},
        "confusion_matrix": {
            "labels": ["NORMAL", "COVID"],
            "counts": [[1, 1], [0, 2]],
            "percent_of_true_class": [[50.0, 50.0], [0.0, 100.0]],
        },
        "per_source": {
            "nih": {"n": 2, "positives": 0, "negatives": 2, "confusion_matrix": {"labels": ["NORMAL", "COVID"]}},
        },
    }
    version.save()

    html = version_page(staff_client, version)

    assert "4 (2 positive, 2 negative)" in html
    assert "<th>true COVID</th><td>0 (0.0%)</td><td>2 (100.0%)</td>" in html
    assert "Confounded: nih (only NORMAL)." in html
    assert "trained before the shortcut audit" in html


def test_the_version_page_shows_the_shortcut_audit_beside_the_models_auc(staff_client, version):
    version.shortcut_audit = {
        "method": "Logistic regression on 32x32 thumbnails.",
        "positive_class": "COVID",
        "model_auc": 0.962,
        "pixel_baseline": {"auc": 0.912, "auc_interval": {"low": 0.85, "high": 0.95}, "n_test": 90},
        "source_classifier": {
            "sources": ["ieee8023", "nih"],
            "n_test": 90,
            "accuracy": 0.97,
            "chance_accuracy": 0.6,
            "balanced_accuracy": 0.96,
            "chance_balanced_accuracy": 0.5,
        },
    }
    version.save()

    html = version_page(staff_client, version)

    assert "<th>Model: COVID AUC on the test split</th><td>0.962</td>" in html
    assert "<th>Pixel-only baseline: COVID AUC</th><td>0.912 [0.850-0.950] by patient</td>" in html
    assert "balanced accuracy 0.960 (chance 0.500) over 2 sources" in html
