"""Staff see what came in from the PACS and what went back, with each send's attempts and last error."""

from django.contrib import admin, messages

from pacs.models import ReceivedInstance, ResultSend
from pacs.services.results import result_send_resend


@admin.register(ReceivedInstance)
class ReceivedInstanceAdmin(admin.ModelAdmin):
    list_display = ("sop_instance_uid", "calling_ae_title", "scan", "received_at")
    search_fields = ("sop_instance_uid", "study_instance_uid", "scan__patient__mrn")
    list_filter = ("calling_ae_title",)
    readonly_fields = [field.name for field in ReceivedInstance._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(ResultSend)
class ResultSendAdmin(admin.ModelAdmin):
    list_display = ("scan", "state", "attempts", "destination", "last_attempt_at", "sent_at", "last_error")
    list_filter = ("state",)
    search_fields = ("scan__patient__mrn", "study_instance_uid", "sr_sop_instance_uid")
    list_select_related = ("scan__patient",)
    readonly_fields = [field.name for field in ResultSend._meta.fields]
    actions = ["resend"]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Re-send the SR and heatmap of the selected scans to the PACS")
    def resend(self, request, queryset):
        for send in queryset:
            result_send_resend(send=send)
        self.message_user(request, f"Queued {queryset.count()} send(s) again.", messages.SUCCESS)
