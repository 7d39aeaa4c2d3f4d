from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Doctors and staff"

    def ready(self):
        from auditlog.registry import auditlog

        from accounts.models import User

        # Approvals, deactivations and staff rights are logged; secrets never are.
        auditlog.register(User, exclude_fields=["password", "last_login"])
