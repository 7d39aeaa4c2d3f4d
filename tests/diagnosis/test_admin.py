import pytest
from django.urls import reverse

from diagnosis.models import Scan

pytestmark = pytest.mark.django_db


@pytest.fixture
def scans(patient, doctor):
    done = Scan.objects.create(
        patient=patient,
        image="originals/a.png",
        file_type="PNG",
        uploaded_by=doctor,
        status="done",
        label="COVID",
        probability=0.9,
        preview="derived/p.png",
        heatmap="derived/h.png",
    )
    waiting = Scan.objects.create(patient=patient, image="originals/b.png", file_type="PNG", uploaded_by=doctor)
    return done, waiting


def test_staff_find_scans_by_mrn_and_status_with_thumbnails(staff_client, scans):
    done, waiting = scans
    url = reverse("admin:diagnosis_scan_changelist")

    by_mrn = staff_client.get(url, {"q": "MRN-0001"}).content.decode()
    by_status = staff_client.get(url, {"status__exact": "pending"})

    assert reverse("diagnosis:scan_image", args=[done.pk, "preview"]) in by_mrn
    assert list(by_status.context["cl"].result_list) == [waiting]


def test_staff_see_the_radiograph_and_heatmap_on_the_scan_page(staff_client, scans):
    done, _ = scans

    html = staff_client.get(reverse("admin:diagnosis_scan_change", args=[done.pk])).content.decode()

    assert reverse("diagnosis:scan_image", args=[done.pk, "preview"]) in html
    assert reverse("diagnosis:scan_image", args=[done.pk, "heatmap"]) in html


def test_staff_search_patients_by_name(staff_client, patient):
    response = staff_client.get(reverse("admin:diagnosis_patient_changelist"), {"q": "Turing"})

    assert list(response.context["cl"].result_list) == [patient]
