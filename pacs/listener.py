"""The DICOM Storage SCP: pynetdicom in front of ``instance_receive``; it answers every instance and stays up."""

from __future__ import annotations

import logging

from django.conf import settings
from django.db import close_old_connections, connection
from pydicom.dataset import Dataset
from pynetdicom import AE, AllStoragePresentationContexts, evt
from pynetdicom.sop_class import Verification

from pacs.services.receive import STATUS_SUCCESS, InstanceRefused, instance_receive

logger = logging.getLogger(__name__)

STATUS_PROCESSING_FAILURE = 0x0110


def listener_ae() -> AE:
    """An AE that accepts every storage SOP class, so a CT gets a C-STORE status with its reason rather
    than a bare "no presentation context", and that associates only with the configured calling AE titles."""
    allowed = settings.PACS_ALLOWED_CALLING_AE_TITLES
    if not allowed:
        raise ValueError("COVIDXRAY_PACS_ALLOWED_AE_TITLES is empty: no modality or PACS could send images.")
    ae = AE(ae_title=settings.PACS_AE_TITLE)
    ae.supported_contexts = AllStoragePresentationContexts
    ae.add_supported_context(Verification)
    ae.require_calling_aet = allowed
    ae.maximum_associations = 20
    return ae


def listener_handlers() -> list:
    return [(evt.EVT_C_STORE, on_c_store), (evt.EVT_REJECTED, on_rejected), (evt.EVT_C_ECHO, on_c_echo)]


def on_c_echo(event) -> int:
    return STATUS_SUCCESS


def on_rejected(event) -> None:
    requestor = event.assoc.requestor
    logger.warning(
        "Refused an association from AE %r at %s: not in COVIDXRAY_PACS_ALLOWED_AE_TITLES.",
        requestor.ae_title,
        requestor.address,
    )


def on_c_store(event):
    """Each association runs in its own thread: it gets a fresh database connection and closes it."""
    calling = event.assoc.requestor.ae_title
    close_old_connections()
    try:
        received = instance_receive(data=event.encoded_dataset(), calling_ae_title=calling)
    except InstanceRefused as refusal:
        logger.warning("Refused an instance from AE %r: %s (status 0x%04X).", calling, refusal.reason, refusal.status)
        return _status(refusal.status, refusal.reason)
    except Exception:
        logger.exception("Could not store an instance from AE %r.", calling)
        return _status(STATUS_PROCESSING_FAILURE, "CovidXray could not store it; see its log")
    finally:
        connection.close()
    if received.created:
        logger.info("Stored an instance from AE %r as scan %s, queued.", calling, received.scan.pk)
    else:
        logger.info("Instance from AE %r was already stored as scan %s.", calling, received.scan.pk)
    return STATUS_SUCCESS


def _status(code: int, reason: str) -> Dataset:
    status = Dataset()
    status.Status = code
    status.ErrorComment = reason[:64]
    return status
