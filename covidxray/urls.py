from django.contrib import admin
from django.urls import include, path

from covidxray.views import favicon
from diagnosis.views import dashboard

admin.site.site_header = "CovidXray administration"
admin.site.site_title = "CovidXray admin"
admin.site.index_title = "Hospital administration"

urlpatterns = [
    path("", dashboard.dashboard, name="home"),
    path("accounts/", include("accounts.urls")),
    path("", include("diagnosis.urls")),
    path("models/", include("mlcore.urls")),
    path("", include("interop.urls")),
    path("admin/", admin.site.urls),
    path("favicon.ico", favicon, name="favicon"),
]

# Errors: a database outage answers 503 with a page that needs no database (covidxray/views.py).
handler500 = "covidxray.views.server_error"
