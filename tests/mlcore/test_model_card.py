"""The printable model card of a version and its split membership as CSV: old versions (nothing recorded) and
new ones, and who may read them."""

import pytest
from django.urls import reverse

from mlcore.core.evaluation import evaluate, jsonable
from mlcore.models import Evaluation, ModelVersion

pytestmark = pytest.mark.django_db

PROVENANCE = {
    "code": {"commit": "0123456789abcdef0123456789abcdef01234567", "dirty": False, "changed_files": []},
    "libraries": {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "pydicom": None},
    "python": "3.11.7",
    "platform": "Linux-x86_64",
    "environment_variables": {"TF_NUM_INTRAOP_THREADS": "1"},
    "seeds": {"training": 7, "split": 7},
    "data": {
        "roots": ["/data/cxr"],
        "files": 3,
        "digest": "d1a2b3" * 10 + "abcd",
        "splits": {
            "train": [["COVID/a.png", "aa" * 32]],
            "validation": [["NORMAL/b.png", "bb" * 32]],
            "test": [["COVID/c.png", "cc" * 32]],
        },
    },
}
AUDIT = {"model_auc": 0.97, "pixel_baseline": {"auc": 0.81}, "source_from_image": {"accuracy": 0.993}}
SUMMARY = {
    "root": "/data/cxr",
    "class_names": ["COVID", "NORMAL"],
    "images": 40,
    "patients_known": 30,
    "per_split": {
        "train": {"COVID": 14, "NORMAL": 14},
        "validation": {"COVID": 3, "NORMAL": 3},
        "test": {"COVID": 3, "NORMAL": 3},
    },
    "counts": {"train": 28, "validation": 6, "test": 6},
    "per_source": {
        "site-a": {
            "train": {"COVID": 14, "NORMAL": 0},
            "validation": {"COVID": 3, "NORMAL": 0},
            "test": {"COVID": 3, "NORMAL": 0},
        },
        "nih": {
            "train": {"COVID": 0, "NORMAL": 14},
            "validation": {"COVID": 0, "NORMAL": 3},
            "test": {"COVID": 0, "NORMAL": 3},
        },
    },
    "skipped": [],
}


@pytest.fixture
def old_version(db) -> ModelVersion:
    """A version from before provenance, the shortcut audit and the dataset summary were stored."""
    return ModelVersion.objects.create(name="old-v1", status="succeeded", class_names=["COVID", "NORMAL"])


@pytest.fixture
def new_version(db) -> ModelVersion:
    metrics = jsonable(
        evaluate(
            labels=["COVID"] * 3 + ["NORMAL"] * 3,
            probabilities=[[p, 1 - p] for p in (0.9, 0.8, 0.3, 0.1, 0.2, 0.6)],
            threshold=0.5,
            class_names=["COVID", "NORMAL"],
            positive_class="COVID",
            sources=["site-a"] * 3 + ["nih"] * 3,
        )
    )
    version = ModelVersion.objects.create(
        name="new-v2",
        status="succeeded",
        class_names=["COVID", "NORMAL"],
        threshold=0.5,
        dataset_summary=SUMMARY,
        metrics=metrics,
        provenance=PROVENANCE,
        shortcut_audit=AUDIT,
        command="manage.py train_model --data /data/cxr --seed 7",
    )
    Evaluation.objects.create(
        version=version, kind=Evaluation.Kind.TEST_SPLIT, data_dir="/data/cxr", threshold=0.5, metrics=metrics
    )
    return version


def card_url(version) -> str:
    return reverse("admin:mlcore_modelversion_card", args=[version.pk])


def card(client, version) -> str:
    response = client.get(card_url(version))
    assert response.status_code == 200
    return response.content.decode()


def test_an_old_version_card_says_what_was_not_recorded(staff_client, old_version):
    html = card(staff_client, old_version)

    assert "Intended use" in html
    assert "adult frontal" in html
    assert "Not recorded: this version was trained before the shortcut audit was stored." in html
    assert "Not recorded: this version was trained before provenance was stored." in html
    assert "No provenance recorded" in html
    assert "trained before calibration" in html


def test_a_new_version_card_shows_data_figures_audit_provenance_and_limits(staff_client, new_version):
    html = card(staff_client, new_version)

    assert "/data/cxr" in html
    assert '<th scope="row">train</th><td>14</td><td>14</td><td>28</td>' in html
    assert '<th scope="row">nih</th>' in html
    assert "images without a patient id (each counted as its own patient)</th><td>10</td>" in html
    assert "Figures from the internal test split" in html
    assert "model_auc</th><td>0.970</td>" in html
    assert "pixel_baseline / auc</th><td>0.810</td>" in html
    assert PROVENANCE["code"]["commit"] in html
    assert PROVENANCE["data"]["digest"] in html
    assert "training 7, split 7" in html
    assert "tensorflow 2.21.0" in html
    assert "pydicom not installed" in html
    assert "<li>Confounded: nih (only NORMAL), site-a (only COVID)." in html
    assert "Trained on COVID, NORMAL only" in html
    assert "10 training image(s) had no patient id" in html
    assert "Not recorded" not in html


def test_the_card_is_one_click_from_the_version_page_and_prints_without_the_admin_chrome(staff_client, new_version):
    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[new_version.pk])).content.decode()
    html = card(staff_client, new_version)

    assert f'href="{card_url(new_version)}"' in page
    assert "css/model_card.css" in html
    assert "js/model_card.js" in html
    assert "data-print" in html
    assert "<style" not in html  # the Content-Security-Policy forbids inline styles and scripts
    assert "onclick" not in html


def test_a_dirty_tree_is_a_known_limit(staff_client, new_version):
    new_version.provenance = PROVENANCE | {"code": {"commit": "abc", "dirty": True}}
    new_version.save()

    html = card(staff_client, new_version)

    assert "with uncommitted changes" in html
    assert "Trained from code that differs from any commit" in html


def test_a_gate_without_a_view_check_is_a_known_limit_and_one_with_it_is_not(staff_client, new_version):
    new_version.reliability = {"gate": {"view_check": {"fitted": False}}}
    new_version.save()

    assert "headerless lateral views are not caught by the image check" in card(staff_client, new_version)

    new_version.reliability = {"gate": {"view_check": {"fitted": True, "examples": {"LATERAL": 14}}}}
    new_version.save()

    assert "headerless lateral views are not caught" not in card(staff_client, new_version)


def test_anonymous_users_are_sent_to_sign_in(client, new_version):
    response = client.get(card_url(new_version))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("accounts:login") + "?next=")


def test_a_doctor_who_is_not_staff_is_sent_to_sign_in(doctor_client, new_version):
    response = doctor_client.get(card_url(new_version))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def membership_url(version) -> str:
    return reverse("admin:mlcore_modelversion_membership", args=[version.pk])


@pytest.mark.parametrize("page_url", [card_url, membership_url], ids=["card", "membership"])
def test_staff_without_permission_to_view_versions_are_refused(client, make_staff, new_version, page_url):
    client.force_login(make_staff("mlcore.view_evaluation"))
    assert client.get(page_url(new_version)).status_code == 403

    client.force_login(make_staff("mlcore.view_modelversion", email="viewer@hospital.example"))
    assert client.get(page_url(new_version)).status_code == 200


def test_the_card_only_reads(staff_client, new_version):
    assert staff_client.post(card_url(new_version)).status_code == 405


def test_an_unknown_version_is_not_found(staff_client):
    assert staff_client.get(reverse("admin:mlcore_modelversion_card", args=[987654])).status_code == 404


def test_patients_and_joined_duplicates_are_shown_where_the_summary_records_them(staff_client, new_version):
    patients = {"patients": 30, "unknown_patients": 0, "near_duplicate_pairs": 3, "duplicate_groups_joined": 2}
    new_version.dataset_summary = SUMMARY | {"patients": patients}
    new_version.save()

    html = card(staff_client, new_version)

    assert "patient groups joined as near-duplicates (kept in one split)</th><td>2</td>" in html
    assert "near-duplicate image pairs found</th><td>3</td>" in html
    assert "images without a patient id (each counted as its own patient)</th><td>0</td>" in html
    assert "had no patient id" not in html


def test_the_split_membership_downloads_as_csv_linked_from_the_version_page(staff_client, new_version):
    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[new_version.pk])).content.decode()

    response = staff_client.get(membership_url(new_version))

    assert f'href="{membership_url(new_version)}"' in page
    assert response.status_code == 200
    assert response.streaming
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="new-v2-split-membership.csv"'
    assert b"".join(response.streaming_content).decode().splitlines() == [
        "split,path,sha256",
        f"train,COVID/a.png,{'aa' * 32}",
        f"validation,NORMAL/b.png,{'bb' * 32}",
        f"test,COVID/c.png,{'cc' * 32}",
    ]


def test_a_path_that_would_run_as_a_formula_downloads_as_text(staff_client, new_version):
    splits = {"train": [['=HYPERLINK("http://x.example","a")', "aa"], ["-1+1.png", "bb"], ["@a.png", "cc"]]}
    new_version.provenance = PROVENANCE | {"data": PROVENANCE["data"] | {"splits": splits}}
    new_version.save()

    body = b"".join(staff_client.get(membership_url(new_version)).streaming_content).decode()

    assert body.splitlines()[1:] == [
        'train,"\'=HYPERLINK(""http://x.example"",""a"")",aa',
        "train,'-1+1.png,bb",
        "train,'@a.png,cc",
    ]


def test_a_version_without_stored_membership_has_no_download(staff_client, old_version):
    page = staff_client.get(reverse("admin:mlcore_modelversion_change", args=[old_version.pk])).content.decode()

    assert staff_client.get(membership_url(old_version)).status_code == 404
    assert "split membership (CSV)" not in page


def test_the_membership_download_only_reads(staff_client, new_version):
    assert staff_client.post(membership_url(new_version)).status_code == 405
