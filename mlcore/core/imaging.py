"""Decode chest radiographs (PNG, JPEG, DICOM) into one grayscale float image in [0, 1].

The format is recognised from the content, never from the file name.
"""

from __future__ import annotations

import datetime
import io
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

PNG, JPEG, DICOM = "PNG", "JPEG", "DICOM"
DEFAULT_MAX_PIXELS = 60_000_000


class ImageDecodeError(ValueError):
    """The bytes are not a readable PNG, JPEG or DICOM chest X-ray."""


def sniff_format(head: bytes) -> str | None:
    """PNG, JPEG or DICOM from the first 132 bytes of a file, or None."""
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return PNG
    if head.startswith(b"\xff\xd8\xff"):
        return JPEG
    if len(head) >= 132 and head[128:132] == b"DICM":
        return DICOM
    return None


def read_bytes(source: str | Path | bytes | BinaryIO) -> bytes:
    if isinstance(source, bytes):
        return source
    if isinstance(source, str | Path):
        return Path(source).read_bytes()
    position = source.tell() if source.seekable() else None
    data = source.read()
    if position is not None:
        source.seek(position)
    return data


def decode_image(source: str | Path | bytes | BinaryIO, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Return a 2-D float32 array in [0, 1] (0 = black), whatever the format and bit depth."""
    data = read_bytes(source)
    kind = sniff_format(data[:132])
    if kind is None:
        raise ImageDecodeError("Not a PNG, JPEG or DICOM file.")
    if kind == DICOM:
        return _decode_dicom(data, max_pixels=max_pixels)
    return _decode_raster(data, kind, max_pixels=max_pixels)


def _decode_raster(data: bytes, kind: str, *, max_pixels: int) -> np.ndarray:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise ImageDecodeError(
                    f"The image has {width}x{height} pixels, more than the limit of {max_pixels:,}."
                )
            image.load()
            image = ImageOps.exif_transpose(image)
    except ImageDecodeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"The {kind} file is damaged or truncated: {error}") from error
    except Image.DecompressionBombWarning as error:
        raise ImageDecodeError(f"The {kind} image is too large to decode safely: {error}") from error
    return _to_gray_unit(image)


def _to_gray_unit(image: Image.Image) -> np.ndarray:
    """Grayscale in [0, 1] without losing 16-bit precision; transparency is flattened onto black."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if image.mode == "I":
        values = np.asarray(image, dtype=np.float32)
        top = 65535.0 if values.max(initial=0) > 255 else 255.0
        return np.clip(values / top, 0.0, 1.0)
    if image.mode == "F":
        return _min_max(np.asarray(image, dtype=np.float32))
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        black = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(black, rgba)
    if image.mode != "L":
        rgb = np.asarray(image.convert("RGB"), dtype=np.float32)
        return (rgb @ np.array([0.299, 0.587, 0.114], dtype=np.float32)) / 255.0
    return np.asarray(image, dtype=np.float32) / 255.0


def _decode_dicom(data: bytes, *, max_pixels: int) -> np.ndarray:
    try:
        return _dicom_to_gray_unit(data, max_pixels=max_pixels)
    except ImageDecodeError:
        raise
    except Exception as error:  # pydicom reads lazily and raises many types for damaged files
        raise ImageDecodeError(f"The DICOM file is damaged or not supported: {error}") from error


def _dicom_to_gray_unit(data: bytes, *, max_pixels: int) -> np.ndarray:
    import pydicom
    from pydicom.pixels import apply_modality_lut, apply_voi_lut

    dataset = pydicom.dcmread(io.BytesIO(data))
    if "PixelData" not in dataset:
        raise ImageDecodeError("The DICOM file has no image (no pixel data).")
    rows, columns = int(dataset.get("Rows", 0)), int(dataset.get("Columns", 0))
    if rows * columns > max_pixels:
        raise ImageDecodeError(f"The DICOM image has {columns}x{rows} pixels, more than the limit.")
    pixels = dataset.pixel_array
    if int(dataset.get("NumberOfFrames", 1) or 1) > 1:
        pixels = pixels[0]
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).upper()
    if pixels.ndim == 3:
        if photometric.startswith("YBR"):
            from pydicom.pixels import convert_color_space

            pixels = convert_color_space(pixels, photometric, "RGB")
        pixels = pixels.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return _min_max(pixels)
    values = apply_modality_lut(pixels, dataset)
    values = apply_voi_lut(values, dataset, prefer_lut=True)
    gray = _min_max(np.asarray(values, dtype=np.float32))
    if photometric == "MONOCHROME1":
        gray = 1.0 - gray
    return gray


def _min_max(values: np.ndarray) -> np.ndarray:
    values = np.nan_to_num(values.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    low, high = float(values.min(initial=0)), float(values.max(initial=0))
    if high <= low:
        return np.zeros_like(values, dtype=np.float32)
    return (values - low) / (high - low)


@dataclass(frozen=True)
class DicomHeader:
    """What a DICOM header says about the patient and the study; blank where it says nothing."""

    patient_name: str = ""
    patient_id: str = ""
    study_date: datetime.date | None = None
    view_position: str = ""
    modality: str = ""
    body_part: str = ""
    view_text: str = ""  # ViewPosition as written (view_position keeps only PA or AP)
    manufacturer: str = ""
    station_name: str = ""


def read_dicom_header(source: str | Path | bytes | BinaryIO) -> DicomHeader:
    """Read the header only, so the first few hundred KiB of a file are enough to offer its details on upload.

    An element cut off by the end of the data counts as absent rather than being shown half-read.
    """
    data = read_bytes(source)
    if sniff_format(data[:132]) != DICOM:
        raise ImageDecodeError("Not a DICOM file: there is no 'DICM' marker at byte 128.")
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about every oddity it reads past
            dataset = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
    except Exception as error:  # pydicom raises many types for damaged headers
        raise ImageDecodeError(f"The DICOM header is damaged: {error}") from error
    if not getattr(dataset, "file_meta", None):
        raise ImageDecodeError("The DICOM header is damaged: it has no file meta information.")
    name = _dicom_value(dataset, "PatientName")
    return DicomHeader(
        patient_name=_readable_person_name(name) if name is not None else "",
        patient_id=_dicom_text(dataset, "PatientID"),
        study_date=_dicom_date(_dicom_text(dataset, "StudyDate")),
        view_position=_chest_view(_dicom_text(dataset, "ViewPosition")),
        modality=_dicom_text(dataset, "Modality"),
        body_part=_dicom_text(dataset, "BodyPartExamined"),
        view_text=_dicom_text(dataset, "ViewPosition"),
        manufacturer=_dicom_text(dataset, "Manufacturer"),
        station_name=_dicom_text(dataset, "StationName"),
    )


def _dicom_value(dataset, keyword: str):
    """The first value of an element, or None when it is missing, cut off or unreadable."""
    from pydicom.multival import MultiValue

    if keyword not in dataset:
        return None
    raw = dataset.get_item(keyword)
    raw_value, length = getattr(raw, "value", None), getattr(raw, "length", 0)
    if isinstance(raw_value, bytes) and length != 0xFFFFFFFF and len(raw_value) < length:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            value = dataset[keyword].value
    except Exception:  # a value pydicom cannot convert is as good as absent here
        return None
    if isinstance(value, MultiValue | list | tuple):
        value = value[0] if len(value) else None
    return value


def _dicom_text(dataset, keyword: str) -> str:
    value = _dicom_value(dataset, keyword)
    return "" if value is None else str(value).strip()


def _readable_person_name(value) -> str:
    """Write "Family^Given^Middle" as "Family, Given Middle", the way a doctor reads a name."""
    from pydicom.valuerep import PersonName

    name = value if isinstance(value, PersonName) else PersonName(str(value))
    given = " ".join(part.strip() for part in (name.given_name, name.middle_name) if part.strip())
    readable = ", ".join(part for part in (name.family_name.strip(), given) if part)
    return readable or " ".join(re.split(r"[\^=]+", str(value))).strip()


def _dicom_date(text: str) -> datetime.date | None:
    digits = text.replace(".", "")  # old ACR-NEMA headers write YYYY.MM.DD
    if len(digits) != 8 or not digits.isdigit():
        return None
    try:
        return datetime.date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError:
        return None


def _chest_view(text: str) -> str:
    """PA or AP from ViewPosition (also "AP SUPINE" and the like); other projections are not chest views."""
    first_word = re.split(r"[^A-Z]+", text.upper().strip())[0]
    return first_word if first_word in ("PA", "AP") else ""


# Attributes that identify a patient, a visit or a place (DICOM PS3.15 Annex E, Basic Profile, the
# ones chest radiographs carry). Every person name (VR PN) anywhere in the file goes as well.
IDENTIFYING_KEYWORDS = (
    "PatientID",
    "OtherPatientIDs",
    "OtherPatientIDsSequence",
    "IssuerOfPatientID",
    "PatientBirthDate",
    "PatientBirthTime",
    "PatientAddress",
    "PatientTelephoneNumbers",
    "MedicalRecordLocator",
    "AccessionNumber",
    "StudyID",
    "InstitutionName",
    "InstitutionAddress",
    "InstitutionalDepartmentName",
    "StationName",
    "DeviceSerialNumber",
    "StudyDate",
    "SeriesDate",
    "AcquisitionDate",
    "ContentDate",
    "AcquisitionDateTime",
    "StudyTime",
    "SeriesTime",
    "AcquisitionTime",
    "ContentTime",
    "RequestAttributesSequence",
    "ReferencedPatientSequence",
    "ImageComments",
)
REPLACED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "FrameOfReferenceUID")


def deidentify_dicom(data: bytes, *, pseudonym: str) -> bytes:
    """The same image with the patient's identity taken out of its header, for datasets leaving the ward.

    Names, record numbers, dates, places and private tags go; the UIDs that would link the file back
    to the hospital's archive are replaced; the patient is `pseudonym`. Pixels are left alone, so text
    burned into the image stays: that needs looking at by a person.
    """
    import pydicom
    from pydicom.uid import generate_uid

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except Exception as error:  # pydicom raises many types for damaged files
        raise ImageDecodeError(f"The DICOM file is damaged: {error}") from error
    if "PixelData" not in dataset or not getattr(dataset, "file_meta", None):
        raise ImageDecodeError("The DICOM file is damaged: it has no image or no file meta information.")

    def drop_names(ds, element):
        if element.VR == "PN":
            del ds[element.tag]

    dataset.walk(drop_names)
    dataset.remove_private_tags()
    for keyword in IDENTIFYING_KEYWORDS:
        if keyword in dataset:
            delattr(dataset, keyword)
    for keyword in REPLACED_UIDS:
        if keyword in dataset:
            setattr(dataset, keyword, generate_uid())
    if "SOPInstanceUID" in dataset and getattr(dataset, "file_meta", None) is not None:
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.PatientID = pseudonym
    dataset.PatientName = pseudonym
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = "CovidXray dataset export: PS3.15 Basic Profile attributes removed"
    buffer = io.BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=True)
    except Exception as error:  # a header pydicom could read but cannot write back
        raise ImageDecodeError(f"The DICOM file is damaged: {error}") from error
    return buffer.getvalue()
