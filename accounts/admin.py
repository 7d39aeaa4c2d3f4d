"""Staff manage accounts here; doctors are approved in bulk with an admin action."""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm

from accounts.models import User
from accounts.selectors import doctors_awaiting_approval
from accounts.services import doctors_approve


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")


class UserChangeAdminForm(UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


class AwaitingApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "approval"

    def lookups(self, request, model_admin):
        return [("waiting", "Awaiting approval"), ("approved", "Approved")]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return doctors_awaiting_approval(among=queryset)
        if self.value() == "approved":
            return queryset.filter(is_active=True)
        return queryset


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    ordering = ("-date_joined",)
    list_display = (
        "email",
        "full_name",
        "hospital",
        "licence_number",
        "is_active",
        "is_staff",
        "date_joined",
        "approved_at",
    )
    list_filter = (AwaitingApprovalFilter, "is_active", "is_staff", "is_superuser", "hospital")
    search_fields = ("email", "full_name", "licence_number", "hospital")
    readonly_fields = ("date_joined", "last_login", "approved_at", "approved_by")
    actions = ["approve_selected"]
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Doctor", {"fields": ("full_name", "licence_number", "hospital")}),
        ("Approval", {"fields": ("is_active", "approved_at", "approved_by")}),
        ("Permissions", {"fields": ("is_staff", "is_superuser", "groups", "user_permissions")}),
        ("Dates", {"fields": ("date_joined", "last_login")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "full_name", "password1", "password2"),
            },
        ),
    )

    @admin.action(description="Approve selected doctors", permissions=["change"])
    def approve_selected(self, request, queryset):
        approved = doctors_approve(doctors=queryset, approved_by=request.user)
        self.message_user(
            request,
            f"Approved {approved} account(s); each doctor was e-mailed.",
            messages.SUCCESS,
        )
