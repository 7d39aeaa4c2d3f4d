"""Thin views: validate with a form, write with a service, render a template."""

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.core.exceptions import ValidationError
from django.shortcuts import redirect
from django.urls import reverse_lazy
from django.utils.decorators import method_decorator
from django.views.generic import FormView, TemplateView

from accounts.forms import DoctorAuthenticationForm, DoctorRegistrationForm
from accounts.services import doctor_register


@method_decorator(login_not_required, name="dispatch")
class RegisterView(FormView):
    template_name = "accounts/register.html"
    form_class = DoctorRegistrationForm
    success_url = reverse_lazy("accounts:registration_pending")

    def dispatch(self, request, *args, **kwargs):
        if request.user.is_authenticated:
            return redirect("home")
        return super().dispatch(request, *args, **kwargs)

    def form_valid(self, form):
        data = form.cleaned_data
        try:
            doctor_register(
                email=data["email"],
                full_name=data["full_name"],
                licence_number=data["licence_number"],
                hospital=data["hospital"],
                password=data["password1"],
            )
        except ValidationError as error:
            form.add_error(None, error)
            return self.form_invalid(form)
        return super().form_valid(form)


@method_decorator(login_not_required, name="dispatch")
class RegistrationPendingView(TemplateView):
    template_name = "accounts/registration_pending.html"


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    authentication_form = DoctorAuthenticationForm
    redirect_authenticated_user = True


class ProfileView(TemplateView):
    template_name = "accounts/profile.html"
