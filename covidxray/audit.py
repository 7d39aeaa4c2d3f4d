"""The audit log (django-auditlog): who read or changed which record, when, and from which address.

Creates, changes and deletes of registered models are logged by django-auditlog's signals; reads
(a page showing a patient, an image download) are logged explicitly with :func:`record_access`.
"""

from auditlog.middleware import AuditlogMiddleware
from auditlog.models import LogEntry
from django.conf import settings


class AuditMiddleware(AuditlogMiddleware):
    """django-auditlog's middleware, but the client address is only taken from X-Forwarded-For
    behind a proxy the deployment declares (AXES_PROXY_COUNT); otherwise any client could forge it."""

    @staticmethod
    def _get_remote_addr(request):
        if settings.AUDITLOG_DISABLE_REMOTE_ADDR:
            return None
        forwarded = request.headers.get("X-Forwarded-For", "")
        proxies = settings.AUDIT_TRUSTED_PROXY_COUNT
        if proxies and forwarded:
            hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
            if len(hops) >= proxies:
                return hops[-proxies]
        return request.META.get("REMOTE_ADDR")


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
