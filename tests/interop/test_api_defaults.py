"""An API view that names no authentication is still token-only: a browser session never reaches it."""

import pytest
from django.test import RequestFactory
from rest_framework.response import Response
from rest_framework.views import APIView

pytestmark = pytest.mark.django_db


class PlainApiView(APIView):
    def get(self, request):
        return Response({"user": request.user.email})


def test_an_api_view_without_its_own_settings_refuses_a_signed_in_browser_session(staff_user):
    request = RequestFactory().get("/api/plain")
    request.user = staff_user  # what the session middleware sets for a signed-in browser
    request._dont_enforce_csrf_checks = True

    response = PlainApiView.as_view()(request)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Bearer"


def test_it_answers_a_token(staff_user, issue_token):
    request = RequestFactory().get("/api/plain", HTTP_AUTHORIZATION=f"Bearer {issue_token(staff_user)}")

    response = PlainApiView.as_view()(request)
    response.render()

    assert (response.status_code, response["Content-Type"]) == (200, "application/json")
