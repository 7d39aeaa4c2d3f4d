"""A scan's reading as FHIR resources, built and validated with fhir.resources.

FHIR R4B (4.3.0), the models fhir.resources ships for the R4 line: R4B changed no element of
DiagnosticReport, Observation, Device or Attachment from R4 (4.0.1), so R4 clients read these as R4.

One DiagnosticReport per scan. Its Observations (the finding, the class called, the calibrated
probability of each class of the version, the decision threshold) and the Device that names the model
version are contained in it: they have no life outside the report. R4's DiagnosticReport has no
`device` element, so each Observation names the Device, as the IHE AI Results profile does. The
subject is the patient by medical record number.
"""

import base64
import datetime
import re

from django.conf import settings
from django.utils import timezone
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.operationoutcome import OperationOutcome

from diagnosis.models import Review, Scan
from diagnosis.selectors import scan_classes
from mlcore.core.classes import class_result, display_name, ordered_probabilities, short_name

CODES = "urn:covidxray:fhir:codes"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
DIAGNOSTIC_SERVICE = "http://terminology.hl7.org/CodeSystem/v2-0074"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
DATA_ABSENT = "http://terminology.hl7.org/CodeSystem/data-absent-reason"

# What each result is: its SNOMED CT qualifier value and its HL7 interpretation.
RESULT_CODES = {
    Scan.Result.POSITIVE: ({"code": "10828004", "display": "Positive"}, {"code": "POS", "display": "Positive"}),
    Scan.Result.NEGATIVE: ({"code": "260385009", "display": "Negative"}, {"code": "NEG", "display": "Negative"}),
    Scan.Result.INDETERMINATE: (
        {"code": "82334004", "display": "Indeterminate"},
        {"code": "IND", "display": "Indeterminate"},
    ),
}
FINDING_CODE = {
    "coding": [{"system": CODES, "code": "covid19-pneumonia-reading", "display": "COVID-19 pneumonia: model reading"}],
    "text": "COVID-19 pneumonia on chest radiograph: model reading",
}
CALLED_CLASS_CODE = {
    "coding": [{"system": CODES, "code": "called-class", "display": "Class called by the model"}],
    "text": "Class called by the model",
}
DEVICE_ID = "model"
DECISION_SUPPORT = "Decision support, not a diagnosis: the doctor's own reading of the radiograph decides."


def scan_result(scan: Scan) -> str:
    """The reading's result; readings stored before results existed are positive or negative by label."""
    return scan.result or class_result(scan.label, classes=scan_classes(scan))


def _instant(moment: datetime.datetime) -> str:
    return timezone.localtime(moment).isoformat(timespec="seconds")


def _probability(value: float) -> dict:
    return {"value": round(value, 6), "unit": "probability", "system": UCUM, "code": "1"}


def _element_id(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]", "-", text)[:48]


def _device(scan: Scan) -> dict:
    version = scan.model_version
    return {
        "resourceType": "Device",
        "id": DEVICE_ID,
        "status": "active",
        "manufacturer": "CovidXray",
        "deviceName": [{"name": f"CovidXray chest X-ray model {version.name}", "type": "model-name"}],
        "type": {"text": "AI chest radiograph triage model (InceptionV3)"},
        "version": [{"value": version.name}],
    }


def _observation(scan: Scan, common: dict, element_id: str, code: dict, **value) -> dict:
    observation = {"resourceType": "Observation", "id": element_id, "status": "final", "code": code}
    if scan.model_version_id:
        observation["device"] = {"reference": f"#{DEVICE_ID}", "display": scan.model_version.name}
    return observation | common | value


def _observations(scan: Scan, common: dict) -> list[dict]:
    if scan.status == Scan.Status.NOT_ASSESSABLE:
        absent = {
            "coding": [{"system": DATA_ABSENT, "code": "not-performed", "display": "Not Performed"}],
            "text": f"Not assessable: {scan.status_message or 'the image is not a chest radiograph the model reads'}",
        }
        return [_observation(scan, common, "finding", FINDING_CODE, dataAbsentReason=absent)]
    result = scan_result(scan)
    snomed, interpretation = RESULT_CODES[result]
    finding = _observation(
        scan,
        common,
        "finding",
        FINDING_CODE,
        valueCodeableConcept={"coding": [{"system": SNOMED, **snomed}], "text": Scan.Result(result).label},
        interpretation=[{"coding": [{"system": INTERPRETATION, **interpretation}]}],
    )
    classes = scan_classes(scan)
    observations = [finding]
    if scan.label:
        called = {"coding": [{"system": CODES, "code": scan.label, "display": display_name(scan.label)}]}
        called["text"] = display_name(scan.label)
        observations.append(_observation(scan, common, "called-class", CALLED_CLASS_CODE, valueCodeableConcept=called))
    probabilities = scan.probabilities or (
        {classes.positive: scan.probability} if scan.probability is not None else {}
    )
    for class_name, value in ordered_probabilities(probabilities, classes=classes):
        name = display_name(class_name)
        coding = {"system": CODES, "code": f"probability-{class_name}", "display": f"Probability of {name}"}
        code = {"coding": [coding], "text": f"Calibrated probability of {name}"}
        element_id = f"probability-{_element_id(class_name)}"
        observations.append(_observation(scan, common, element_id, code, valueQuantity=_probability(value)))
    if scan.threshold is not None:
        code = {
            "coding": [{"system": CODES, "code": "decision-threshold", "display": "Decision threshold"}],
            "text": f"Threshold on the probability of {display_name(classes.positive)} at or above which the model "
            "calls it",
        }
        observations.append(_observation(scan, common, "threshold", code, valueQuantity=_probability(scan.threshold)))
    return observations


def _conclusion(scan: Scan) -> str:
    if scan.status == Scan.Status.NOT_ASSESSABLE:
        reason = scan.status_message or "the image is not a chest radiograph the model reads"
        text = f"Not assessable: {reason}. The model made no reading."
    else:
        classes = scan_classes(scan)
        positive = display_name(classes.positive)
        figures = f"P({short_name(classes.positive)}) = {scan.probability:.3f}, threshold {scan.threshold:.3f}"
        text = {
            Scan.Result.POSITIVE: f"Model reading: {positive} ({figures}).",
            Scan.Result.NEGATIVE: f"Model reading: no {positive} ({figures}).",
            Scan.Result.INDETERMINATE: (
                f"Indeterminate: the model cannot separate this case into {positive} or not ({figures})."
            ),
        }[scan_result(scan)]
        if scan_result(scan) == Scan.Result.NEGATIVE and len(classes.negatives) > 1:
            text += f" Called class: {display_name(scan.label)}."
    review = Review.objects.filter(scan=scan).select_related("reviewer").first()
    if review:
        agreement = "agrees" if review.agrees_with_model else "disagrees"
        text += (
            f" Reviewed by {review.reviewer.full_name} on {review.reviewed_at:%Y-%m-%d}: "
            f"{review.get_final_finding_display()} ({agreement} with the model)."
        )
    return f"{text} {DECISION_SUPPORT}"


def diagnostic_report_build(*, scan: Scan, pdf: bytes | None) -> DiagnosticReport:
    """The validated DiagnosticReport of a done or not-assessable scan; `pdf` is its printable report."""
    if scan.status not in (Scan.Status.DONE, Scan.Status.NOT_ASSESSABLE):
        raise ValueError(f"Scan {scan.pk} has no final reading: it is {scan.get_status_display().lower()}.")
    patient = scan.patient
    subject = {
        "type": "Patient",
        "identifier": {"system": settings.COVIDXRAY_FHIR_MRN_SYSTEM, "value": patient.mrn},
        "display": patient.full_name,
    }
    effective = scan.acquisition_date.isoformat() if scan.acquisition_date else _instant(scan.uploaded_at)
    issued = _instant(scan.finished_at or scan.uploaded_at)
    common = {"subject": subject, "effectiveDateTime": effective, "issued": issued}
    observations = _observations(scan, common)
    report = {
        "resourceType": "DiagnosticReport",
        "id": str(scan.pk),
        "identifier": [{"system": f"{CODES}:scan", "value": str(scan.pk)}],
        "status": "final",
        "category": [{"coding": [{"system": DIAGNOSTIC_SERVICE, "code": "RAD", "display": "Radiology"}]}],
        "code": {
            "coding": [{"system": LOINC, "code": "18748-4", "display": "Diagnostic imaging study"}],
            "text": "Chest X-ray: COVID-19 model reading",
        },
        "contained": ([_device(scan)] if scan.model_version_id else []) + observations,
        "result": [{"reference": f"#{observation['id']}"} for observation in observations],
        "conclusion": _conclusion(scan),
        **common,
    }
    if pdf is not None:
        report["presentedForm"] = [
            {
                "contentType": "application/pdf",
                "language": "en-GB",
                "data": base64.b64encode(pdf).decode("ascii"),
                "title": f"CovidXray report, scan {scan.pk}",
                "creation": _instant(timezone.now()),
            }
        ]
    return DiagnosticReport.model_validate(report)


def operation_outcome_build(*, code: str, diagnostics: str) -> OperationOutcome:
    """FHIR's answer to a request that failed: `code` from the IssueType value set (login, not-found, ...)."""
    issue = {"severity": "error", "code": code, "diagnostics": diagnostics}
    return OperationOutcome.model_validate({"resourceType": "OperationOutcome", "issue": [issue]})
