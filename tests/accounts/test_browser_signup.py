"""A doctor registers, staff approve in the admin, the doctor signs in: in real headless Chromium."""

import pytest
from selenium.webdriver.common.by import By

from accounts.models import User
from tests.browser import save_screenshot, wait_for_text
from tests.conftest import DOCTOR_PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def fill(browser, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = browser.find_element(By.NAME, name)
        field.clear()
        field.send_keys(value)


def submit(browser) -> None:
    button = browser.find_element(By.CSS_SELECTOR, "main form button[type=submit]")
    browser.execute_script("arguments[0].scrollIntoView({block: 'center', behavior: 'instant'})", button)
    button.click()


def test_register_approve_and_sign_in(browser, live_server, staff_user):
    browser.get(live_server.url + "/accounts/register/")
    save_screenshot(browser, "register")
    fill(
        browser,
        {
            "full_name": "Marie Curie",
            "email": "Marie.Curie@Hospital.example",
            "licence_number": "RCP-0001867",
            "hospital": "Hôpital Lariboisière",
            "password1": "Radium-and-Polonium-1898",
            "password2": "Radium-and-Polonium-1898",
        },
    )
    submit(browser)
    wait_for_text(browser, "h1", "Registration received")

    browser.get(live_server.url + "/accounts/login/")
    fill(browser, {"username": "marie.curie@hospital.example", "password": "Radium-and-Polonium-1898"})
    submit(browser)
    wait_for_text(browser, "main", "awaiting approval")
    save_screenshot(browser, "login-awaiting-approval")

    fill(browser, {"username": staff_user.email, "password": DOCTOR_PASSWORD})
    submit(browser)
    wait_for_text(browser, "nav", staff_user.full_name)
    browser.get(live_server.url + "/admin/accounts/user/?approval=waiting")
    row_checkbox = browser.find_element(By.CSS_SELECTOR, "#result_list input.action-select")
    row_checkbox.click()
    browser.find_element(By.CSS_SELECTOR, "select[name=action] option[value=approve_selected]").click()
    browser.find_element(By.CSS_SELECTOR, "button[name=index]").click()
    wait_for_text(browser, "ul.messagelist", "Approved 1 account(s)")
    assert User.objects.get(email="marie.curie@hospital.example").is_active
    browser.delete_all_cookies()

    browser.get(live_server.url + "/accounts/login/")
    fill(browser, {"username": "Marie.Curie@hospital.example", "password": "Radium-and-Polonium-1898"})
    submit(browser)
    wait_for_text(browser, "nav", "Marie Curie")
    assert browser.current_url == live_server.url + "/"
    wait_for_text(browser, "#worklist-welcome", "Create your first patient")
    save_screenshot(browser, "worklist-new-doctor")
