from django.apps import AppConfig


class MlcoreConfig(AppConfig):
    name = "mlcore"
    verbose_name = "Machine learning"

    def ready(self):
        from auditlog.registry import auditlog

        from mlcore.models import ActiveModelVersion

        # Which model version reads the scans, and who switched it when.
        auditlog.register(ActiveModelVersion)
