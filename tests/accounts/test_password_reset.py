import re

import pytest
from django.core import mail
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_password_reset_mails_a_working_link(client, doctor):
    response = client.post(reverse("accounts:password_reset"), {"email": doctor.email.upper()})

    assert response.status_code == 302
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == [doctor.email]
    link = re.search(r"https?://[^/\s]+(/accounts/password/reset/\S+/)", message.body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert form_page.context["validlink"]
    set_password_url = form_page.redirect_chain[-1][0]

    done = client.post(
        set_password_url,
        {"new_password1": "Brand-New-Secret-42", "new_password2": "Brand-New-Secret-42"},
    )
    assert done.status_code == 302
    doctor.refresh_from_db()
    assert doctor.check_password("Brand-New-Secret-42")

    reused = client.get(link, follow=True)
    assert not reused.context["validlink"]
    assert "invalid or has already been used" in reused.content.decode()


def test_password_reset_sends_nothing_for_unknown_or_unapproved_accounts(client, make_doctor):
    unapproved = make_doctor(email="waiting@hospital.example", active=False)

    for email in ("nobody@hospital.example", unapproved.email):
        response = client.post(reverse("accounts:password_reset"), {"email": email})
        assert response.status_code == 302

    assert not mail.outbox
