"""The audit log (django-auditlog): who read or changed which record, when, and from which address.

Creates, changes and deletes of registered models are logged by django-auditlog's signals; reads
(a page showing a patient, an image download) are logged explicitly with :func:`record_access`.
"""

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from django.conf import settings

from covidxray.client_address import client_address


class AuditMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, with the client address the sign-in throttle also uses: taken from
    X-Forwarded-For only behind the proxies the deployment declares, so no client can forge it."""

    @staticmethod
    def _get_remote_addr(request):
        if settings.AUDITLOG_DISABLE_REMOTE_ADDR:
            return None
        return client_address(request)


def record_access(instance, *, what: str, actor=None) -> LogEntry:
    """Log that the signed-in user read `instance` (a page, a download); `what` says which part.

    The actor and address come from the request through :class:`AuditMiddleware`. Requests that
    authenticate inside the view (API tokens) are anonymous to the middleware, so they name their `actor`.
    """
    who = {"actor": actor, "actor_email": actor.email} if actor is not None else {}
    return LogEntry.objects.log_create(
        instance,
        force_log=True,
        action=LogEntry.Action.ACCESS,
        changes=None,
        additional_data={"read": what},
        **who,
    )
