"""CovidXray: chest X-ray triage for hospitals (Django project package)."""

from .celery import app as celery_app

__all__ = ("celery_app",)
