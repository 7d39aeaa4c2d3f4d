"""DICOM files written with pydicom for the PACS tests: a DX chest radiograph, a CT slice, damaged data."""

from __future__ import annotations

import datetime
import io

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from tests.mlcore.synthetic import synthetic_image

DX_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"
CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"


def radiograph_dicom(
    *,
    patient_id: str = "PACS-0001",
    patient_name: str = "Curie^Marie",
    modality: str = "DX",
    sop_class_uid: str = DX_FOR_PRESENTATION,
    study_instance_uid: str | None = None,
    size: int = 96,
    seed: int = 0,
) -> bytes:
    """A decodable 12-bit MONOCHROME2 image with a full patient and study header, as a modality sends it."""
    pixels = (synthetic_image("COVID", np.random.default_rng(seed), size=size) * 4095).astype(np.uint16)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class_uid
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class_uid
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = study_instance_uid or generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.Modality = modality
    ds.PatientID = patient_id
    ds.PatientName = patient_name
    ds.PatientBirthDate = "19671107"
    ds.PatientSex = "F"
    ds.StudyDate = datetime.date.today().strftime("%Y%m%d")
    ds.StudyTime = "101500"
    ds.StudyID = "1"
    ds.AccessionNumber = "ACC0001"
    ds.ReferringPhysicianName = ""
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.Manufacturer = "Test Modality"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = "PA"
    ds.PatientOrientation = ["L", "F"]
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def ct_dicom(**fields) -> bytes:
    return radiograph_dicom(modality="CT", sop_class_uid=CT_IMAGE, **fields)
