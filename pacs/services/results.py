"""Send a scan's reading back into its own study in the PACS: a TID 1500 SR and the heatmap as a Secondary Capture.

Only scans whose original is DICOM are sent: a PNG or JPEG upload belongs to no study, and a study made
up for it would appear in the PACS unordered and unmatched, so its reading stays in CovidXray alone.
"""

from __future__ import annotations

import io
import logging

import highdicom as hd
import numpy as np
import pydicom
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid
from pynetdicom import AE
from pynetdicom.sop_class import ComprehensiveSRStorage, SecondaryCaptureImageStorage

from diagnosis.models import Scan
from diagnosis.selectors import scan_classes
from mlcore.core.classes import display_name, ordered_probabilities
from mlcore.core.predictor import composed_overlay
from pacs.models import ResultSend

logger = logging.getLogger(__name__)

MANUFACTURER = "CovidXray"
ALGORITHM_NAME = "CovidXray InceptionV3 chest X-ray triage"
SR_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902
NOT_FOR_DIAGNOSIS = "NOT FOR DIAGNOSIS"
# A local coding scheme ("99" prefix, PS3.16 8.2) for what standard codes do not name: the model's classes.
LOCAL_SCHEME = "99COVIDXRAY"
CHEST_XRAY = Code("399208008", "SCT", "Plain X-ray of chest")
RESULT_CODES = {
    Scan.Result.POSITIVE: Code("10828004", "SCT", "Positive"),
    Scan.Result.NEGATIVE: Code("260385009", "SCT", "Negative"),
    Scan.Result.INDETERMINATE: Code("82334004", "SCT", "Indeterminate"),
}
NOT_ASSESSABLE = Code("111235", "DCM", "Unusable - Quality renders image unusable")
PREDICTED_CLASS = Code("predicted-class", LOCAL_SCHEME, "Predicted class")
THRESHOLD = Code("threshold", LOCAL_SCHEME, "Decision threshold of the positive class")
READABLE = (Scan.Status.DONE, Scan.Status.NOT_ASSESSABLE)


class ResultSendError(Exception):
    """The destination could not be reached or refused an object; the send is retried."""


def result_send_queue(*, scan_id: int) -> ResultSend | None:
    """Record a send for a scan with its final reading, and queue it once committed; None when nothing is sent."""
    if not settings.PACS_DESTINATION_HOST:
        return None
    scan = Scan.objects.filter(pk=scan_id, status__in=READABLE).first()
    if scan is None or scan.file_type != Scan.FileType.DICOM:
        return None
    with scan.image.open("rb") as handle:
        source = pydicom.dcmread(handle, stop_before_pixels=True)
    send, created = ResultSend.objects.get_or_create(
        scan=scan,
        defaults={
            "destination": _destination(),
            "study_instance_uid": str(source.StudyInstanceUID),
            "sr_series_instance_uid": generate_uid(),
            "sr_sop_instance_uid": generate_uid(),
            "sc_series_instance_uid": generate_uid(),
            "sc_sop_instance_uid": generate_uid() if scan.heatmap else "",
        },
    )
    if created:
        transaction.on_commit(lambda: _queue(send.pk))
    return send


def result_send_resend(*, send: ResultSend) -> ResultSend:
    """Staff asked to send again (after the PACS came back, say): same objects, same UIDs, a fresh round of retries."""
    send.state = ResultSend.State.QUEUED
    send.full_clean()
    send.save(update_fields=["state"])
    transaction.on_commit(lambda: _queue(send.pk))
    return send


def _queue(send_id: int) -> None:
    from pacs.tasks import send_results_to_pacs

    send_results_to_pacs.delay(send_id)


def result_send_deliver(*, send: ResultSend, final_attempt: bool) -> ResultSend:
    """Build the objects and C-STORE them; record the attempt. Raises ResultSendError when it should be retried."""
    send.attempts += 1
    send.last_attempt_at = timezone.now()
    send.destination = _destination()
    try:
        try:
            objects = results_build(scan=send.scan, send=send)
        except Exception as error:  # highdicom and pydicom raise many types for objects they cannot build
            raise ResultSendError(f"Could not build the SR or heatmap: {error}") from error
        _c_store(objects)
    except ResultSendError as error:
        send.last_error = str(error)
        send.state = ResultSend.State.FAILED if final_attempt else ResultSend.State.RETRYING
        send.save()
        logger.warning("Sending the results of scan %s to %s failed: %s", send.scan_id, send.destination, error)
        if final_attempt:
            return send
        raise
    send.state = ResultSend.State.SENT
    send.sent_at = timezone.now()
    send.last_error = ""
    send.save()
    logger.info("Sent the results of scan %s to %s.", send.scan_id, send.destination)
    return send


def _destination() -> str:
    return f"{settings.PACS_DESTINATION_AE_TITLE}@{settings.PACS_DESTINATION_HOST}:{settings.PACS_DESTINATION_PORT}"


def _c_store(objects: list[Dataset]) -> None:
    ae = AE(ae_title=settings.PACS_AE_TITLE)
    for sop_class in {ComprehensiveSRStorage, SecondaryCaptureImageStorage}:
        ae.add_requested_context(sop_class)
    association = ae.associate(
        settings.PACS_DESTINATION_HOST, settings.PACS_DESTINATION_PORT, ae_title=settings.PACS_DESTINATION_AE_TITLE
    )
    if not association.is_established:
        raise ResultSendError(f"No association with {_destination()} (unreachable, or it refused CovidXray).")
    try:
        for dataset in objects:
            status = association.send_c_store(dataset)
            code = getattr(status, "Status", None)
            if code is None:
                raise ResultSendError(f"No answer from {_destination()} to {dataset.SOPClassUID.name}.")
            if code != 0x0000 and not 0xB000 <= code <= 0xBFFF:
                comment = status.get("ErrorComment", "")
                raise ResultSendError(f"{_destination()} refused {dataset.SOPClassUID.name}: 0x{code:04X} {comment}")
    finally:
        if association.is_established:
            association.release()


def results_build(*, scan: Scan, send: ResultSend) -> list[Dataset]:
    """The SR, and the heatmap Secondary Capture when the scan has one, in the study of the scan's own DICOM."""
    with scan.image.open("rb") as handle:
        source = pydicom.dcmread(handle)
    objects = [_structured_report(scan, send, source)]
    if scan.heatmap and send.sc_sop_instance_uid:
        objects.append(_heatmap_capture(scan, send, source))
    return objects


def _algorithm(scan: Scan) -> hd.sr.AlgorithmIdentification:
    version = scan.model_version.name if scan.model_version else "unknown"
    return hd.sr.AlgorithmIdentification(name=ALGORITHM_NAME, version=version, manufacturer=MANUFACTURER)


def _structured_report(scan: Scan, send: ResultSend, source: Dataset) -> hd.sr.ComprehensiveSR:
    """TID 1500 with one TID 1501 group: the finding, every class's probability and the threshold, by the algorithm
    that made them (TID 4019), as the IHE AI Results profile asks."""
    if scan.status == Scan.Status.NOT_ASSESSABLE:
        finding, evaluations, measurements = NOT_ASSESSABLE, [], []
    else:
        finding = RESULT_CODES[scan.result]
        evaluations = (
            [hd.sr.QualitativeEvaluation(name=PREDICTED_CLASS, value=_class_code(scan.label))] if scan.label else []
        )
        probabilities = scan.probabilities or {scan_classes(scan).positive: scan.probability}
        measurements = [
            hd.sr.Measurement(
                name=Code(f"p-{name}", LOCAL_SCHEME, f"Probability of {display_name(name)}"),
                value=float(probability),
                unit=codes.UCUM.NoUnits,
            )
            for name, probability in ordered_probabilities(probabilities, classes=scan_classes(scan))
        ]
        if scan.threshold is not None:
            threshold = hd.sr.Measurement(name=THRESHOLD, value=float(scan.threshold), unit=codes.UCUM.NoUnits)
            measurements.append(threshold)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(
            uid=generate_uid(entropy_srcs=[send.sr_sop_instance_uid, "tracking"]),
            identifier=f"CovidXray scan {scan.pk}",
        ),
        finding_type=finding,
        algorithm_id=_algorithm(scan),
        qualitative_evaluations=evaluations or None,
        measurements=measurements or None,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)],
    )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(entropy_srcs=[MANUFACTURER, settings.PACS_AE_TITLE]),
            name=settings.PACS_AE_TITLE,
            manufacturer_name=MANUFACTURER,
            model_name=scan.model_version.name if scan.model_version else "unknown",
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CHEST_XRAY,
        imaging_measurements=[group],
    )
    return hd.sr.ComprehensiveSR(
        evidence=[source],
        content=report[0],
        series_instance_uid=send.sr_series_instance_uid,
        series_number=SR_SERIES_NUMBER,
        sop_instance_uid=send.sr_sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        is_complete=True,
        series_description="CovidXray AI result (decision support)",
    )


def _class_code(class_name: str) -> Code:
    """A class of the model in the local scheme; DICOM limits a code meaning to 64 characters."""
    return Code(class_name, LOCAL_SCHEME, display_name(class_name)[:64])


def _heatmap_capture(scan: Scan, send: ResultSend, source: Dataset) -> hd.sc.SCImage:
    """The Grad-CAM overlay, derived from the radiograph and labelled not for diagnosis wherever a viewer looks."""
    with scan.preview.open("rb") as handle:
        gray = np.asarray(Image.open(io.BytesIO(handle.read())).convert("L"), dtype=np.float32) / 255.0
    with scan.heatmap.open("rb") as handle:
        pixels = np.asarray(composed_overlay(gray, handle.read()))
    orientation = tuple(source.get("PatientOrientation", [])) or ("L", "F")
    capture = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=source,
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        series_instance_uid=send.sc_series_instance_uid,
        series_number=SC_SERIES_NUMBER,
        sop_instance_uid=send.sc_sop_instance_uid,
        instance_number=1,
        manufacturer=MANUFACTURER,
        patient_orientation=orientation[:2],
    )
    version = scan.model_version.name if scan.model_version else "unknown"
    capture.ImageType = ["DERIVED", "SECONDARY"]
    capture.SeriesDescription = f"CovidXray heatmap - {NOT_FOR_DIAGNOSIS}"
    capture.ImageComments = f"Grad-CAM heatmap, CovidXray model {version}. {NOT_FOR_DIAGNOSIS}: decision support."
    capture.DerivationDescription = f"Grad-CAM overlay computed by CovidXray model {version}; {NOT_FOR_DIAGNOSIS}."
    capture.BurnedInAnnotation = "NO"
    if "Laterality" not in capture:
        capture.Laterality = ""  # Type 2C: the chest is not a paired structure, so it is present and empty
    reference = Dataset()
    reference.ReferencedSOPClassUID = source.SOPClassUID
    reference.ReferencedSOPInstanceUID = source.SOPInstanceUID
    capture.SourceImageSequence = [reference]
    return capture
