from django.apps import AppConfig


class DiagnosisConfig(AppConfig):
    name = "diagnosis"
    verbose_name = "Diagnosis"

    def ready(self):
        from celery.signals import worker_ready

        from diagnosis import receivers
        from mlcore.signals import model_version_activated

        model_version_activated.connect(receivers.queue_waiting_scans, dispatch_uid="queue-waiting-scans")
        worker_ready.connect(receivers.recover_scans_on_worker_start, dispatch_uid="recover-scans", weak=False)
