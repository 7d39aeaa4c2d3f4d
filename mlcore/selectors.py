"""Reads for model versions."""

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
