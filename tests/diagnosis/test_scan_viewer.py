"""The scan viewer and the printable report in real headless Chromium: heatmap opacity, zoom, one A4 page."""

import base64
import re

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

from diagnosis.models import Review, Scan
from tests.browser import save_screenshot, wait_for_text
from tests.diagnosis.test_scan_page import sign_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def images_loaded(browser, *ids: str) -> None:
    script = "return arguments[0].every((id) => document.getElementById(id).naturalWidth > 0)"
    WebDriverWait(browser, 20).until(lambda driver: driver.execute_script(script, list(ids)))


def heatmap_style(browser, prop: str) -> str:
    return browser.execute_script(f"return getComputedStyle(document.getElementById('scan-heatmap')).{prop}")


def stage_transform(browser) -> str:
    return browser.find_element(By.ID, "scan-stage").get_attribute("style")


def test_the_opacity_slider_and_the_toggle_change_the_heatmap(browser, live_server, doctor, scan):
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    images_loaded(browser, "scan-preview", "scan-heatmap")
    assert heatmap_style(browser, "opacity") == "1"

    slider = browser.find_element(By.ID, "heatmap-opacity")
    slider.send_keys(Keys.HOME)
    assert heatmap_style(browser, "opacity") == "0"
    slider.send_keys(*[Keys.ARROW_RIGHT] * 8)
    assert heatmap_style(browser, "opacity") == "0.4"
    assert browser.find_element(By.ID, "heatmap-opacity-value").text == "40%"

    browser.find_element(By.CSS_SELECTOR, "label[for=heatmap-toggle]").click()
    assert heatmap_style(browser, "visibility") == "hidden"
    assert not slider.is_enabled()


def test_zoom_buttons_and_keys_transform_both_images_together(browser, live_server, doctor, scan):
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    images_loaded(browser, "scan-preview", "scan-heatmap")
    assert "scale(1)" in stage_transform(browser)
    assert not browser.find_element(By.ID, "zoom-out").is_enabled()

    browser.find_element(By.ID, "zoom-in").click()
    browser.find_element(By.ID, "zoom-in").click()

    assert "scale(1.5625)" in stage_transform(browser)
    assert browser.find_element(By.ID, "zoom-level").text == "156%"
    centred = stage_transform(browser)
    browser.find_element(By.ID, "scan-viewport").send_keys(Keys.ARROW_LEFT)
    assert stage_transform(browser) != centred
    assert "scale(1.5625)" in stage_transform(browser)
    save_screenshot(browser, "scan-viewer-zoomed")

    browser.find_element(By.ID, "zoom-reset").click()
    assert stage_transform(browser) == "transform: translate(0px, 0px) scale(1);"


def test_the_scan_page_on_a_desktop_and_a_tablet(browser, live_server, doctor, scan):
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    images_loaded(browser, "scan-preview", "scan-heatmap")
    assert "about 49 in 100 have COVID-19" in browser.find_element(By.ID, "reading-explanation").text
    save_screenshot(browser, "scan-viewer")

    browser.set_window_size(820, 1180)
    assert browser.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    save_screenshot(browser, "scan-viewer-tablet")


def test_the_poller_fills_in_the_reading_when_a_pending_scan_is_done(browser, live_server, doctor, scan):
    done = {field: getattr(scan, field) for field in ("label", "probability", "model_version", "preview", "heatmap")}
    Scan.objects.filter(pk=scan.pk).update(
        status="pending", label="", probability=None, model_version=None, preview="", heatmap=""
    )
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/")
    wait_for_text(browser, "#scan-status", "Pending")
    assert not browser.find_element(By.ID, "scan-report-link").is_displayed()

    Scan.objects.filter(pk=scan.pk).update(status="done", **done)

    wait_for_text(browser, "#scan-status", "Done")
    assert "about 49 in 100 have COVID-19" in browser.find_element(By.ID, "reading-explanation").text
    assert browser.find_element(By.ID, "reading-ppv").text == "48.6% (range 32.7% to 64.5%)"
    assert browser.find_element(By.ID, "timing-total").text == "170 ms"
    assert browser.find_element(By.ID, "threshold-marker").get_attribute("style") == "left: 70%;"
    assert browser.find_element(By.ID, "scan-report-link").is_displayed()
    images_loaded(browser, "scan-preview", "scan-heatmap")


def test_the_report_prints_on_one_a4_page(browser, live_server, doctor, scan):
    Review.objects.create(
        scan=scan,
        agrees_with_model=True,
        final_finding="COVID",
        comment="Bilateral peripheral ground-glass opacities, lower zones; consistent with COVID-19 pneumonia. "
        "No effusion. Compare with the admission film and repeat if oxygen requirement rises.",
        reviewer=doctor,
    )
    sign_in(browser, live_server, doctor)
    browser.get(f"{live_server.url}/scans/{scan.pk}/report/")
    images_loaded(browser, "report-preview", "report-heatmap")
    save_screenshot(browser, "scan-report")
    browser.execute_cdp_cmd("Emulation.setEmulatedMedia", {"media": "print"})
    assert not browser.find_element(By.CSS_SELECTOR, "[data-action=print]").is_displayed()
    browser.set_window_size(703, 1500)  # A4 less 12 mm margins, at 96 dpi, and some more to see any overflow
    save_screenshot(browser, "scan-report-print")

    pdf = base64.b64decode(
        browser.execute_cdp_cmd("Page.printToPDF", {"preferCSSPageSize": True, "printBackground": True})["data"]
    )

    assert pdf.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page(?!s)", pdf)) == 1
