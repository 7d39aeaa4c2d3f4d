"""Patient pages: the searchable list, create and edit, the detail page with scan history and trend,
sharing with other doctors, and deleting a patient or a scan uploaded to the wrong patient."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.shortcuts import get_object_or_404, redirect, render
from django.views import View
from django.views.decorators.http import require_POST

from covidxray.audit import record_access
from diagnosis.forms import PatientForm, PatientShareForm, ScanUploadForm
from diagnosis.selectors import (
    patient_actions_for,
    patient_can_delete,
    patient_can_edit,
    patient_get_for_user,
    patient_list_for_user,
    patient_scan_history,
    patient_trend,
    scan_can_delete,
    scan_get_for_user,
)
from diagnosis.services.patients import (
    CARERS_ONLY,
    CREATOR_ONLY,
    UPLOADER_OR_CREATOR_ONLY,
    patient_create,
    patient_delete,
    patient_share,
    patient_unshare,
    patient_update,
    scan_delete,
)
from mlcore.core.classes import positive_names

PATIENTS_PER_PAGE = 25


def patient_list(request):
    query = request.GET.get("q", "").strip()
    page = Paginator(patient_list_for_user(user=request.user, query=query), PATIENTS_PER_PAGE).get_page(
        request.GET.get("page")
    )
    for patient in page:
        record_access(patient, what="patient list")
    return render(request, "diagnosis/patient_list.html", {"page": page, "query": query})


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
        return render(request, "diagnosis/patient_form.html", {"form": form}, status=400)


class PatientUpdateView(View):
    def get(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        if not patient_can_edit(user=request.user, patient=patient):
            return _refused(request, PermissionDenied(CARERS_ONLY), patient)
        return self._render(request, patient, PatientForm(instance=patient))

    def post(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        if not patient_can_edit(user=request.user, patient=patient):
            return _refused(request, PermissionDenied(CARERS_ONLY), patient)
        heading = str(patient)  # the form writes the submitted values onto the instance while validating
        form = PatientForm(request.POST, instance=patient)
        if form.is_valid():
            try:
                patient_update(patient=patient, updated_by=request.user, **form.cleaned_data)
            except PermissionDenied as error:
                return _refused(request, error, patient)
            except ValidationError as error:
                form.add_error(None, error)
            else:
                messages.success(request, "The patient's record is saved.")
                return redirect("diagnosis:patient_detail", pk=patient.pk)
        return self._render(request, patient, form, heading=heading, status=400)

    @staticmethod
    def _render(request, patient, form, heading=None, status=200):
        """The form, on a read or refused with the submitted values: either way the record was shown."""
        record_access(patient, what="patient edit page")
        context = {"form": form, "patient": patient, "heading": heading or str(patient)}
        return render(request, "diagnosis/patient_form.html", context, status=status)


class PatientDetailView(View):
    def get(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        return self.render_page(request, patient)

    @staticmethod
    def render_page(request, patient, share_form=None, status=200):
        """The page, on a read or with a refused share form: either way the record was shown."""
        record_access(patient, what="patient page")
        trend = patient_trend(patient=patient)
        context = {
            "patient": patient,
            "scans": patient_scan_history(patient=patient, user=request.user),
            "trend": trend,
            "positive_name": trend.positive_name if trend else positive_names(()),
            "upload_form": ScanUploadForm(),
            "may": patient_actions_for(user=request.user, patient=patient),
            "shared_with": patient.shared_with.order_by("full_name", "email"),
            "share_form": share_form or PatientShareForm(),
        }
        return render(request, "diagnosis/patient_detail.html", context, status=status)


def _refused(request, error: PermissionDenied, patient):
    """Someone who may see the patient but not do this: back to the patient's page, saying why."""
    messages.error(request, str(error))
    return redirect("diagnosis:patient_detail", pk=patient.pk)


@require_POST
def patient_share_submit(request, pk: int):
    patient = patient_get_for_user(user=request.user, pk=pk)
    form = PatientShareForm(request.POST)
    if form.is_valid():
        try:
            doctor = patient_share(patient=patient, doctor_email=form.cleaned_data["email"], shared_by=request.user)
        except PermissionDenied as error:
            return _refused(request, error, patient)
        except ValidationError as error:
            form.add_error(None, error)
        else:
            messages.success(request, f"{patient.full_name} is now shared with {doctor.email}.")
            return redirect("diagnosis:patient_detail", pk=patient.pk)
    return PatientDetailView.render_page(request, patient, share_form=form, status=400)


@require_POST
def patient_unshare_submit(request, pk: int, doctor_pk: int):
    patient = patient_get_for_user(user=request.user, pk=pk)
    doctor = get_object_or_404(patient.shared_with, pk=doctor_pk)
    try:
        patient_unshare(patient=patient, doctor=doctor, shared_by=request.user)
    except PermissionDenied as error:
        return _refused(request, error, patient)
    messages.success(request, f"{patient.full_name} is no longer shared with {doctor.email}.")
    return redirect("diagnosis:patient_detail", pk=patient.pk)


class PatientDeleteView(View):
    def get(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        if not patient_can_delete(user=request.user, patient=patient):
            return _refused(request, PermissionDenied(CREATOR_ONLY.format(action="delete it")), patient)
        record_access(patient, what="patient delete page")
        context = {"patient": patient, "scan_count": patient.scans.count()}
        return render(request, "diagnosis/patient_confirm_delete.html", context)

    def post(self, request, pk: int):
        patient = patient_get_for_user(user=request.user, pk=pk)
        try:
            patient_delete(patient=patient, deleted_by=request.user)
        except PermissionDenied as error:
            return _refused(request, error, patient)
        messages.success(request, f"{patient.full_name} (MRN {patient.mrn}) and their scans are deleted.")
        return redirect("diagnosis:patient_list")


class ScanDeleteView(View):
    """For a scan uploaded to the wrong patient; the uploader or the patient's creator may delete it."""

    def get(self, request, pk: int):
        scan = scan_get_for_user(user=request.user, pk=pk)
        if not scan_can_delete(user=request.user, scan=scan):
            return _refused(request, PermissionDenied(UPLOADER_OR_CREATOR_ONLY), scan.patient)
        record_access(scan, what="scan delete page")
        return render(request, "diagnosis/scan_confirm_delete.html", {"scan": scan, "patient": scan.patient})

    def post(self, request, pk: int):
        scan = scan_get_for_user(user=request.user, pk=pk)
        try:
            scan_delete(scan=scan, deleted_by=request.user)
        except PermissionDenied as error:
            return _refused(request, error, scan.patient)
        messages.success(request, f"Scan {pk} of {scan.patient.full_name} is deleted.")
        return redirect("diagnosis:patient_detail", pk=scan.patient.pk)
