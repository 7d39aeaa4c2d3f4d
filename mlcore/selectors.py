"""Reads for model versions and their evaluations."""

import math
from collections.abc import Iterable

from mlcore.core.calibration import Band
from mlcore.core.classes import ClassSet, class_set
from mlcore.core.gate import FeatureGate
from mlcore.core.predictor import Reliability
from mlcore.models import ActiveModelVersion, Evaluation, ModelVersion


def model_version_active() -> ModelVersion | None:
    active = ActiveModelVersion.objects.select_related("version").filter(singleton=1).first()
    return active.version if active else None


def model_version_get(*, name_or_id: str) -> ModelVersion:
    """A version by its name, or by its numeric id."""
    query = ModelVersion.objects.filter(name=name_or_id)
    if not query.exists() and name_or_id.isdigit():
        query = ModelVersion.objects.filter(pk=int(name_or_id))
    return query.get()


def model_version_classes(*, version: ModelVersion | None) -> ClassSet:
    """The classes a version calls and its positive one; no version (or an old one) is COVID against NORMAL."""
    if version is None:
        return class_set()
    return class_set(version.class_names, version.positive_class)


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


# Which evaluation a reading quotes, best first: the hospital's own images say most about its patients,
# another population less, and the test split (same sources as training) least.
EVIDENCE_ORDER = (Evaluation.Kind.LOCAL, Evaluation.Kind.EXTERNAL, Evaluation.Kind.TEST_SPLIT)


def evaluation_figures(*, metrics: dict) -> dict | None:
    """The sensitivity and specificity that apply to a decisive reading, or None without both classes.

    With an indeterminate band, readings inside it are not calls, so the figures outside it apply.
    """
    abstention = metrics.get("abstention")
    figures = (abstention or {}).get("outside") if abstention else metrics
    sensitivity, specificity = (figures or {}).get("sensitivity"), (figures or {}).get("specificity")
    if not sensitivity or not specificity or None in (sensitivity.get("value"), specificity.get("value")):
        return None
    return {"sensitivity": sensitivity, "specificity": specificity, "abstention": abstention}


def evaluation_best_evidence(*, evaluations: Iterable[Evaluation], threshold: float | None) -> Evaluation | None:
    """The evaluation whose figures a reading at ``threshold`` quotes: the latest local one, else the
    latest external one, else the latest test split.

    One at another threshold does not apply (its figures are of other calls), nor one without both
    classes; ``threshold`` None matches any.
    """
    applicable = [
        evaluation
        for evaluation in evaluations
        if evaluation.kind in EVIDENCE_ORDER
        and evaluation_figures(metrics=evaluation.metrics) is not None
        and (threshold is None or math.isclose(evaluation.threshold, threshold, abs_tol=1e-9))
    ]
    if not applicable:
        return None
    return min(
        applicable,
        key=lambda evaluation: (
            EVIDENCE_ORDER.index(evaluation.kind),
            -evaluation.created_at.timestamp(),
            -evaluation.pk,
        ),
    )
