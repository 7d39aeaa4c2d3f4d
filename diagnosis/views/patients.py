"""Patient pages: the list, creating one, and the detail page with its scans."""

from django.core.exceptions import ValidationError
from django.shortcuts import redirect, render
from django.views import View

from covidxray.audit import record_access
from diagnosis.forms import PatientForm, ScanUploadForm
from diagnosis.selectors import patient_get_for_user, patients_visible_to
from diagnosis.services.scans import patient_create


def patient_list(request):
    patients = patients_visible_to(request.user).order_by("full_name")
    return render(request, "diagnosis/patient_list.html", {"patients": patients})


class PatientCreateView(View):
    def get(self, request):
        return render(request, "diagnosis/patient_form.html", {"form": PatientForm()})

    def post(self, request):
        form = PatientForm(request.POST)
        if form.is_valid():
            try:
                patient = patient_create(created_by=request.user, **form.cleaned_data)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                return redirect("diagnosis:patient_detail", pk=patient.pk)
        return render(request, "diagnosis/patient_form.html", {"form": form})


class PatientDetailView(View):
    def get(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        record_access(patient, what="patient page")
        return self._render(request, patient)

    @staticmethod
    def _render(request, patient):
        scans = patient.scans.select_related("model_version")
        context = {"patient": patient, "scans": scans, "upload_form": ScanUploadForm()}
        return render(request, "diagnosis/patient_detail.html", context)
