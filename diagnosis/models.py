"""Patients, their chest X-ray scans, and the results inference writes onto each scan."""

import uuid
from pathlib import PurePath

from django.conf import settings
from django.db import models

from diagnosis.storage import scan_store
from mlcore.core import classes


def random_scan_name(instance, filename: str) -> str:
    """A random name that reveals nothing about the patient; the original name is kept apart."""
    suffix = PurePath(filename).suffix.lower()[:10]
    return f"originals/{uuid.uuid4().hex}{suffix}"


def derived_image_name(instance, filename: str) -> str:
    return f"derived/{uuid.uuid4().hex}-{PurePath(filename).name}"


class Patient(models.Model):
    class Sex(models.TextChoices):
        FEMALE = "F", "Female"
        MALE = "M", "Male"
        OTHER = "O", "Other"
        UNKNOWN = "U", "Unknown"

    mrn = models.CharField("medical record number", max_length=64, unique=True)
    full_name = models.CharField(max_length=200)
    date_of_birth = models.DateField(null=True, blank=True)
    sex = models.CharField(max_length=1, choices=Sex.choices, default=Sex.UNKNOWN)
    contact = models.CharField(max_length=200, blank=True)
    notes = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="patients_created")
    shared_with = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="patients_shared")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["full_name"]

    def __str__(self) -> str:
        return f"{self.full_name} ({self.mrn})"


class Scan(models.Model):
    class FileType(models.TextChoices):
        PNG = "PNG", "PNG"
        JPEG = "JPEG", "JPEG"
        DICOM = "DICOM", "DICOM"

    class View(models.TextChoices):
        PA = "PA", "PA (posteroanterior)"
        AP = "AP", "AP (anteroposterior)"
        UNKNOWN = "", "Not recorded"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        PROCESSING = "processing", "Processing"
        DONE = "done", "Done"
        NOT_ASSESSABLE = "not_assessable", "Not assessable"
        FAILED = "failed", "Failed"

    class Result(models.TextChoices):
        """What a done reading says; the input gate's refusals are ``Status.NOT_ASSESSABLE`` instead."""

        POSITIVE = "positive", "Positive"
        NEGATIVE = "negative", "Negative"
        INDETERMINATE = "indeterminate", "Indeterminate"

    patient = models.ForeignKey(Patient, on_delete=models.CASCADE, related_name="scans")
    image = models.FileField(storage=scan_store, upload_to=random_scan_name, max_length=200)
    original_filename = models.CharField(max_length=255, blank=True)
    file_type = models.CharField(max_length=5, choices=FileType.choices)
    view = models.CharField(max_length=2, choices=View.choices, blank=True)
    acquisition_date = models.DateField(null=True, blank=True)
    uploaded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    uploaded_at = models.DateTimeField(auto_now_add=True)

    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING, db_index=True)
    status_message = models.CharField(
        max_length=500, blank=True, help_text="Why the scan has its status: waiting, failed or not assessable."
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    claim_token = models.CharField(max_length=32, blank=True, editable=False)
    claimed_until = models.DateTimeField(null=True, blank=True, editable=False)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    manufacturer = models.CharField(max_length=64, blank=True, help_text="DICOM Manufacturer, where known.")
    station_name = models.CharField(max_length=64, blank=True, help_text="DICOM StationName, where known.")

    result = models.CharField(max_length=15, choices=Result.choices, blank=True, db_index=True)
    label = models.CharField(max_length=50, blank=True)
    probability = models.FloatField(
        null=True, blank=True, help_text="Calibrated probability of the positive class (COVID-19)."
    )
    raw_probability = models.FloatField(null=True, blank=True, help_text="The network's own, before calibration.")
    probabilities = models.JSONField(default=dict, blank=True, help_text="Calibrated probability of every class.")
    gate = models.JSONField(
        default=dict, blank=True, help_text="The input gate's checks and figures for this scan (see mlcore.core.gate)."
    )
    threshold = models.FloatField(null=True, blank=True)
    model_version = models.ForeignKey(
        "mlcore.ModelVersion", null=True, blank=True, on_delete=models.PROTECT, related_name="scans"
    )
    queue_wait_ms = models.FloatField(null=True, blank=True)
    preprocess_ms = models.FloatField(null=True, blank=True)
    network_ms = models.FloatField(null=True, blank=True)
    total_ms = models.FloatField(null=True, blank=True)
    batch_size = models.PositiveSmallIntegerField(null=True, blank=True)
    preview = models.FileField(storage=scan_store, upload_to=derived_image_name, blank=True, max_length=200)
    heatmap = models.FileField(storage=scan_store, upload_to=derived_image_name, blank=True, max_length=200)

    class Meta:
        ordering = ["-uploaded_at"]
        indexes = [models.Index(fields=["status", "uploaded_at"])]
        # Patient images leave the system with an export: its own right, not implied by reading scans.
        permissions = [("export_dataset", "Can export reviewed scans as a training dataset")]

    def __str__(self) -> str:
        return f"Scan {self.pk} of {self.patient}"


class Review(models.Model):
    """A doctor's reading of a scan next to the model's: the finding that counts, and feeds training."""

    class Finding(models.TextChoices):
        """Named as the model's classes where they are one (mlcore.core.classes owns what each counts as)."""

        COVID = classes.COVID, classes.FINDINGS[classes.COVID]
        OTHER_PNEUMONIA = classes.OTHER_PNEUMONIA, classes.FINDINGS[classes.OTHER_PNEUMONIA]
        NORMAL = classes.NORMAL, classes.FINDINGS[classes.NORMAL]
        OTHER = classes.OTHER_FINDING, classes.FINDINGS[classes.OTHER_FINDING]
        INDETERMINATE = classes.INDETERMINATE_FINDING, classes.FINDINGS[classes.INDETERMINATE_FINDING]

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="review")
    agrees_with_model = models.BooleanField()
    final_finding = models.CharField(max_length=15, choices=Finding.choices)
    comment = models.TextField(blank=True)
    reviewer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewed_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Review of scan {self.scan_id}: {self.get_final_finding_display()}"
