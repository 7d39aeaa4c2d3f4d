"""Run the DICOM Storage SCP that receives chest X-rays from modalities and the PACS."""

import logging

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from pacs.listener import listener_ae, listener_handlers

logger = logging.getLogger("pacs.listener")


class Command(BaseCommand):
    help = "Receive CR/DX images over DICOM (C-STORE) and queue them for diagnosis, until stopped."

    def add_arguments(self, parser):
        parser.add_argument("--port", type=int, default=settings.PACS_PORT)
        parser.add_argument("--bind", default=settings.PACS_BIND_ADDRESS)

    def handle(self, *args, port: int, bind: str, **options):
        try:
            ae = listener_ae()
        except ValueError as error:
            raise CommandError(str(error)) from error
        logger.info(
            "DICOM listener %s on %s:%d, accepting %s.",
            settings.PACS_AE_TITLE,
            bind,
            port,
            ", ".join(settings.PACS_ALLOWED_CALLING_AE_TITLES),
        )
        try:
            ae.start_server((bind, port), block=True, evt_handlers=listener_handlers())
        except KeyboardInterrupt:
            ae.shutdown()
