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
    assert "Every source has both classes." in html


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
    assert "Every source has both classes." in html


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
