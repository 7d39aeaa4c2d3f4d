"""Staff issue API tokens to a user (shown once, then only their digest is kept) and revoke them by deleting."""

import datetime

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.utils import timezone
from knox.models import AuthToken

from interop.models import ApiToken
from interop.services import api_token_issue, api_tokens_revoke

admin.site.unregister(AuthToken)


class ApiTokenIssueForm(forms.ModelForm):
    valid_days = forms.IntegerField(
        min_value=1,
        required=False,
        initial=lambda: settings.API_TOKEN_VALID_DAYS,
        help_text="The token stops working after this many days; leave empty for a token that never expires.",
    )

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # api_token_issue refuses inactive accounts; the form offers only the others.
        self.fields["user"].queryset = self.fields["user"].queryset.filter(is_active=True)

    class Meta:
        model = ApiToken
        fields = ["user"]
        help_texts = {
            "user": "The token reads exactly what this account may see (its own and shared patients; "
            "a staff account sees every patient)."
        }


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    """Tokens are issued through `api_token_issue` and never edited; deleting one revokes it."""

    form = ApiTokenIssueForm
    list_display = ("token_key", "user", "created", "expiry", "expired")
    list_filter = ("created", "expiry")
    search_fields = ("token_key", "user__email", "user__full_name")
    autocomplete_fields = ("user",)
    readonly_fields = ("token_key", "user", "created", "expiry")
    ordering = ("-created",)

    def get_fields(self, request, obj=None):
        return ["user", "valid_days"] if obj is None else ["token_key", "user", "created", "expiry"]

    def get_readonly_fields(self, request, obj=None):
        return () if obj is None else self.readonly_fields

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(boolean=True)
    def expired(self, token: ApiToken) -> bool:
        return token.expiry is not None and token.expiry < timezone.now()

    def save_model(self, request, obj, form, change):
        days = form.cleaned_data["valid_days"]
        issued, token = api_token_issue(
            user=form.cleaned_data["user"], valid_for=datetime.timedelta(days=days) if days else None
        )
        # The admin logs and links the object it saved: make the form's instance the issued token.
        for field in ApiToken._meta.concrete_fields:
            setattr(obj, field.attname, getattr(issued, field.attname))
        obj._state.adding, obj._state.db = False, issued._state.db
        self.message_user(
            request,
            f"API token for {issued.user.email}: {token}  Copy it now: it is not shown again.",
            messages.WARNING,
        )

    def delete_model(self, request, obj):
        api_tokens_revoke(tokens=ApiToken.objects.filter(pk=obj.pk))

    def delete_queryset(self, request, queryset):
        api_tokens_revoke(tokens=queryset)
