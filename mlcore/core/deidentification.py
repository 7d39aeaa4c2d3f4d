"""Images with the patient taken out, for datasets that leave the ward.

DICOM: the PS3.15 Basic Application Level Confidentiality Profile, applied by dicom-anonymizer from the
standard's own attribute table (2026c), at every level of nested sequences, private tags removed. Instance
UIDs are replaced by a keyed hash, so one export stays consistent (a study's images keep one study UID) and
reveals nothing of the archive's UIDs. PNG and JPEG: written again from their decoded pixels, so no EXIF,
XMP, ICC or text chunk survives. Text burned into pixels stays in both: that needs looking at by a person.
"""

from __future__ import annotations

import hashlib
import hmac
import io

from PIL import Image, ImageOps

from mlcore.core.imaging import (
    DEFAULT_MAX_PIXELS,
    JPEG,
    ImageDecodeError,
    open_raster,
    raster_errors,
    read_bytes,
    read_dicom_dataset,
    sniff_format,
)

PROFILE_TABLE = "dicomfields_2026c"
DEIDENTIFICATION_METHOD = "CovidXray dataset export: PS3.15 Basic Application Level Confidentiality Profile"


def deidentify_dicom(data: bytes, *, pseudonym: str, uid_key: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """The same image under the Basic Profile, the patient named `pseudonym`, UIDs keyed by `uid_key`."""
    try:
        dataset = read_dicom_dataset(data, max_pixels=max_pixels)
    except ImageDecodeError:
        raise
    except Exception as error:  # pydicom raises many types for damaged files
        raise ImageDecodeError(f"The DICOM file is damaged: {error}") from error
    if "PixelData" not in dataset or not getattr(dataset, "file_meta", None):
        raise ImageDecodeError("The DICOM file is damaged: it has no image or no file meta information.")
    buffer = io.BytesIO()
    try:
        _apply_basic_profile(dataset)
        _replace_instance_uids(dataset, uid_key=uid_key)
        _mark_deidentified(dataset, pseudonym=pseudonym)
        dataset.save_as(buffer, enforce_file_format=True)
    except Exception as error:  # values pydicom read lazily but cannot convert, change or write back
        raise ImageDecodeError(f"The DICOM file is damaged: {error}") from error
    return buffer.getvalue()


def _apply_basic_profile(dataset) -> None:
    """The profile's actions on this data set, then on every item of the sequences it keeps.

    dicom-anonymizer applies single-attribute actions only at the level it is given, so each nested item
    gets the whole profile too. Its own UID replacement (random, remembered for the life of the process)
    is left out: instance UIDs are replaced by a keyed hash afterwards.
    """
    from dicomanonymizer.simpledicomanonymizer import anonymize_dataset, initialize_actions, keep

    actions = initialize_actions(PROFILE_TABLE)
    table = _profile_table()
    for tag in (*table.U_TAGS, *table.X_Z_U_STAR_TAGS):
        actions[tag] = keep

    def walk(level) -> None:
        anonymize_dataset(level, base_rules_gen=lambda: dict(actions), delete_private_tags=True)
        for element in list(level):
            if element.VR == "SQ":
                for item in element.value:
                    walk(item)

    walk(dataset)


def _profile_table():
    import importlib

    return importlib.import_module(f"dicomanonymizer.dicom_anonymization_databases.{PROFILE_TABLE}")


def _replace_instance_uids(dataset, *, uid_key: bytes) -> None:
    """Every UID that is not a registered one (SOP classes, transfer syntaxes, coding schemes stay)."""
    from pydicom.multival import MultiValue
    from pydicom.uid import UID_dictionary

    def replaced(uid) -> str:
        text = str(uid).strip("\x00 ")
        return text if not text or text in UID_dictionary else keyed_uid(text, key=uid_key)

    def replace(level, element) -> None:
        if element.VR != "UI" or element.value is None:
            return
        if isinstance(element.value, MultiValue | list):
            element.value = [replaced(value) for value in element.value]
        else:
            element.value = replaced(element.value)

    dataset.walk(replace)
    if "SOPInstanceUID" in dataset:
        dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID


def keyed_uid(uid: str, *, key: bytes) -> str:
    """A UID under the 2.25 root (PS3.5 B.2) from a keyed hash: the same for the same UID and key, never reversible."""
    digest = hmac.new(key, uid.encode("ascii", "replace"), hashlib.sha256).digest()
    return f"2.25.{int.from_bytes(digest[:16], 'big')}"


def _mark_deidentified(dataset, *, pseudonym: str) -> None:
    from pydicom.dataset import Dataset
    from pydicom.sequence import Sequence

    dataset.PatientID = pseudonym
    dataset.PatientName = pseudonym
    dataset.PatientIdentityRemoved = "YES"
    dataset.DeidentificationMethod = DEIDENTIFICATION_METHOD
    method = Dataset()
    method.CodeValue = "113100"
    method.CodingSchemeDesignator = "DCM"
    method.CodeMeaning = "Basic Application Confidentiality Profile"
    dataset.DeidentificationMethodCodeSequence = Sequence([method])


def raster_without_metadata(source, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> bytes:
    """A PNG or JPEG written again from its decoded pixels (turned upright first, since EXIF goes).

    A new image built from the pixels alone carries no EXIF, XMP, ICC profile, comment or text chunk. PNG stays
    lossless; JPEG is encoded again at quality 95 with full colour resolution.
    """
    data = read_bytes(source)
    kind = sniff_format(data[:132])
    if kind not in ("PNG", JPEG):
        raise ImageDecodeError("Not a PNG or JPEG file.")
    with raster_errors(kind):
        image = open_raster(data, kind, max_pixels=max_pixels)
        image.load()
        image = ImageOps.exif_transpose(image)
        if image.mode == "P":
            image = image.convert("RGBA" if "transparency" in image.info else "RGB")
        if kind == JPEG and image.mode not in ("L", "RGB", "CMYK"):
            image = image.convert("RGB")
        pixels_only = Image.frombytes(image.mode, image.size, image.tobytes())
        buffer = io.BytesIO()
        if kind == JPEG:
            pixels_only.save(buffer, format=JPEG, quality=95, subsampling=0)
        else:
            pixels_only.save(buffer, format="PNG")
    return buffer.getvalue()
