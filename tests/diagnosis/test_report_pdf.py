"""The printable report as a PDF: one real A4 page with the report's text and images, rendered offline."""

import io

import pypdf
import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from diagnosis.models import Scan
from diagnosis.services.report_pdf import REPORT_BASE_URL, ReportFileFetcher, scan_report_pdf_render
from tests.conftest import THREE_CLASSES

pytestmark = pytest.mark.django_db


def pdf_page(pdf: bytes):
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    assert len(reader.pages) == 1
    return reader.pages[0]


def test_the_pdf_is_one_page_with_the_patient_the_reading_and_both_images(scan, doctor):
    pdf = scan_report_pdf_render(scan=scan, viewer=doctor)

    assert pdf.startswith(b"%PDF-")
    page = pdf_page(pdf)
    text = page.extract_text()
    for expected in ("Alan Turing", "MRN-0001", "P(COVID-19) = 0.910", "validated-v1", "by Ada Lovelace."):
        assert expected in text, expected
    assert len(page.images) == 2
    width, height = (float(value) * 25.4 / 72 for value in (page.mediabox.width, page.mediabox.height))
    assert (round(width), round(height)) == (210, 297)


def test_a_three_class_pdf_stays_one_page_with_every_class_by_name(scan, doctor, make_version):
    version = make_version("tiny-3", activate=False, class_names=THREE_CLASSES)
    Scan.objects.filter(pk=scan.pk).update(
        model_version=version,
        result=Scan.Result.NEGATIVE,
        label="OTHER_PNEUMONIA",
        probability=0.3,
        probabilities={"NORMAL": 0.1, "OTHER_PNEUMONIA": 0.6, "COVID": 0.3},
    )
    scan.refresh_from_db()

    text = " ".join(pdf_page(scan_report_pdf_render(scan=scan, viewer=doctor)).extract_text().split())

    for expected in ("COVID-19 pneumonia 0.300", "Other pneumonia (not COVID-19) 0.600", "Normal 0.100"):
        assert expected in text, expected


def test_a_pdf_made_without_a_viewer_says_covidxray_generated_it(scan):
    text = pdf_page(scan_report_pdf_render(scan=scan)).extract_text()

    assert "MRN-0001" in text
    assert " by CovidXray." in " ".join(text.split())


def test_the_pdf_hides_the_pages_buttons(scan, doctor):
    text = pdf_page(scan_report_pdf_render(scan=scan, viewer=doctor)).extract_text()

    assert "Download PDF" not in text
    assert "Back to the scan" not in text


def test_a_scan_without_a_reading_has_no_pdf(scan, doctor):
    scan.status = Scan.Status.NOT_ASSESSABLE

    with pytest.raises(ValueError, match="has no report"):
        scan_report_pdf_render(scan=scan, viewer=doctor)


@pytest.mark.parametrize(
    "url",
    [
        "https://example.org/tracker.png",
        "http://report.covidxray.invalid/static/css/app.css",
        f"{REPORT_BASE_URL}scans/987654/preview.png",
        f"{REPORT_BASE_URL}admin/",
    ],
)
def test_the_renderer_fetches_nothing_but_static_files_and_the_scans_own_images(scan, url):
    fetcher = ReportFileFetcher(scan=scan)

    with pytest.raises(ValueError, match="fetches nothing"):
        fetcher.fetch(url)


def test_the_renderer_reads_the_scans_images_from_storage(scan):
    fetcher = ReportFileFetcher(scan=scan)
    url = REPORT_BASE_URL + reverse("diagnosis:scan_image", args=[scan.pk, "heatmap"]).lstrip("/")

    response = fetcher.fetch(url)

    with scan.heatmap.open("rb") as heatmap:
        assert response.read() == heatmap.read()


def test_the_report_page_links_its_pdf_which_downloads_and_is_logged(doctor_client, doctor, scan):
    pdf_url = reverse("diagnosis:scan_report_pdf", args=[scan.pk])
    assert f'href="{pdf_url}"' in doctor_client.get(reverse("diagnosis:scan_report", args=[scan.pk])).content.decode()

    response = doctor_client.get(pdf_url)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == f'attachment; filename="covidxray-scan-{scan.pk}-report.pdf"'
    assert response["Cache-Control"] == "private, no-store"
    assert "MRN-0001" in pdf_page(response.content).extract_text()
    reads = LogEntry.objects.get_for_object(scan).filter(action=LogEntry.Action.ACCESS, actor=doctor)
    assert list(reads.order_by("timestamp", "pk").values_list("additional_data", flat=True)) == [
        {"read": "report"},
        {"read": "report PDF"},
    ]


@pytest.mark.parametrize("status", ["pending", "processing", "failed", "not_assessable"])
def test_a_scan_without_a_result_has_no_pdf_download(doctor_client, scan, status):
    Scan.objects.filter(pk=scan.pk).update(status=status)

    assert doctor_client.get(reverse("diagnosis:scan_report_pdf", args=[scan.pk])).status_code == 404
    assert not LogEntry.objects.get_for_object(scan).filter(action=LogEntry.Action.ACCESS).exists()


def test_loading_the_pdf_renderer_leaves_truncated_images_refused():
    """WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES on import; uploads must still refuse them."""
    from mlcore.core.imaging import ImageDecodeError, decode_image
    from tests.diagnosis.conftest import xray_png

    assert scan_report_pdf_render  # this module imported the renderer, and WeasyPrint with it
    with pytest.raises(ImageDecodeError):
        decode_image(xray_png(seed=1)[:-200])
