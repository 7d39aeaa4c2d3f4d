"""Images that name their patient everywhere a real one can: DICOM headers and nested sequences, private
tags, PNG text chunks, EXIF, XMP and JPEG comments. Every identifying value is text the tests can look for.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.uid import ComputedRadiographyImageStorage

from tests.mlcore.test_imaging import dicom_bytes

STUDY_UID = "1.2.826.0.1.3680043.8.498.10001"
SERIES_UID = "1.2.826.0.1.3680043.8.498.10002"
PRIOR_IMAGE_UID = "1.2.826.0.1.3680043.8.498.10003"
FRAME_OF_REFERENCE_UID = "1.2.826.0.1.3680043.8.498.10004"
# Text that must not leave in any exported byte.
IDENTIFIERS = (
    "Hopper-Murray",
    "MRN-0002",
    "19061209",
    "083Y",
    "71.5",
    "fall at home",
    "Acacia Avenue",
    "husband Harold",
    "ADM-55501",
    "20260314",
    "20260102",
    "ACC-77",
    "ACC-NESTED-88",
    "ACC-DEEP-99",
    "RP-991",
    "St Mary's",
    "Lovelace",
    "private hospital note",
    "nested private note",
    STUDY_UID,
    SERIES_UID,
    PRIOR_IMAGE_UID,
    FRAME_OF_REFERENCE_UID,
)


def _item(**attributes) -> Dataset:
    item = Dataset()
    for name, value in attributes.items():
        setattr(item, name, value)
    return item


def identifying_dicom(pixels: np.ndarray, *, sop_instance_uid: str) -> bytes:
    """A CR image of the same study each time (only `sop_instance_uid` differs), naming its patient everywhere."""
    ds = dcmread(io.BytesIO(dicom_bytes(pixels)))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = ComputedRadiographyImageStorage
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop_instance_uid
    ds.StudyInstanceUID, ds.SeriesInstanceUID = STUDY_UID, SERIES_UID
    ds.FrameOfReferenceUID = FRAME_OF_REFERENCE_UID
    ds.PatientName = "Hopper-Murray^Grace"
    ds.PatientID = "MRN-0002"
    ds.PatientBirthDate = "19061209"
    ds.PatientSex = "F"
    ds.PatientAge = "083Y"
    ds.PatientWeight = "71.5"
    ds.StudyDescription = "CHEST PA after a fall at home"
    ds.PatientComments = "lives alone at 12 Acacia Avenue"
    ds.AdditionalPatientHistory = "smoker; husband Harold"
    ds.AdmissionID = "ADM-55501"
    ds.InstanceCreationDate = "20260314"
    ds.StudyDate = "20260102"
    ds.AccessionNumber = "ACC-77"
    ds.InstitutionName = "St Mary's Hospital"
    ds.ReferringPhysicianName = "Lovelace^Ada"
    ds.ViewPosition = "PA"
    ds.BodyPartExamined = "CHEST"
    ds.RequestAttributesSequence = Sequence(
        [_item(AccessionNumber="ACC-NESTED-88", RequestedProcedureID="RP-991", StudyInstanceUID=STUDY_UID)]
    )
    prior = _item(ReferencedSOPClassUID=ComputedRadiographyImageStorage, ReferencedSOPInstanceUID=PRIOR_IMAGE_UID)
    prior.private_block(0x0011, "HOSPITAL NOTES", create=True).add_new(0x01, "LO", "nested private note")
    ds.ReferencedImageSequence = Sequence([prior])
    ds.SourceImageSequence = Sequence(
        [_item(ReferencedSOPClassUID=ComputedRadiographyImageStorage, ReferencedSOPInstanceUID=PRIOR_IMAGE_UID)]
    )
    # A sequence the profile keeps: what is inside it is de-identified item by item.
    region = _item(CodeValue="T-D3000", CodingSchemeDesignator="SRT", CodeMeaning="Chest")
    region.AnatomicRegionModifierSequence = Sequence([_item(AccessionNumber="ACC-DEEP-99", CodeValue="G-A101")])
    ds.AnatomicRegionSequence = Sequence([region])
    ds.private_block(0x0009, "HOSPITAL NOTES", create=True).add_new(0x01, "LO", "private hospital note")
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def png_with_text_chunks(pixels: np.ndarray) -> bytes:
    info = PngInfo()
    info.add_text("Author", "Grace Hopper-Murray")
    info.add_text("Comment", "MRN-0002, St Mary's", zip=True)
    info.add_itxt("XML:com.adobe.xmp", "<x:xmpmeta><rdf:li>ACC-77</rdf:li></x:xmpmeta>")
    exif = Image.Exif()
    exif[0x013B] = "Lovelace"  # Artist
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", pnginfo=info, exif=exif)
    return buffer.getvalue()


def jpeg_with_exif(pixels: np.ndarray, *, orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010E] = "Grace Hopper-Murray MRN-0002"  # ImageDescription
    exif[0x013B] = "Lovelace"  # Artist
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert("RGB").save(
        buffer,
        format="JPEG",
        quality=95,
        exif=exif,
        comment=b"ACC-77 St Mary's",
        xmp=b"<x:xmpmeta><rdf:li>19061209</rdf:li></x:xmpmeta>",
    )
    return buffer.getvalue()
