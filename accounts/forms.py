"""Forms for registration and sign-in; they validate input, the services write."""

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import (
    password_validators_help_text_html,
    validate_password,
)
from django.core.exceptions import ValidationError

from accounts.models import User, normalize_email_address
from accounts.selectors import doctor_awaiting_approval_with_password

AWAITING_APPROVAL_MESSAGE = (
    "Your account is awaiting approval by a staff member. You will receive an e-mail as soon as you can sign in."
)


class DoctorRegistrationForm(forms.Form):
    full_name = forms.CharField(max_length=200, label="Full name")
    email = forms.EmailField(label="E-mail address", help_text="You sign in with this address.")
    licence_number = forms.CharField(max_length=50, label="Medical licence number")
    hospital = forms.CharField(max_length=200, label="Hospital")
    password1 = forms.CharField(
        label="Password",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validators_help_text_html(),
    )
    password2 = forms.CharField(
        label="Password again",
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_email(self) -> str:
        email = normalize_email_address(self.cleaned_data["email"])
        if User.objects.filter(email=email).exists():
            raise ValidationError("An account with this e-mail address already exists.", code="duplicate_email")
        return email

    def clean_licence_number(self) -> str:
        licence_number = self.cleaned_data["licence_number"].strip()
        if not licence_number:
            raise ValidationError("Enter your medical licence number.", code="required")
        return licence_number

    def clean(self):
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2 and password1 != password2:
            self.add_error("password2", ValidationError("The two passwords differ.", code="mismatch"))
        elif password1:
            candidate = User(
                email=cleaned.get("email", ""),
                full_name=cleaned.get("full_name", ""),
                licence_number=cleaned.get("licence_number", ""),
                hospital=cleaned.get("hospital", ""),
            )
            try:
                validate_password(password1, user=candidate)
            except ValidationError as error:
                self.add_error("password1", error)
        return cleaned


class DoctorAuthenticationForm(AuthenticationForm):
    """Sign-in by e-mail; tells an unapproved doctor why, once the password is proven right."""

    username = forms.EmailField(
        label="E-mail address",
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    error_messages = {
        **AuthenticationForm.error_messages,
        "invalid_login": "The e-mail address and password do not match an account.",
        "inactive": AWAITING_APPROVAL_MESSAGE,
    }

    def clean(self):
        try:
            return super().clean()
        except ValidationError as error:
            if error.code == "invalid_login" and self._is_awaiting_approval():
                raise ValidationError(self.error_messages["inactive"], code="inactive") from error
            raise

    def _is_awaiting_approval(self) -> bool:
        if self.request is not None and getattr(self.request, "axes_locked_out", False):
            return False
        email, password = self.cleaned_data.get("username"), self.cleaned_data.get("password")
        if not email or not password:
            return False
        return doctor_awaiting_approval_with_password(email=email, password=password) is not None
