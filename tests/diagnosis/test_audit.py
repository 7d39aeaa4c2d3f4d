"""The audit log: every read and change of a patient or scan, with who, when and from where; read-only."""

import pytest
from auditlog.models import LogEntry
from django.urls import reverse

from diagnosis.models import Patient

pytestmark = pytest.mark.django_db


def entries_for(instance):
    return LogEntry.objects.get_for_object(instance).order_by("timestamp", "pk")


def test_creating_a_patient_is_logged_with_the_doctor_and_the_address(doctor_client, doctor):
    response = doctor_client.post(
        reverse("diagnosis:patient_create"),
        {"mrn": "MRN-77", "full_name": "Rosalind Franklin", "sex": "F"},
        REMOTE_ADDR="10.1.2.3",
    )
    assert response.status_code == 302
    patient = Patient.objects.get(mrn="MRN-77")
    entry = entries_for(patient).get(action=LogEntry.Action.CREATE)
    assert entry.actor == doctor
    assert entry.remote_addr == "10.1.2.3"
    assert entry.changes_dict["full_name"] == [None, "Rosalind Franklin"]


def test_a_change_keeps_the_value_before_and_after(patient):
    patient.full_name = "Alan M. Turing"
    patient.save()
    entry = entries_for(patient).filter(action=LogEntry.Action.UPDATE).get()
    assert entry.changes_dict["full_name"] == ["Alan Turing", "Alan M. Turing"]


def test_opening_a_patient_page_is_logged_as_a_read(doctor_client, doctor, patient):
    doctor_client.get(reverse("diagnosis:patient_detail", args=[patient.pk]), REMOTE_ADDR="10.9.8.7")
    entry = entries_for(patient).get(action=LogEntry.Action.ACCESS)
    assert (entry.actor, entry.remote_addr, entry.additional_data) == (doctor, "10.9.8.7", {"read": "patient page"})


def test_every_image_download_is_logged(doctor_client, doctor, diagnosed_scan):
    for kind in ("preview", "heatmap", "heatmap"):
        response = doctor_client.get(reverse("diagnosis:scan_image", args=[diagnosed_scan.pk, kind]))
        assert response.status_code == 200
    reads = [entry.additional_data["read"] for entry in entries_for(diagnosed_scan).filter(action=3)]
    assert reads == ["preview image", "heatmap image", "heatmap image"]


def test_a_refused_read_is_not_logged_as_a_read(client, make_doctor, diagnosed_scan):
    client.force_login(make_doctor(email="other@hospital.example"))
    assert client.get(reverse("diagnosis:scan_image", args=[diagnosed_scan.pk, "preview"])).status_code == 404
    assert not entries_for(diagnosed_scan).filter(action=LogEntry.Action.ACCESS).exists()


def test_a_forged_forwarded_for_header_is_ignored_without_a_declared_proxy(doctor_client, patient):
    doctor_client.get(
        reverse("diagnosis:patient_detail", args=[patient.pk]), REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4"
    )
    assert entries_for(patient).get(action=LogEntry.Action.ACCESS).remote_addr == "10.0.0.5"


def test_behind_a_declared_proxy_the_client_address_is_the_one_it_forwards(doctor_client, patient, settings):
    settings.TRUSTED_PROXY_COUNT = 1
    doctor_client.get(
        reverse("diagnosis:patient_detail", args=[patient.pk]),
        REMOTE_ADDR="10.0.0.1",
        HTTP_X_FORWARDED_FOR="6.6.6.6, 192.0.2.44",
    )
    assert entries_for(patient).get(action=LogEntry.Action.ACCESS).remote_addr == "192.0.2.44"


def test_deleting_a_patient_is_logged_with_what_was_deleted(patient):
    pk = patient.pk
    patient.delete()
    entry = LogEntry.objects.get(object_pk=str(pk), action=LogEntry.Action.DELETE)
    assert entry.changes_dict["mrn"] == ["MRN-0001", None]


def test_staff_read_the_log_in_the_admin_but_can_neither_change_nor_delete_it(staff_client, patient):
    entry = entries_for(patient).first()
    changelist = staff_client.get(reverse("admin:auditlog_logentry_changelist"))
    assert changelist.status_code == 200
    assert "Alan Turing" in changelist.content.decode()
    assert staff_client.get(reverse("admin:auditlog_logentry_add")).status_code == 403
    assert staff_client.get(reverse("admin:auditlog_logentry_delete", args=[entry.pk])).status_code == 403
    detail = staff_client.post(reverse("admin:auditlog_logentry_change", args=[entry.pk]), {"object_repr": "x"})
    assert detail.status_code == 403
    bulk = staff_client.post(
        reverse("admin:auditlog_logentry_changelist"),
        {"action": "delete_selected", "_selected_action": [entry.pk]},
    )
    assert bulk.status_code in (200, 302)
    assert LogEntry.objects.filter(pk=entry.pk).exists()
