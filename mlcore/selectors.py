"""Reads for model versions."""

from mlcore.core.calibration import Band
from mlcore.core.gate import FeatureGate
from mlcore.core.predictor import Reliability
from mlcore.models import ActiveModelVersion, ModelVersion


def model_version_active() -> ModelVersion | None:
    active = ActiveModelVersion.objects.select_related("version").filter(singleton=1).first()
    return active.version if active else None


def model_version_get(*, name_or_id: str) -> ModelVersion:
    """A version by its name, or by its numeric id."""
    query = ModelVersion.objects.filter(name=name_or_id)
    if not query.exists() and name_or_id.isdigit():
        query = ModelVersion.objects.filter(pk=int(name_or_id))
    return query.get()


def model_version_reliability(*, version: ModelVersion) -> Reliability:
    """What the version fitted on validation; parts it lacks (older versions) stay None."""
    gate = None
    if version.gate_file:
        with version.gate_file.open("rb") as handle:
            gate = FeatureGate.load(handle)
    return Reliability(
        temperature=version.temperature,
        band=Band(version.indeterminate_low, version.indeterminate_high),
        gate=gate,
        heatmap_scale=version.heatmap_scale,
    )
