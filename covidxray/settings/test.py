"""The test suite: same apps and middleware as production, faster hashing, mail kept in memory."""

from .base import *  # noqa: F403
from .base import env

SECRET_KEY = env("DJANGO_SECRET_KEY", default="test-secret-key-not-for-production")
DEBUG = False
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# pytest-xdist runs the suite in several processes at once and names each in PYTEST_XDIST_WORKER (gw0, gw1...);
# the Celery workers and listeners a test starts inherit it. Each gets files, a database and a broker of its own.
XDIST_WORKER = env.str("PYTEST_XDIST_WORKER", default="")
TEST_VAR_DIR = VAR_DIR / "xdist" / XDIST_WORKER if XDIST_WORKER else VAR_DIR  # noqa: F405

# Files of test runs stay apart from a developer's trained models and uploaded scans.
MODEL_STORE_DIR = TEST_VAR_DIR / "test-models"
MEDIA_ROOT = TEST_VAR_DIR / "test-media"
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

# A file, not memory, for the SQLite test database, so a real Celery worker process can share it (pytest-django
# adds the xdist worker's name to it, as it does to a MariaDB test database's).
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test-db.sqlite3")}  # noqa: F405

# The file-system broker of the tests stays apart from the one `make run` uses.
if CELERY_BROKER_URL == "filesystem://":  # noqa: F405
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(TEST_VAR_DIR / "test-celery-broker")  # noqa: F405
elif XDIST_WORKER and CELERY_BROKER_URL.startswith(("redis://", "rediss://")):  # noqa: F405
    # One Redis database, every key (queues, unacknowledged tasks) under the xdist worker's prefix.
    CELERY_BROKER_TRANSPORT_OPTIONS = {**CELERY_BROKER_TRANSPORT_OPTIONS, "global_keyprefix": f"{XDIST_WORKER}:"}
