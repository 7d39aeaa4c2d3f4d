"""The printable report as a PDF: the report page's own template, rendered offline by WeasyPrint.

One function, so that every channel that hands the report on (the download link, FHIR's presentedForm,
a DICOM Encapsulated PDF) sends the same page the doctor prints. Nothing is fetched over the network:
stylesheets come from the static files, and the only images the page may embed are this scan's
preview and heatmap, read from storage.
"""

from urllib.parse import urlsplit

from django.contrib.staticfiles import finders
from django.contrib.staticfiles.storage import staticfiles_storage
from django.template.loader import render_to_string
from django.templatetags.static import static
from django.urls import reverse
from PIL import ImageFile
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from diagnosis.models import Scan

# Importing WeasyPrint sets Pillow's process-wide LOAD_TRUNCATED_IMAGES, which would make every upload
# check and the worker's decoder accept truncated PNG/JPEG files. The report embeds only our own
# re-encoded PNGs, so Pillow's safe default is restored for the whole process.
ImageFile.LOAD_TRUNCATED_IMAGES = False

# Relative links in the page resolve against this; it names no real host, so nothing can leave the machine.
REPORT_BASE_URL = "https://report.covidxray.invalid/"
CONTENT_TYPES = {".css": "text/css", ".png": "image/png", ".svg": "image/svg+xml", ".js": "text/javascript"}


class ReportFileFetcher(URLFetcher):
    """Serves the report's static files and this scan's own images; refuses every other address."""

    def __init__(self, *, scan: Scan):
        super().__init__(allowed_protocols=["https"])
        self.images = {
            reverse("diagnosis:scan_image", args=[scan.pk, kind]): field
            for kind, field in (("preview", scan.preview), ("heatmap", scan.heatmap))
            if field
        }
        self.static_prefix = urlsplit(static("")).path

    def fetch(self, url, headers=None):
        parts = urlsplit(url)
        if f"{parts.scheme}://{parts.netloc}/" != REPORT_BASE_URL:
            raise ValueError(f"The report PDF fetches nothing from {url}")
        if parts.path in self.images:
            with self.images[parts.path].open("rb") as image:
                return URLFetcherResponse(url, image.read(), {"Content-Type": "image/png"})
        if parts.path.startswith(self.static_prefix):
            name = parts.path.removeprefix(self.static_prefix)
            content_type = CONTENT_TYPES.get(name[name.rfind(".") :], "application/octet-stream")
            return URLFetcherResponse(url, _static_bytes(name), {"Content-Type": content_type})
        raise ValueError(f"The report PDF fetches nothing from {url}")


def _static_bytes(name: str) -> bytes:
    """A collected static file (production's hashed names) or, before collectstatic, the app's own."""
    if staticfiles_storage.exists(name):
        with staticfiles_storage.open(name) as file:
            return file.read()
    path = finders.find(name)
    if not path:
        raise FileNotFoundError(name)
    with open(path, "rb") as file:
        return file.read()


def scan_report_pdf_render(*, scan: Scan, viewer=None) -> bytes:
    """The one-page A4 report of a scan with a result, as PDF bytes; `viewer` is named as who generated it.

    The caller has already checked that `viewer` may see the scan (diagnosis.selectors.scan_get_for_user);
    without a viewer (a background task sending results on) the report says CovidXray generated it.
    """
    # Imported here: the view module imports this one for its download link.
    from diagnosis.views.scans import scan_report_context

    if scan.status != Scan.Status.DONE:
        raise ValueError(f"Scan {scan.pk} has no report: it is {scan.get_status_display().lower()}.")
    html = render_to_string("diagnosis/scan_report.html", scan_report_context(scan=scan, viewer=viewer))
    return HTML(string=html, base_url=REPORT_BASE_URL, url_fetcher=ReportFileFetcher(scan=scan)).write_pdf()
