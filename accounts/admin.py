"""Staff manage accounts here; doctors are approved in bulk with an admin action.

Nobody grants more than they hold: only a superuser makes superusers, a permission (or a group) is
given only by someone who holds it, and an account is changed only by someone who holds all its rights.
Approving doctors is a permission of its own, with a page of its own, and grants nothing else.
"""

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.contrib.auth.models import Group, Permission
from django.core.exceptions import ValidationError

from accounts.models import DoctorRegistration, User
from accounts.selectors import doctors_awaiting_approval, permissions_not_held, user_can_administer
from accounts.services import APPROVE_PERMISSION, doctors_approve


def _refuse_grants_beyond(editor, granted: set[Permission], field: str) -> None:
    refused = permissions_not_held(user=editor, permissions=granted)
    if refused:
        names = ", ".join(sorted(f"{p.content_type.app_label}.{p.codename}" for p in refused))
        raise ValidationError({field: f"You can grant only permissions you hold yourself; not: {names}."})


class UserCreationAdminForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "full_name")


class UserChangeAdminForm(UserChangeForm):
    editor: User  # the signed-in staff member, set by UserAdmin.get_form for each request

    class Meta:
        model = User
        fields = "__all__"

    def clean(self):
        cleaned = super().clean()
        if "user_permissions" in cleaned:
            granted = set(cleaned["user_permissions"]) - set(self.instance.user_permissions.all())
            _refuse_grants_beyond(self.editor, granted, "user_permissions")
        if "groups" in cleaned:
            groups = set(cleaned["groups"]) - set(self.instance.groups.all())
            through_groups = set(Permission.objects.filter(group__in=groups).select_related("content_type"))
            _refuse_grants_beyond(self.editor, through_groups, "groups")
        return cleaned


class GroupAdminForm(forms.ModelForm):
    editor: User  # set by GroupAdmin.get_form

    def clean(self):
        cleaned = super().clean()
        if "permissions" in cleaned:
            before = set(self.instance.permissions.all()) if self.instance.pk else set()
            _refuse_grants_beyond(self.editor, set(cleaned["permissions"]) - before, "permissions")
        return cleaned


class ApprovesDoctors:
    """The approval action, offered only to holders of accounts.approve_doctor."""

    def has_approve_doctor_permission(self, request) -> bool:
        return request.user.has_perm(APPROVE_PERMISSION)

    @admin.action(description="Approve selected doctors", permissions=["approve_doctor"])
    def approve_selected(self, request, queryset):
        selected = queryset.count()
        approved = doctors_approve(doctors=queryset, approved_by=request.user)
        self.message_user(
            request,
            f"Approved {approved} account(s); each doctor was e-mailed.",
            messages.SUCCESS,
        )
        if approved < selected:
            self.message_user(
                request,
                f"{selected - approved} selected account(s) were not awaiting approval and are unchanged.",
                messages.WARNING,
            )


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
class UserAdmin(ApprovesDoctors, DjangoUserAdmin):
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

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.editor = request.user
        return form

    def get_readonly_fields(self, request, obj=None):
        readonly = super().get_readonly_fields(request, obj)
        return readonly if request.user.is_superuser else (*readonly, "is_superuser")

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or user_can_administer(editor=request.user, account=obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (obj is None or user_can_administer(editor=request.user, account=obj))


@admin.register(DoctorRegistration)
class DoctorRegistrationAdmin(ApprovesDoctors, admin.ModelAdmin):
    """Approvers see who waits and approve them; they can neither open nor change any account."""

    list_display = ("email", "full_name", "licence_number", "hospital", "date_joined")
    list_display_links = None
    search_fields = ("email", "full_name", "licence_number", "hospital")
    fields = list_display
    ordering = ("date_joined",)
    actions = ["approve_selected"]

    def get_queryset(self, request):
        return DoctorRegistration.objects.filter(pk__in=doctors_awaiting_approval().values("pk"))

    def has_view_permission(self, request, obj=None):
        return request.user.has_perm(APPROVE_PERMISSION)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


admin.site.unregister(Group)


@admin.register(Group)
class GroupAdmin(DjangoGroupAdmin):
    form = GroupAdminForm

    def get_form(self, request, obj=None, **kwargs):
        form = super().get_form(request, obj, **kwargs)
        form.editor = request.user
        return form
