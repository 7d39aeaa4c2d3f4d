"""Staff see every patient and scan here; images come through the same access-checked view as doctors'."""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import FileResponse
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.views.decorators.http import require_GET

from diagnosis.models import Patient, Review, Scan
from diagnosis.monitoring import model_version_monitoring
from diagnosis.services.export import EXPORT_PERMISSION, reviewed_scans_export_zip
from diagnosis.services.patients import EDITABLE_FIELDS, patient_create, patient_update
from mlcore.models import ModelVersion


class ScanInline(admin.TabularInline):
    model = Scan
    extra = 0
    fields = ("uploaded_at", "status", "label", "probability", "model_version")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Patient)
class PatientAdmin(admin.ModelAdmin):
    list_display = ("mrn", "full_name", "date_of_birth", "sex", "created_by", "created_at")
    list_filter = ("sex",)
    search_fields = ("mrn", "full_name")
    readonly_fields = ("created_by", "created_at", "updated_at")
    filter_horizontal = ("shared_with",)
    inlines = [ScanInline]

    def save_model(self, request, obj, form, change):
        """Through the doctors' services: a patient added here is created by the signed-in staff member."""
        fields = {name: form.cleaned_data[name] for name in EDITABLE_FIELDS if name in form.cleaned_data}
        if change:
            patient_update(patient=obj, updated_by=request.user, **fields)
            return
        obj.pk = patient_create(created_by=request.user, **fields).pk
        obj.refresh_from_db()  # the admin goes on with this instance: sharing, the log, the redirect


def _image(scan: Scan, kind: str, width: int) -> str:
    if not getattr(scan, kind):
        return "—"
    url = reverse("diagnosis:scan_image", args=[scan.pk, kind])
    return format_html('<img src="{}" alt="{}" style="max-width:{}px">', url, kind, width)


@admin.register(Scan)
class ScanAdmin(admin.ModelAdmin):
    list_display = ("pk", "thumbnail", "patient", "status", "label", "probability", "model_version", "uploaded_at")
    list_filter = ("status", "label", "file_type", "model_version")
    search_fields = ("patient__mrn", "patient__full_name")
    list_select_related = ("patient", "model_version")
    date_hierarchy = "uploaded_at"
    readonly_fields = (
        "preview_image",
        "heatmap_image",
        "patient",
        "original_filename",
        "file_type",
        "uploaded_by",
        "uploaded_at",
        "status",
        "status_message",
        "attempts",
        "started_at",
        "finished_at",
        "label",
        "probability",
        "threshold",
        "model_version",
        "queue_wait_ms",
        "preprocess_ms",
        "network_ms",
        "total_ms",
        "batch_size",
    )
    exclude = ("image", "preview", "heatmap")
    actions = ["export_training_dataset"]

    def has_add_permission(self, request):
        return False

    def has_export_dataset_permission(self, request) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION)

    def get_urls(self):
        monitoring = self.admin_site.admin_view(require_GET(self.monitoring_view))
        return [
            path("monitoring/<int:version_id>/", monitoring, name="diagnosis_scan_monitoring"),
            *super().get_urls(),
        ]

    def monitoring_view(self, request, version_id: int):
        """A model version's figures against doctors' reviews (linked from its page in the mlcore admin)."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        version = get_object_or_404(ModelVersion, pk=version_id)
        context = self.admin_site.each_context(request) | {
            "title": f"Monitoring of model version {version.name}",
            "opts": self.model._meta,
            "version": version,
            "monitoring": model_version_monitoring(version=version),
        }
        return TemplateResponse(request, "admin/diagnosis/scan/monitoring.html", context)

    @admin.action(description="Export reviewed scans as a training dataset (zip)", permissions=["export_dataset"])
    def export_training_dataset(self, request, queryset):
        """The selected scans reviewed as one of the classes (COVID-19, other pneumonia, normal), laid out
        for ``train_model --data``."""
        archive, summary = reviewed_scans_export_zip(scans=queryset, exported_by=request.user)
        if not summary.written:
            archive.close()
            self.message_user(
                request,
                "Nothing to export: no selected scan is reviewed as COVID-19, other pneumonia or normal. "
                f"{summary.skipped_text()}",
                messages.WARNING,
            )
            return None
        response = FileResponse(
            archive, as_attachment=True, filename=f"reviewed-scans-{timezone.now():%Y%m%d-%H%M%S}.zip"
        )
        response["Cache-Control"] = "private, no-store"
        return response

    @admin.display(description="image")
    def thumbnail(self, scan):
        return _image(scan, "preview", 80)

    @admin.display(description="radiograph")
    def preview_image(self, scan):
        return _image(scan, "preview", 420)

    @admin.display(description="Grad-CAM")
    def heatmap_image(self, scan):
        """The heat layer over the radiograph (inline styles: the admin has no stylesheet of ours)."""
        if not (scan.heatmap and scan.preview):
            return "—"
        preview, heatmap = (reverse("diagnosis:scan_image", args=[scan.pk, kind]) for kind in ("preview", "heatmap"))
        return format_html(
            '<span style="position:relative;display:inline-block;max-width:420px">'
            '<img src="{}" alt="preview" style="display:block;max-width:420px">'
            '<img src="{}" alt="heatmap" style="position:absolute;top:0;left:0;width:100%;height:100%"></span>',
            preview,
            heatmap,
        )


@admin.register(Review)
class ReviewAdmin(admin.ModelAdmin):
    list_display = ("scan", "final_finding", "agrees_with_model", "reviewer", "reviewed_at")
    list_filter = ("final_finding", "agrees_with_model")
    search_fields = ("scan__patient__mrn", "scan__patient__full_name", "reviewer__email")
    list_select_related = ("scan__patient", "reviewer")
    readonly_fields = ("scan", "agrees_with_model", "final_finding", "comment", "reviewer", "reviewed_at")

    def has_add_permission(self, request):
        return False
