"""Training as a Celery task on a queue of its own ("training"), so a long run never delays diagnoses.

Only workers started with ``-Q training`` take it; the inference workers never see it.
"""

from celery import shared_task
from django.core.management import call_command

TRAINING_QUEUE = "training"


@shared_task(acks_late=False, ignore_result=True)
def train_model_version(arguments: list[str]) -> None:
    """Run ``manage.py train_model`` with these arguments on a training worker.

    Not acknowledged late: a training run that dies is recorded as failed and is not repeated by itself.
    """
    call_command("train_model", *arguments)
