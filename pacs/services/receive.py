"""Store DICOM instances that arrive from a modality or the PACS as scans, through the upload service.

Only chest radiographs (CR and DX) are read: anything else, a malformed object or one over the upload
limits is refused with a DICOM status and its reason, and leaves nothing behind.
"""

from __future__ import annotations

import datetime
import io
import logging
import warnings
from dataclasses import dataclass

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.db import IntegrityError, transaction
from pydicom.uid import UID

from diagnosis.models import Patient, Scan
from diagnosis.services.patients import patient_create
from diagnosis.services.scans import scan_create
from mlcore.core.imaging import ImageDecodeError, read_dicom_header
from pacs.models import ReceivedInstance

logger = logging.getLogger(__name__)

# C-STORE statuses (PS3.4 B.2.3, PS3.7 C.4).
STATUS_SUCCESS = 0x0000
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122
STATUS_OUT_OF_RESOURCES = 0xA700
STATUS_DATASET_DOES_NOT_MATCH = 0xA900
STATUS_CANNOT_UNDERSTAND = 0xC000

CHEST_RADIOGRAPH_SOP_CLASSES = {
    UID("1.2.840.10008.5.1.4.1.1.1"),  # Computed Radiography Image Storage
    UID("1.2.840.10008.5.1.4.1.1.1.1"),  # Digital X-Ray Image Storage - For Presentation
    UID("1.2.840.10008.5.1.4.1.1.1.1.1"),  # Digital X-Ray Image Storage - For Processing
}
CHEST_RADIOGRAPH_MODALITIES = {"CR", "DX"}
SYSTEM_USER_EMAIL = "pacs-listener@system.invalid"
SEXES = {"F": Patient.Sex.FEMALE, "M": Patient.Sex.MALE, "O": Patient.Sex.OTHER}


class InstanceRefused(Exception):
    """The instance is not stored; ``status`` is the C-STORE status to answer and ``reason`` says why."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True)
class Received:
    scan: Scan
    created: bool


def pacs_system_user():
    """The account that PACS-received patients and scans are recorded under; it can never sign in."""
    user, created = get_user_model().objects.get_or_create(
        email=SYSTEM_USER_EMAIL,
        defaults={"full_name": "PACS (DICOM listener)", "is_active": False},
    )
    if created:
        user.set_unusable_password()
        user.save(update_fields=["password"])
    return user


def instance_receive(*, data: bytes, calling_ae_title: str) -> Received:
    """Store one received DICOM file (preamble, meta and data set) as a queued scan of the patient it names."""
    header = _chest_radiograph_header(data)
    sop_instance_uid = str(header.SOPInstanceUID)
    already = ReceivedInstance.objects.filter(sop_instance_uid=sop_instance_uid).select_related("scan").first()
    if already:
        return Received(scan=already.scan, created=False)
    stored_files = []
    try:
        with transaction.atomic():
            patient = _patient_for(header, data=data)
            scan = scan_create(
                patient=patient,
                image=ContentFile(data, name=f"{sop_instance_uid}.dcm"),
                uploaded_by=pacs_system_user(),
            )
            stored_files.append((scan.image.storage, scan.image.name))
            received = ReceivedInstance(
                sop_instance_uid=sop_instance_uid,
                study_instance_uid=str(header.get("StudyInstanceUID", "")),
                calling_ae_title=calling_ae_title,
                scan=scan,
            )
            received.full_clean()
            received.save()
            _share_with_pacs_readers(patient)
    except ValidationError as error:
        _delete(stored_files)
        raise _refusal(error) from error
    except IntegrityError:
        _delete(stored_files)
        duplicate = ReceivedInstance.objects.filter(sop_instance_uid=sop_instance_uid).select_related("scan").first()
        if duplicate is None:
            raise
        return Received(scan=duplicate.scan, created=False)
    except BaseException:
        _delete(stored_files)
        raise
    return Received(scan=scan, created=True)


def _chest_radiograph_header(data: bytes):
    """The header, once it is known to be a CR or DX image: a CT or an SR must never be read as a chest X-ray."""
    import pydicom

    if len(data) > settings.SCAN_MAX_UPLOAD_BYTES:
        limit_mb = settings.SCAN_MAX_UPLOAD_BYTES // (1024 * 1024)
        raise InstanceRefused(STATUS_OUT_OF_RESOURCES, f"{len(data):,} bytes, over the {limit_mb} MB limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            header = pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True)
        sop_class = UID(str(header.SOPClassUID))
        sop_instance_uid = str(header.SOPInstanceUID)
    except Exception as error:  # pydicom raises many types for damaged data sets
        raise InstanceRefused(STATUS_CANNOT_UNDERSTAND, f"malformed DICOM: {error}") from error
    if sop_class not in CHEST_RADIOGRAPH_SOP_CLASSES:
        raise InstanceRefused(
            STATUS_SOP_CLASS_NOT_SUPPORTED,
            f"{sop_class.name} is not a chest radiograph; only CR and DX images are read",
        )
    modality = str(header.get("Modality", "")).upper()
    if modality not in CHEST_RADIOGRAPH_MODALITIES:
        raise InstanceRefused(
            STATUS_DATASET_DOES_NOT_MATCH, f"modality {modality or 'missing'}; only CR and DX images are read"
        )
    if not sop_instance_uid or not str(header.get("PatientID", "")).strip():
        raise InstanceRefused(STATUS_DATASET_DOES_NOT_MATCH, "no PatientID or SOPInstanceUID")
    return header


def _patient_for(header, *, data: bytes) -> Patient:
    """The patient whose record number is the PatientID; a new one is made from the header.

    A record a doctor created is shared with the listener's account, so that the PACS files images into it
    under the same rule as any upload (the doctors caring for a patient add its scans).
    """
    mrn = str(header.PatientID).strip()
    patient = Patient.objects.filter(mrn=mrn).first()
    if patient:
        patient.shared_with.add(pacs_system_user())
        return patient
    try:
        name = read_dicom_header(data).patient_name
    except ImageDecodeError:
        name = ""
    return patient_create(
        created_by=pacs_system_user(),
        mrn=mrn,
        full_name=name or f"Unnamed patient {mrn}",
        date_of_birth=_dicom_date(str(header.get("PatientBirthDate", ""))),
        sex=SEXES.get(str(header.get("PatientSex", "")).strip().upper(), Patient.Sex.UNKNOWN),
        notes="Created from the DICOM header of an image received from the PACS.",
    )


def _dicom_date(text: str) -> datetime.date | None:
    try:
        return datetime.datetime.strptime(text.strip(), "%Y%m%d").date()
    except ValueError:
        return None


def _share_with_pacs_readers(patient: Patient) -> None:
    """The staff-configured rule: every approved doctor in the PACS group sees patients the PACS sends."""
    group = Group.objects.filter(name=settings.PACS_SHARE_GROUP).first()
    if group is None:
        logger.warning(
            "No group named %r: patients received from the PACS are seen by staff only.", settings.PACS_SHARE_GROUP
        )
        return
    readers = group.user_set.filter(is_active=True, is_staff=False).exclude(pk=patient.created_by_id)
    patient.shared_with.add(*readers)


def _refusal(error: ValidationError) -> InstanceRefused:
    codes = {getattr(e, "code", None) for e in error.error_list} if hasattr(error, "error_list") else set()
    status = STATUS_OUT_OF_RESOURCES if "too_large" in codes else STATUS_CANNOT_UNDERSTAND
    return InstanceRefused(status, " ".join(error.messages))


def _delete(stored_files) -> None:
    for storage, name in stored_files:
        storage.delete(name)
