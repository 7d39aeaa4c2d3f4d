"""Thin Celery tasks: each loads by id and calls one service."""

from celery import shared_task
from django.conf import settings

from pacs.models import ResultSend
from pacs.services.results import ResultSendError, result_send_deliver


@shared_task(bind=True, acks_late=True, max_retries=settings.PACS_SEND_MAX_RETRIES)
def send_results_to_pacs(self, send_id: int) -> None:
    """C-STORE a scan's SR and heatmap; while the destination is down, retry with doubling delays."""
    send = ResultSend.objects.select_related("scan__model_version").filter(pk=send_id).first()
    if send is None:
        return
    try:
        result_send_deliver(send=send, final_attempt=self.request.retries >= self.max_retries)
    except ResultSendError as error:
        raise self.retry(exc=error, countdown=settings.PACS_SEND_RETRY_SECONDS * 2**self.request.retries) from error
