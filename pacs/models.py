"""What came in from the PACS, and what went back to it for each scan."""

from django.db import models

from diagnosis.models import Scan


class ReceivedInstance(models.Model):
    """A DICOM instance the listener stored as a scan; a second copy of the same instance is not read again."""

    sop_instance_uid = models.CharField("SOP instance UID", max_length=64, unique=True)
    study_instance_uid = models.CharField("study instance UID", max_length=64)
    calling_ae_title = models.CharField("sent by (calling AE title)", max_length=16)
    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="pacs_received")
    received_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.sop_instance_uid} from {self.calling_ae_title}"


class ResultSend(models.Model):
    """The SR and heatmap of one scan sent to the PACS; their UIDs stay fixed, so a re-send never duplicates."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RETRYING = "retrying", "Failed, will retry"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed (gave up; re-send from the admin)"

    scan = models.OneToOneField(Scan, on_delete=models.CASCADE, related_name="pacs_send")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED, db_index=True)
    destination = models.CharField(max_length=200, help_text="AE title@host:port at the last attempt.")
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.TextField(blank=True)
    study_instance_uid = models.CharField("study instance UID", max_length=64)
    sr_series_instance_uid = models.CharField("SR series instance UID", max_length=64)
    sr_sop_instance_uid = models.CharField("SR SOP instance UID", max_length=64)
    sc_series_instance_uid = models.CharField("heatmap series instance UID", max_length=64)
    sc_sop_instance_uid = models.CharField(
        "heatmap SOP instance UID", max_length=64, help_text="Left out when the scan has no heatmap."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"Results of scan {self.scan_id} to the PACS: {self.get_state_display()}"
