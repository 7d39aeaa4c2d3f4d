"""Idle sign-out on a shared ward computer: a session ends SESSION_COOKIE_AGE after the user's last action.

Django's SESSION_SAVE_EVERY_REQUEST would count every request, including those a page sends by itself (the
scan page polling its status), so an unattended page would keep its session alive for ever. Here each
request renews the session unless its view is marked :func:`session_not_renewed`.
"""

from django.contrib.sessions.middleware import SessionMiddleware


def session_not_renewed(view):
    """For a view that pages call by themselves, not on a user's action: it leaves the idle timer running."""
    view.renews_session = False
    return view


class IdleSessionMiddleware(SessionMiddleware):
    def process_view(self, request, view_func, view_args, view_kwargs):
        request.renews_session = getattr(view_func, "renews_session", True)

    def process_response(self, request, response):
        session = getattr(request, "session", None)
        if session is not None and getattr(request, "renews_session", True):
            # Saving an unmodified session is what restarts its expiry; an empty one is never saved.
            session.modified = True
        return super().process_response(request, response)
