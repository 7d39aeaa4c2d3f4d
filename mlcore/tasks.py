"""Training as a Celery task on a queue of its own ("training"), so a long run never delays diagnoses.

Only workers started with ``-Q training`` take it; the inference workers never see it.
"""

from celery import shared_task

from mlcore.core.pipeline import RunOptions
from mlcore.models import ModelVersion
from mlcore.services import model_version_train_queued, model_versions_fail_stale

TRAINING_QUEUE = "training"


@shared_task(acks_late=False, ignore_result=True)
def train_model_version(*, version_id: int, data_dir: str | list[str], options: dict, activate: bool = False) -> None:
    """Train a queued version row with the options queued beside it (``RunOptions.to_dict``).

    Not acknowledged late: a run whose worker dies is marked failed by its stale heartbeat, never repeated.
    """
    version = ModelVersion.objects.get(pk=version_id)
    model_version_train_queued(
        version=version, data_dir=data_dir, options=RunOptions.from_dict(options), activate=activate
    )


@shared_task(acks_late=True, ignore_result=True)
def fail_stale_training_versions() -> int:
    """Periodic: versions whose training worker stopped beating, or whose queued task was lost, are marked failed."""
    return len(model_versions_fail_stale())
