"""No copy of what this site shows stays in a browser's or a proxy's cache.

Pages and JSON show patient data, and a shared ward computer's cache or back button would keep them past
sign-out. So every response gets Django's never-cache headers (``Cache-Control: no-store``) unless its view
is marked :func:`cacheable`. Static files are served by WhiteNoise before this middleware and keep theirs.
"""

from django.utils.cache import add_never_cache_headers


def cacheable(view):
    """For a view that shows nothing private (the favicon): its response keeps its own caching headers."""
    view.cacheable = True
    return view


class NoStoreMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if not getattr(request, "view_is_cacheable", False) and "no-store" not in response.get("Cache-Control", ""):
            add_never_cache_headers(response)
        return response

    def process_view(self, request, view_func, view_args, view_kwargs):
        request.view_is_cacheable = getattr(view_func, "cacheable", False)
