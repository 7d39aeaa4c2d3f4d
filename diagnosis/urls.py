from django.urls import path

from diagnosis.views import patients, scans, uploads

app_name = "diagnosis"

urlpatterns = [
    path("patients/", patients.patient_list, name="patient_list"),
    path("patients/new/", patients.PatientCreateView.as_view(), name="patient_create"),
    path("patients/<int:pk>/", patients.PatientDetailView.as_view(), name="patient_detail"),
    path("patients/<int:pk>/edit/", patients.PatientUpdateView.as_view(), name="patient_update"),
    path("patients/<int:pk>/delete/", patients.PatientDeleteView.as_view(), name="patient_delete"),
    path("patients/<int:pk>/share/", patients.patient_share_submit, name="patient_share"),
    path("patients/<int:pk>/share/<int:doctor_pk>/stop/", patients.patient_unshare_submit, name="patient_unshare"),
    path("scans/<int:pk>/delete/", patients.ScanDeleteView.as_view(), name="scan_delete"),
    path("patients/<int:pk>/upload/", uploads.ScanUploadView.as_view(), name="scan_upload"),
    path("patients/<int:pk>/dicom-header/", uploads.dicom_header, name="dicom_header"),
    path("scans/<int:pk>/", scans.scan_detail, name="scan_detail"),
    path("scans/<int:pk>/review/", scans.scan_review_submit, name="scan_review"),
    path("scans/<int:pk>/report/", scans.scan_report, name="scan_report"),
    path("scans/<int:pk>/report.pdf", scans.scan_report_pdf, name="scan_report_pdf"),
    path("scans/<int:pk>/status.json", scans.scan_status, name="scan_status"),
    path("scans/<int:pk>/<str:kind>.png", scans.scan_image, name="scan_image"),
]
