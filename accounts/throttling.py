"""django-axes hook: count failed logins per address in canonical spelling, not per letter case."""

from accounts.models import normalize_email_address


def login_email(request, credentials=None) -> str:
    if credentials and credentials.get("username"):
        return normalize_email_address(credentials["username"])
    return normalize_email_address(request.POST.get("username", ""))
