"""Upload checks: the content must be a readable PNG, JPEG or DICOM within the size limits."""

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ValidationError
from django.template.defaultfilters import filesizeformat

from mlcore.core.imaging import ImageDecodeError, check_image, read_bytes, sniff_format


@dataclass(frozen=True)
class CheckedUpload:
    file_type: str
    width: int
    height: int


def validate_xray_upload(upload) -> CheckedUpload:
    """Recognise the format by content, never by name, and decode it once at reduced cost.

    The pixel limit is held against the header before anything is decoded; the worker decodes in full.
    """
    limit = settings.SCAN_MAX_UPLOAD_BYTES
    if upload.size is not None and upload.size > limit:
        raise ValidationError(
            f"The file is {filesizeformat(upload.size)}; the limit is {filesizeformat(limit)}.",
            code="too_large",
        )
    upload.seek(0)
    data = read_bytes(upload)
    upload.seek(0)
    if not data:
        raise ValidationError("The file is empty.", code="empty")
    kind = sniff_format(data[:132])
    if kind is None:
        raise ValidationError("This is not a PNG, JPEG or DICOM image (whatever its name says).", code="unsupported")
    try:
        size = check_image(data, max_pixels=settings.SCAN_MAX_PIXELS)
    except ImageDecodeError as error:
        raise ValidationError(str(error), code="unreadable") from error
    return CheckedUpload(file_type=kind, width=size.width, height=size.height)
