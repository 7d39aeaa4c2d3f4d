"""API tokens under the name staff know them by, in this app's part of the admin."""

from knox.models import AuthToken


class ApiToken(AuthToken):
    """django-rest-knox's token (a digest, its user, its expiry), as staff issue and revoke it."""

    class Meta:
        proxy = True
        verbose_name = "API token"
        verbose_name_plural = "API tokens"
