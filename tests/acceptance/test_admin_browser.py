"""A support person in a real browser: log into /admin/, find an undelivered event, retry it.

Headless Chromium (Debian's ``chromium``) driven through ``chromedriver`` (``chromium-driver``)
by Selenium, against a real server (pytest-django's ``live_server``) and a real receiver.
``make test`` installs both packages with apt when it can (scripts/test.sh); without them the
test is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

from tests.conftest import make_user
from tests.receivers import LOOPBACK_NETWORKS, Receiver, make_events, make_webhook
from ulak.models import WebhookEvent

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver") or (
    "/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None
)
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,900",
)


@pytest.fixture
def browser():
    webdriver = pytest.importorskip(
        "selenium.webdriver", reason="selenium is not installed (pip install -e '.[test]')"
    )
    if not CHROMIUM or not CHROMEDRIVER:
        pytest.skip(
            "Chromium or chromedriver is missing (Debian packages chromium, chromium-driver; "
            "make test installs them with apt when run as root): the browser test is SKIPPED"
        )
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="ulak-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.mark.django_db(transaction=True)
def test_a_support_person_retries_an_undelivered_event_in_the_admin(browser, live_server, settings):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.select import Select
    from selenium.webdriver.support.wait import WebDriverWait

    settings.ULAK_ALLOWED_NETWORKS = LOOPBACK_NETWORKS
    make_user("support", superuser=True)
    with Receiver() as receiver:
        webhook = make_webhook(receiver.url("/ok"), event_type="package.status.shipped")
        [undelivered] = make_events(
            webhook,
            next_attempt_at=None,
            is_exhausted=True,
            retry_count=18,
            response_http_status=500,
            response_content="b'500 Internal Server Error'",
        )
        [delivered] = make_events(webhook, delivered=True, next_attempt_at=None, retry_count=1)

        # Log in.
        browser.get(f"{live_server.url}/admin/")
        browser.find_element(By.NAME, "username").send_keys("support")
        browser.find_element(By.NAME, "password").send_keys("pw-support")
        browser.find_element(By.CSS_SELECTOR, "input[type=submit], button[type=submit]").click()
        WebDriverWait(browser, 10).until(expected_conditions.title_contains("Site administration"))

        # Find the undelivered events: the events list, filtered by delivered = No.
        browser.get(f"{live_server.url}/admin/ulak/webhookevent/")
        browser.find_element(By.CSS_SELECTOR, "a[href='?delivered__exact=0']").click()
        WebDriverWait(browser, 10).until(expected_conditions.url_contains("delivered__exact=0"))
        rows = browser.find_elements(By.CSS_SELECTOR, "input[name='_selected_action']")
        assert [row.get_attribute("value") for row in rows] == [str(undelivered.id)]
        assert "package.status.shipped" in browser.page_source

        # Select it and run "Retry now".
        rows[0].click()
        Select(browser.find_element(By.NAME, "action")).select_by_value("retry_now")
        browser.find_element(By.CSS_SELECTOR, "button[name='index']").click()
        message = WebDriverWait(browser, 20).until(
            expected_conditions.presence_of_element_located(
                (By.CSS_SELECTOR, "ul.messagelist li.success")
            )
        )
        assert message.text == "1 delivered, 0 failed, 0 already delivered."
        assert len(receiver.received("/ok")) == 1

    undelivered.refresh_from_db()
    assert undelivered.delivered is True and undelivered.retry_count == 19
    assert undelivered.response_content == "b'ok'"
    delivered.refresh_from_db()
    assert delivered.retry_count == 1
    assert not WebhookEvent.objects.filter(delivered=False).exists()
