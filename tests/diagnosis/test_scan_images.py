"""Patient images: served only as PNG the browser may neither sniff into a page nor cache."""

import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("kind", ["preview", "heatmap"])
def test_patient_images_are_served_as_png_that_browsers_may_not_sniff_or_cache(doctor_client, kind, diagnosed_scan):
    scan = diagnosed_scan

    response = doctor_client.get(reverse("diagnosis:scan_image", args=[scan.pk, kind]))

    assert response["Content-Type"] == "image/png"
    assert response["X-Content-Type-Options"] == "nosniff"
    assert {"private", "no-store"} <= {part.strip() for part in response["Cache-Control"].split(",")}
    assert b"".join(response.streaming_content).startswith(b"\x89PNG")


def test_no_url_serves_an_uploaded_original(doctor_client, diagnosed_scan):
    """Originals (whatever bytes a client sent) are never served back; only derived PNGs are."""
    scan = diagnosed_scan

    assert doctor_client.get(reverse("diagnosis:scan_image", args=[scan.pk, "image"])).status_code == 404
    assert doctor_client.get(reverse("diagnosis:scan_image", args=[scan.pk, "original"])).status_code == 404
    assert doctor_client.get("/media/scans/" + scan.image.name).status_code == 404
