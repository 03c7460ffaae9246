"""The console as an operator sees it in the browser: pages opened, forms filled and buttons
pressed, each step waiting (bounded) for the page it leads to; ``shoot`` keeps a screenshot."""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import urlsplit

from selenium.common.exceptions import WebDriverException
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.wait import WebDriverWait

SIZE = (1280, 900)
WAIT = 15.0
"""Seconds a step may take: a page load, a replay at the console's 10 messages/s."""
_FORGE = """
const [to, fields] = arguments;
const token = document.querySelector("input[name='csrf']");
const form = Object.assign(document.createElement('form'), {method: 'post', action: to});
for (const [name, value] of Object.entries({...fields, csrf: token ? token.value : ''})) {
  form.appendChild(Object.assign(document.createElement('input'), {type: 'hidden', name, value}));
}
form.appendChild(Object.assign(document.createElement('button'), {id: 'forged'}));
document.body.appendChild(form);
"""


class Console:
    def __init__(self, driver: WebDriver, url: str, shots: Path) -> None:
        self.driver = driver
        self.url = url
        self.shots = shots

    def open(self, path: str) -> int:
        """Open ``path`` of the console; the HTTP status it was answered with."""
        self.driver.get(self.url + path)
        return self.status()

    def status(self) -> int:
        """The HTTP status of the page shown (the Navigation Timing entry's)."""
        status = self.driver.execute_script(
            "return performance.getEntriesByType('navigation')[0].responseStatus")
        assert isinstance(status, int)
        return status

    @property
    def path(self) -> str:
        return urlsplit(self.driver.current_url).path

    def log_in(self, token: str) -> None:
        self.open("/login")
        self.driver.delete_all_cookies()
        self.open("/login")
        self.find("token").send_keys(token)
        self.submit(self.find("login"))
        assert self.path != "/login", self.text()

    def find(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def has(self, element_id: str) -> bool:
        return bool(self.driver.find_elements(By.ID, element_id))

    def submit(self, button: WebElement) -> None:
        """Press ``button`` and wait until the page it leads to has replaced this one (a new
        page has a new ``window``: the mark set on this one is gone; errors while the
        browser is between the two are waited out)."""
        self.driver.execute_script("window.leaving = true")
        button.click()
        WebDriverWait(self.driver, WAIT, ignored_exceptions=(WebDriverException,)).until(
            lambda d: d.execute_script(
                "return window.leaving === undefined && document.readyState === 'complete'"))

    def filter(self, **fields: str) -> None:
        """Fill the parked list's filter form with ``fields`` (the others emptied) and apply."""
        for box in self.driver.find_elements(By.CSS_SELECTOR, "form[method='get'] input"):
            box.clear()
            name = box.get_attribute("name")
            if name in fields:
                box.send_keys(fields[name])
        self.submit(self.find("filter"))

    def wait_count(self, expected: int, **fields: str) -> None:
        """Filter with ``fields`` again until the list says ``expected`` messages (an action
        runs in the background), within ``WAIT`` seconds."""
        deadline = time.monotonic() + WAIT
        self.filter(**fields)
        while self.count() != expected:
            assert time.monotonic() < deadline, f"not {expected}: {self.text()}"
            time.sleep(0.2)
            self.filter(**fields)

    def follow(self, text: str) -> None:
        """Open the link whose text is exactly ``text``."""
        self.submit(self.driver.find_element(By.LINK_TEXT, text))

    def forge(self, to: str, **fields: str) -> None:
        """Post ``fields`` to ``to`` from a form made in the page, as a hand-made request
        would: with the session's CSRF token when the page carries one."""
        self.driver.execute_script(_FORGE, to, fields)
        self.submit(self.find("forged"))

    def text(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "body").text

    def heading(self) -> str:
        return self.driver.find_element(By.TAG_NAME, "h1").text

    def count(self) -> int:
        """How many messages the parked list says its filter selects."""
        found = re.search(r"(\d+) message\(s\)", self.text())
        assert found, self.text()
        return int(found.group(1))

    def shoot(self, name: str) -> None:
        """Keep the page as ``<shots>/<name>.png`` (overwritten by every run)."""
        self.shots.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(self.shots / f"{name}.png"))
