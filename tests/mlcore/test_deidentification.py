"""De-identification for dataset exports: the DICOM Basic Profile at every level, rasters rewritten from pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from pydicom import dcmread
from pydicom.uid import ComputedRadiographyImageStorage

from mlcore.core.deidentification import deidentify_dicom, keyed_uid, raster_without_metadata
from mlcore.core.imaging import ImageDecodeError, decode_image
from tests.mlcore.bombs import deflated_dicom, dicom_header_dataset
from tests.mlcore.identifying import (
    IDENTIFIERS,
    PRIOR_IMAGE_UID,
    STUDY_UID,
    identifying_dicom,
    jpeg_with_exif,
    png_with_text_chunks,
)
from tests.mlcore.test_imaging_fuzz import FUZZ, mutated

KEY = b"export-key"


def pixels(seed: int = 0, shape=(48, 64)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4096, shape).astype(np.uint16)


def leftovers(data: bytes) -> list[str]:
    """Identifying text still in the bytes, in any letter case."""
    return [text for text in IDENTIFIERS if text.lower().encode() in data.lower()]


def test_no_identifying_text_is_left_anywhere_in_a_dicom_nested_sequences_and_private_tags_included():
    original = identifying_dicom(pixels(), sop_instance_uid="1.2.826.0.1.3680043.8.498.20001")
    assert len(leftovers(original)) == len(IDENTIFIERS)

    cleaned = deidentify_dicom(original, pseudonym="p-123", uid_key=KEY)

    assert leftovers(cleaned) == []
    ds = dcmread(io.BytesIO(cleaned))
    assert (str(ds.PatientName), ds.PatientID, ds.PatientIdentityRemoved) == ("p-123", "p-123", "YES")
    assert ds.DeidentificationMethodCodeSequence[0].CodeValue == "113100"
    for keyword in ("PatientSex", "PatientBirthDate", "AccessionNumber", "StudyDate"):
        assert ds[keyword].value in ("", None, "00010101"), keyword  # emptied or a dummy, as the IOD requires
    for keyword in ("PatientAge", "PatientWeight", "StudyDescription", "PatientComments", "AdditionalPatientHistory"):
        assert keyword not in ds
    for keyword in ("AdmissionID", "RequestAttributesSequence"):
        assert keyword not in ds
    assert ds.AnatomicRegionSequence[0].AnatomicRegionModifierSequence[0].AccessionNumber == ""
    assert not any(element.tag.is_private for element in ds.iterall())
    # What the model and the dataset reader need stays.
    assert (ds.ViewPosition, ds.BodyPartExamined, ds.Modality) == ("PA", "CHEST", "CR")
    assert ds.AnatomicRegionSequence[0].CodeValue == "T-D3000"
    assert ds.SOPClassUID == ds.ReferencedImageSequence[0].ReferencedSOPClassUID == ComputedRadiographyImageStorage
    assert np.array_equal(decode_image(cleaned), decode_image(original))


def test_uids_are_replaced_by_a_keyed_hash_consistent_across_files_and_nested_references():
    first = dcmread(
        io.BytesIO(
            deidentify_dicom(identifying_dicom(pixels(1), sop_instance_uid="1.2.3.1"), pseudonym="p", uid_key=KEY)
        )
    )
    second = dcmread(
        io.BytesIO(
            deidentify_dicom(identifying_dicom(pixels(2), sop_instance_uid="1.2.3.2"), pseudonym="p", uid_key=KEY)
        )
    )
    other_key = dcmread(
        io.BytesIO(
            deidentify_dicom(
                identifying_dicom(pixels(1), sop_instance_uid="1.2.3.1"), pseudonym="p", uid_key=b"another"
            )
        )
    )

    assert first.StudyInstanceUID == second.StudyInstanceUID == keyed_uid(STUDY_UID, key=KEY)
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.file_meta.MediaStorageSOPInstanceUID == first.SOPInstanceUID == keyed_uid("1.2.3.1", key=KEY)
    assert (
        first.ReferencedImageSequence[0].ReferencedSOPInstanceUID
        == first.SourceImageSequence[0].ReferencedSOPInstanceUID
        == keyed_uid(PRIOR_IMAGE_UID, key=KEY)
    )
    assert other_key.StudyInstanceUID != first.StudyInstanceUID
    assert first.StudyInstanceUID.startswith("2.25.")
    assert len(first.StudyInstanceUID) <= 64


def test_a_deflated_dicom_is_de_identified_too():
    header = dicom_header_dataset(rows=48, columns=64, PatientComments="lives alone at 12 Acacia Avenue")
    original = deflated_dicom(header, pixels().astype("<u2").tobytes())

    cleaned = deidentify_dicom(original, pseudonym="p", uid_key=KEY)

    assert b"Acacia" not in cleaned
    assert np.array_equal(decode_image(cleaned), decode_image(original))


def test_a_damaged_dicom_is_refused():
    with pytest.raises(ImageDecodeError, match="damaged"):
        deidentify_dicom(b"\x00" * 128 + b"DICM" + b"\xff" * 40, pseudonym="p", uid_key=KEY)


def test_a_png_is_written_again_from_its_pixels_without_text_chunks_or_exif():
    gray = (pixels() // 16).astype(np.uint8)
    original = png_with_text_chunks(gray)
    assert len(leftovers(original)) >= 3  # and one more in a compressed chunk

    cleaned = raster_without_metadata(original)

    assert leftovers(cleaned) == []
    for chunk in (b"tEXt", b"zTXt", b"iTXt", b"eXIf"):
        assert chunk in original
        assert chunk not in cleaned
    image = Image.open(io.BytesIO(cleaned))
    assert image.format == "PNG"
    assert image.info == {} or set(image.info) <= {"dpi"}
    assert not image.getexif()
    assert np.array_equal(np.asarray(image), gray)


def test_a_jpeg_is_written_again_from_its_pixels_without_exif_xmp_or_comment_and_upright():
    gray = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (48, 1))
    original = jpeg_with_exif(gray, orientation=6)  # stored sideways, shown upright by its EXIF
    assert len(leftovers(original)) >= 4

    cleaned = raster_without_metadata(original)

    assert leftovers(cleaned) == []
    image = Image.open(io.BytesIO(cleaned))
    assert image.format == "JPEG"
    assert not image.getexif()
    assert "xmp" not in image.info
    assert "comment" not in image.info
    assert image.size == (48, 64)  # turned upright before the EXIF went
    assert np.abs(decode_image(cleaned) - decode_image(original)).max() < 0.03


@FUZZ
@given(data=st.data())
def test_a_mutated_dicom_is_de_identified_or_refused_with_a_clear_error(data):
    damaged = data.draw(mutated(identifying_dicom(pixels(shape=(16, 16)), sop_instance_uid="1.2.3.4")))
    cleaned, refusal = None, ""
    try:
        cleaned = deidentify_dicom(damaged, pseudonym="p", uid_key=KEY)
    except ImageDecodeError as error:
        refusal = str(error)
    if cleaned is None:
        assert refusal.startswith("The DICOM file is damaged")
    else:
        assert dcmread(io.BytesIO(cleaned)).PatientIdentityRemoved == "YES"
