"""The test suite: same apps and middleware as production, faster hashing, mail kept in memory."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-secret-key-not-for-production")
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Files of test runs stay apart from a developer's trained models and uploaded scans.
MODEL_STORE_DIR = VAR_DIR / "test-models"  # noqa: F405
MEDIA_ROOT = VAR_DIR / "test-media"  # noqa: F405
STORAGES = {
    **STORAGES,  # noqa: F405
    "models": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MODEL_STORE_DIR)},
    },
    "scans": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MEDIA_ROOT / "scans")},
    },
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Serve static files straight from the app folders: the suite never runs collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True

# A file, not memory, for the SQLite test database, so a real Celery worker process can share it.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405

# The file-system broker of the tests stays apart from the one `make run` uses.
if CELERY_BROKER_URL == "filesystem://":  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR / "test-celery-broker")  # noqa: F405
