from django.urls import path

from diagnosis import views

app_name = "diagnosis"

urlpatterns = [
    path("patients/", views.patient_list, name="patient_list"),
    path("patients/new/", views.PatientCreateView.as_view(), name="patient_create"),
    path("patients/<int:pk>/", views.PatientDetailView.as_view(), name="patient_detail"),
    path("scans/<int:pk>/", views.scan_detail, name="scan_detail"),
    path("scans/<int:pk>/review/", views.scan_review_submit, name="scan_review"),
    path("scans/<int:pk>/status.json", views.scan_status, name="scan_status"),
    path("scans/<int:pk>/<str:kind>.png", views.scan_image, name="scan_image"),
]
