"""Model versions trained by ``manage.py train_model``, their evaluations and their plots."""

from django.conf import settings
from django.db import models

from mlcore.storage import model_store


def version_file_path(instance, filename: str) -> str:
    version_id = instance.pk if isinstance(instance, ModelVersion) else instance.version_id
    return f"versions/{version_id}/{filename}"


def plot_file_path(instance, filename: str) -> str:
    return f"versions/{instance.version_id}/plots/{filename}"


class ModelVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        TRAINING = "training", "Training"
        SUCCEEDED = "succeeded", "Succeeded"
        FAILED = "failed", "Failed"
        INTERRUPTED = "interrupted", "Interrupted"

    name = models.CharField(max_length=100, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.TRAINING)
    command = models.TextField(blank=True, help_text="The command line that trained this version.")
    hyperparameters = models.JSONField(default=dict, blank=True)
    model_summary = models.JSONField(default=dict, blank=True)
    history = models.JSONField(default=dict, blank=True, help_text="Per-epoch training history.")
    wall_time_seconds = models.FloatField(null=True, blank=True)
    images_per_second = models.FloatField(null=True, blank=True)
    dataset_summary = models.JSONField(default=dict, blank=True)
    class_names = models.JSONField(default=list, blank=True)
    positive_class = models.CharField(max_length=50, default="COVID")
    preprocessing = models.JSONField(default=dict, blank=True)
    threshold = models.FloatField(null=True, blank=True)
    threshold_rule = models.TextField(blank=True)
    validation_metrics = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True, help_text="Metrics on the held-out test split.")
    environment = models.JSONField(default=dict, blank=True)
    provenance = models.JSONField(
        default=dict,
        blank=True,
        help_text="What reproduces the run: git commit, the sha256 of every file per split, libraries, seeds.",
    )
    shortcut_audit = models.JSONField(
        default=dict,
        blank=True,
        help_text="Baselines beside the model (pixels only, source from the image): how much the model adds.",
    )
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Last sign of life from the process training this version; a stale one means it died.",
    )
    temperature = models.FloatField(
        null=True,
        blank=True,
        help_text="Temperature scaling fitted on the validation split; probabilities shown are calibrated by it.",
    )
    indeterminate_low = models.FloatField(
        null=True, blank=True, help_text="Calibrated P(positive) from which a reading is indeterminate."
    )
    indeterminate_high = models.FloatField(
        null=True, blank=True, help_text="Calibrated P(positive) up to which a reading is indeterminate."
    )
    heatmap_scale = models.FloatField(
        null=True, blank=True, help_text="Fixed Grad-CAM scale from validation maps, so a weak map looks weak."
    )
    reliability = models.JSONField(
        default=dict,
        blank=True,
        help_text="How calibration, the indeterminate band and the input gate were fitted, with their figures.",
    )
    gate_file = models.FileField(
        storage=model_store,
        upload_to=version_file_path,
        blank=True,
        max_length=300,
        help_text="The input gate's out-of-distribution statistics, fitted on the training split.",
    )
    model_file = models.FileField(storage=model_store, upload_to=version_file_path, blank=True, max_length=300)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.name

    @property
    def is_usable(self) -> bool:
        return self.status == self.Status.SUCCEEDED and bool(self.model_file)


class ActiveModelVersion(models.Model):
    """A single row pointing at the version that diagnoses scans: at most one is ever active."""

    singleton = models.PositiveSmallIntegerField(primary_key=True, default=1, editable=False)
    version = models.OneToOneField(ModelVersion, on_delete=models.PROTECT, related_name="activation")
    activated_at = models.DateTimeField(auto_now=True)
    activated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [models.CheckConstraint(condition=models.Q(singleton=1), name="single_active_model")]

    def __str__(self) -> str:
        return f"Active: {self.version}"


class Evaluation(models.Model):
    """Metrics of one version on labelled images: its own test split, or another folder."""

    class Kind(models.TextChoices):
        TEST_SPLIT = "test_split", "Held-out test split (internal)"
        EXTERNAL = "external", "External validation"
        LOCAL = "local", "Local evaluation (this hospital's images)"
        OUT_OF_DISTRIBUTION = "out_of_distribution", "Input gate check (images the model must refuse)"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="evaluations")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    data_dir = models.CharField(max_length=500)
    created_at = models.DateTimeField(auto_now_add=True)
    threshold = models.FloatField()
    dataset_summary = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.version} on {self.data_dir} ({self.get_kind_display()})"


class Plot(models.Model):
    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="plots")
    evaluation = models.ForeignKey(Evaluation, null=True, blank=True, on_delete=models.CASCADE, related_name="plots")
    key = models.SlugField(max_length=60)
    title = models.CharField(max_length=200)
    image = models.FileField(storage=model_store, upload_to=plot_file_path, max_length=300)

    class Meta:
        ordering = ["pk"]

    def __str__(self) -> str:
        return self.title


class TFLiteExport(models.Model):
    """A TensorFlow Lite copy of a version, usable by the workers only once ``verified``."""

    class Quantization(models.TextChoices):
        FLOAT32 = "float32", "float32"
        FLOAT16 = "float16", "float16"
        INT8 = "int8", "int8 (activations and weights)"

    version = models.ForeignKey(ModelVersion, on_delete=models.CASCADE, related_name="tflite_exports")
    quantization = models.CharField(max_length=10, choices=Quantization.choices)
    model_file = models.FileField(storage=model_store, upload_to=version_file_path, max_length=300)
    created_at = models.DateTimeField(auto_now_add=True)
    checked_on = models.CharField(max_length=500, help_text="The labelled folder the agreement was measured on.")
    agreement = models.JSONField(default=dict)
    verified = models.BooleanField(
        default=False, help_text="Agreement with the Keras model is within the limits; workers may use it."
    )

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["version", "quantization"], name="one_export_per_quantization")]

    def __str__(self) -> str:
        return f"{self.version} ({self.quantization})"
