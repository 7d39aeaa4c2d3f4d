"""Settings shared by every mode; everything a deployment changes is read from the environment.

Embedded defaults (SQLite under ``var/``, a file-system Celery broker) let the app run on a fresh
machine with no database or broker server. Set ``DATABASE_URL``/``REDIS_URL`` to use MySQL and Redis.
"""

from datetime import timedelta
from pathlib import Path

import environ
from csp.constants import NONE, SELF

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = BASE_DIR / "var"

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(str(BASE_DIR / ".env"))

DEBUG = False
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "crispy_forms",
    "crispy_bootstrap5",
    "axes",
    "auditlog",
    "rest_framework",
    "knox",
    "accounts",
    "diagnosis",
    "mlcore",
    "pacs",
    "interop",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Django's SessionMiddleware, except that requests a page sends by itself do not renew the session.
    "covidxray.sessions.IdleSessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "covidxray.audit.AuditMiddleware",
    # After WhiteNoise, so static files keep their long caching; every other response is no-store.
    "covidxray.caching.NoStoreMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, so that it sees the outcome of authentication (django-axes' documented placement).
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "covidxray.urls"
WSGI_APPLICATION = "covidxray.wsgi.application"
ASGI_APPLICATION = "covidxray.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite under var/ unless DATABASE_URL says otherwise (mysql://user:pass@host:port/name).
VAR_DIR.mkdir(exist_ok=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
            "isolation_level": "read committed",
        }
    )
    DATABASES["default"]["TEST"] = {"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite is the embedded default and must hold a worker and a few doctors at once. WAL: readers never
    # wait for the writer. IMMEDIATE: a transaction takes the write lock when it begins, so two that read
    # first cannot deadlock on upgrading to a write (SQLite answers that "database is locked" at once,
    # without waiting). A writer waits up to the busy timeout for the lock instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "init_command": "PRAGMA journal_mode=WAL",
            "transaction_mode": "IMMEDIATE",
            "timeout": env.int("DJANGO_SQLITE_BUSY_TIMEOUT", default=20),
        }
    )
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DJANGO_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Accounts
AUTH_USER_MODEL = "accounts.User"
AUTHENTICATION_BACKENDS = [
    # Axes first, so a locked-out client is refused before its password is even checked.
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2SHA1PasswordHasher",
    "django.contrib.auth.hashers.ScryptPasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "accounts:login"
PASSWORD_RESET_TIMEOUT = env.int("DJANGO_PASSWORD_RESET_TIMEOUT", default=60 * 60 * 24)

# Sessions end when the browser closes and after an idle period (a shared ward computer). Each user action
# restarts the period (covidxray.sessions.IdleSessionMiddleware); polls a page sends by itself do not.
SESSION_COOKIE_AGE = env.int("DJANGO_SESSION_IDLE_SECONDS", default=60 * 60 * 8)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True

# The client's address (covidxray.client_address): behind this many declared reverse proxies, the one
# the outermost proxy saw; 0 = clients connect directly. Throttling and the audit log both use it.
TRUSTED_PROXY_COUNT = env.int("AXES_PROXY_COUNT", default=0)

# Login throttling (django-axes): failures count per account *and* client address, so nobody can lock
# another computer out of an account, nor, with their own sign-in, clear their failures against another.
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_USERNAME_FORM_FIELD = "username"
AXES_USERNAME_CALLABLE = "accounts.throttling.login_email"
# With the combined parameter above, a sign-in clears only that account's failures from that address.
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "accounts/locked_out.html"
AXES_CLIENT_IP_CALLABLE = "covidxray.client_address.client_address"

# Security headers. Content-Security-Policy (django-csp): scripts, styles, images and requests from this
# site only; no plugins, no framing, forms post only here. Inline style *attributes* are allowed
# (style-src-attr) for data-driven widths such as the probability bar; inline <style> and every inline
# script stay blocked.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "style-src-attr": ["'unsafe-inline'"],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# Audit log (django-auditlog): reads and changes of patients and scans, with the client address.
AUDITLOG_DISABLE_REMOTE_ADDR = False
AUDITLOG_STORE_JSON_CHANGES = True

# API tokens (django-rest-knox) for systems that read results over FHIR: staff issue them in the admin;
# clients send "Authorization: Bearer <token>". Only a digest of each token is stored.
REST_KNOX = {"AUTH_HEADER_PREFIX": "Bearer"}
# Every API view is token-only unless it says otherwise: a browser session never authenticates an API call.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["knox.auth.TokenAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
}
API_TOKEN_VALID_DAYS = env.int("COVIDXRAY_API_TOKEN_DAYS", default=365)
# The identifier system of this hospital's medical record numbers (a URI, e.g. urn:oid:...), for FHIR subjects.
COVIDXRAY_FHIR_MRN_SYSTEM = env.str("COVIDXRAY_FHIR_MRN_SYSTEM", default="urn:covidxray:mrn")

# E-mail: printed to the console unless an SMTP server is configured (EMAIL_URL=smtp://user:pass@host:587).
_email = env.email_url("EMAIL_URL", default="consolemail://")
EMAIL_BACKEND = _email["EMAIL_BACKEND"]
EMAIL_HOST = _email.get("EMAIL_HOST", "")
EMAIL_PORT = _email.get("EMAIL_PORT", 25)
EMAIL_HOST_USER = _email.get("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = _email.get("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = _email.get("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = _email.get("EMAIL_USE_SSL", False)
DEFAULT_FROM_EMAIL = env("DJANGO_DEFAULT_FROM_EMAIL", default="CovidXray <noreply@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
ADMINS = [tuple(admin.split(":", 1)) for admin in env.list("DJANGO_ADMINS", default=[])]

# Internationalisation
LANGUAGE_CODE = "en-gb"
TIME_ZONE = env("DJANGO_TIME_ZONE", default="UTC")
USE_I18N = True
USE_TZ = True

# Static files are served by WhiteNoise; media (patient images) never from a public URL.
STATIC_URL = "static/"
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "staticfiles"))
STATICFILES_DIRS = [BASE_DIR / "static"]
MEDIA_ROOT = env.path("DJANGO_MEDIA_ROOT", default=str(VAR_DIR / "media"))
# Trained model versions (weights, plots); never served from a public URL either.
MODEL_STORE_DIR = env.path("COVIDXRAY_MODEL_DIR", default=str(VAR_DIR / "models"))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "models": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(MODEL_STORE_DIR)},
    },
    "scans": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(Path(MEDIA_ROOT) / "scans")},
    },
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}

# Uploads: a size limit and a pixel limit against decompression bombs.
SCAN_MAX_UPLOAD_BYTES = env.int("COVIDXRAY_MAX_UPLOAD_MB", default=25) * 1024 * 1024
SCAN_MAX_PIXELS = env.int("COVIDXRAY_MAX_PIXELS", default=60_000_000)
# All the images of one upload request together, so a hundred small pixel bombs are refused unread.
SCAN_MAX_REQUEST_PIXELS = env.int("COVIDXRAY_MAX_REQUEST_PIXELS", default=200_000_000)
DATA_UPLOAD_MAX_MEMORY_SIZE = 5 * 1024 * 1024

# The scan page polls its status with pauses that double from 1 s up to this many seconds, and stops after
# this long (a "Check again" button starts it again).
SCAN_POLL_MAX_INTERVAL_SECONDS = env.int("COVIDXRAY_SCAN_POLL_MAX_INTERVAL_SECONDS", default=30)
SCAN_POLL_STOP_AFTER_SECONDS = env.int("COVIDXRAY_SCAN_POLL_STOP_AFTER_SECONDS", default=10 * 60)

# Inference: scans taken together through the network, and how long a worker may hold a scan
# before another worker may take it over (a worker that died mid-scan gives it up this way).
SCAN_BATCH_SIZE = env.int("COVIDXRAY_SCAN_BATCH_SIZE", default=8)
SCAN_PROCESSING_LEASE_SECONDS = env.int("COVIDXRAY_SCAN_LEASE_SECONDS", default=300)
# "tflite" runs readings through the active version's verified TFLite export (manage.py export_tflite).
INFERENCE_ENGINE = env.str("COVIDXRAY_INFERENCE_ENGINE", default="keras")
TFLITE_QUANTIZATION = env.str("COVIDXRAY_TFLITE_QUANTIZATION", default="int8")
TFLITE_THREADS = env.int("COVIDXRAY_TFLITE_THREADS", default=0) or None
# The share of scanned patients at this hospital who truly have COVID-19 pneumonia (0 < p < 1,
# checked at startup): the scan page turns the model's sensitivity and specificity into PPV/NPV here.
COVIDXRAY_PREVALENCE = env.float("COVIDXRAY_PREVALENCE", default=0.05)

# PACS link (pacs/): the DICOM listener's AE title and port, the calling AE titles it accepts (no other
# may associate), the group whose members PACS-received patients are shared with, and where results go
# back (no destination host: nothing is sent).
PACS_AE_TITLE = env.str("COVIDXRAY_PACS_AE_TITLE", default="COVIDXRAY")
PACS_BIND_ADDRESS = env.str("COVIDXRAY_PACS_BIND_ADDRESS", default="0.0.0.0")
PACS_PORT = env.int("COVIDXRAY_PACS_PORT", default=11112)
PACS_ALLOWED_CALLING_AE_TITLES = env.list("COVIDXRAY_PACS_ALLOWED_AE_TITLES", default=[])
PACS_SHARE_GROUP = env.str("COVIDXRAY_PACS_SHARE_GROUP", default="Radiology")
PACS_DESTINATION_HOST = env.str("COVIDXRAY_PACS_DESTINATION_HOST", default="")
PACS_DESTINATION_PORT = env.int("COVIDXRAY_PACS_DESTINATION_PORT", default=104)
PACS_DESTINATION_AE_TITLE = env.str("COVIDXRAY_PACS_DESTINATION_AE_TITLE", default="PACS")
PACS_SEND_MAX_RETRIES = env.int("COVIDXRAY_PACS_SEND_RETRIES", default=5)
PACS_SEND_RETRY_SECONDS = env.float("COVIDXRAY_PACS_SEND_RETRY_SECONDS", default=30.0)

# Celery: Redis when REDIS_URL is set; otherwise a file-system broker that needs no server.
REDIS_URL = env("REDIS_URL", default="")
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default=REDIS_URL or "filesystem://")


def filesystem_broker_options(folder: Path) -> dict:
    """kombu's file-system transport: its folders must exist on both the web and the worker side."""
    for name in ("queue", "control"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    return {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }


if CELERY_BROKER_URL == "filesystem://":
    CELERY_BROKER_TRANSPORT_OPTIONS = filesystem_broker_options(VAR_DIR / "celery-broker")
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = TIME_ZONE
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A task is acknowledged only when done, and redelivered if its worker dies; one at a time per process.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Diagnoses go to the "inference" queue (every plain worker); training to its own queue, taken only by
# workers started with -Q training, so a long training run never delays a diagnosis.
CELERY_TASK_DEFAULT_QUEUE = "inference"
CELERY_TASK_ROUTES = {"mlcore.tasks.train_model_version": {"queue": "training"}}
CELERY_BEAT_SCHEDULE_FILENAME = str(VAR_DIR / "celerybeat-schedule")
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-scans": {
        "task": "diagnosis.tasks.requeue_stale_scans",
        "schedule": env.float("COVIDXRAY_REQUEUE_INTERVAL_SECONDS", default=60.0),
    },
    "fail-stale-training-versions": {
        "task": "mlcore.tasks.fail_stale_training_versions",
        "schedule": 5 * 60.0,
    },
}
# A version "training" whose process gave no sign of life (a log line, an epoch) for this long is marked
# failed by the periodic task above: its worker died. Longer than the slowest epoch.
TRAINING_STALE_SECONDS = env.int("COVIDXRAY_TRAINING_STALE_MINUTES", default=60) * 60
# A version "queued" this long after it was created is marked failed by the same task: its Celery task
# was lost (a broker purged or restarted) or no worker takes the training queue.
TRAINING_QUEUE_TIMEOUT_SECONDS = env.int("COVIDXRAY_TRAINING_QUEUE_TIMEOUT_MINUTES", default=360) * 60
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Unacknowledged tasks of a worker that vanished come back after this long.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=15 * 60)}

# Forms
CRISPY_ALLOWED_TEMPLATE_PACKS = "bootstrap5"
CRISPY_TEMPLATE_PACK = "bootstrap5"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("DJANGO_LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "axes": {"level": "WARNING"},
        # The report PDF's Bootstrap has rules for screens that WeasyPrint skips, one warning each.
        "weasyprint": {"level": "ERROR"},
    },
}
