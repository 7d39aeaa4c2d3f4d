"""The favicon: linked from every page, and /favicon.ico (which browsers ask for on pages naming no icon,
the admin's) leads to it without a sign-in, so no page logs a 404 in the browser's console."""

import pytest
from django.templatetags.static import static
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_favicon_ico_leads_an_anonymous_browser_to_the_svg_icon(client):
    response = client.get("/favicon.ico")

    assert response.status_code == 302
    assert response["Location"] == static("favicon.svg")
    assert "public" in response["Cache-Control"]
    icon = client.get(response["Location"])
    assert icon.status_code == 200
    assert icon["Content-Type"] == "image/svg+xml"
    assert b"<svg" in b"".join(icon.streaming_content)


@pytest.mark.parametrize("name", ["accounts:login", "home"])
def test_pages_link_the_icon(doctor_client, name):
    html = doctor_client.get(reverse(name), follow=True).content.decode()

    assert f'<link rel="icon" href="{static("favicon.svg")}" type="image/svg+xml">' in html


def test_the_admin_pages_name_no_icon_so_browsers_use_favicon_ico(client):
    """Why /favicon.ico must answer: the admin's templates are Django's own."""
    html = client.get(reverse("admin:login")).content.decode()

    assert 'rel="icon"' not in html
    assert client.get("/favicon.ico", follow=True).status_code == 200


@pytest.mark.browser
@pytest.mark.django_db(transaction=True)
def test_no_page_logs_a_missing_favicon_in_the_browser(browser, live_server):
    from tests.browser import console_errors, wait_for_text

    for path, text in [(reverse("admin:login"), "Password"), (reverse("accounts:login"), "Password")]:
        browser.get(live_server.url + path)
        wait_for_text(browser, "body", text)
        browser.get(live_server.url + path)  # the icon is fetched after the first load; its error shows by now

        assert [error for error in console_errors(browser) if "favicon" in error] == []
