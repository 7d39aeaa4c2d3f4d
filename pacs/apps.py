from django.apps import AppConfig


class PacsConfig(AppConfig):
    name = "pacs"
    verbose_name = "PACS link"

    def ready(self):
        from diagnosis.signals import scan_read
        from pacs import receivers

        scan_read.connect(receivers.queue_results_for_pacs, dispatch_uid="pacs-queue-results")
