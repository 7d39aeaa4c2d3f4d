from django.apps import AppConfig


class DiagnosisConfig(AppConfig):
    name = "diagnosis"
    verbose_name = "Diagnosis"

    def ready(self):
        from auditlog.registry import auditlog
        from celery.signals import worker_ready
        from django.core.checks import register

        from diagnosis import receivers
        from diagnosis.checks import prevalence_check
        from diagnosis.models import Patient, Review, Scan
        from mlcore.signals import model_version_activated

        auditlog.register(Patient, m2m_fields={"shared_with"})
        # The worker writes results with UPDATE statements, so only people's changes are logged here.
        auditlog.register(Scan, exclude_fields=["claim_token", "claimed_until"])
        auditlog.register(Review)
        register(prevalence_check)

        model_version_activated.connect(receivers.queue_waiting_scans, dispatch_uid="queue-waiting-scans")
        worker_ready.connect(receivers.recover_scans_on_worker_start, dispatch_uid="recover-scans", weak=False)
