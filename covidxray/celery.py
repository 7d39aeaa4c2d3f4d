"""The Celery application, configured from Django settings (``CELERY_*`` names).

Production settings by default, as in wsgi.py; ``make run`` names the local settings in Procfile.dev.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "covidxray.settings.production")

app = Celery("covidxray")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
