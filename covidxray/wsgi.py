"""WSGI entry point (gunicorn covidxray.wsgi).

Production settings unless DJANGO_SETTINGS_MODULE says otherwise: a server started without it must not run
with DEBUG and the development key from the repository (it refuses to start without DJANGO_SECRET_KEY).
"""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "covidxray.settings.production")

application = get_wsgi_application()
