from django.urls import path

from interop import views

app_name = "interop"

urlpatterns = [
    path("fhir/DiagnosticReport", views.DiagnosticReportSearchView.as_view(), name="fhir_diagnostic_report_search"),
    path("fhir/DiagnosticReport/<int:pk>", views.DiagnosticReportReadView.as_view(), name="fhir_diagnostic_report"),
]
