"""The web chat page in headless Chromium against a real server on loopback: ask, watch the answer arrive,
see citations as links with the path and cost beside the answer, open a citation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from api_support import LEAVE_QUESTION, build_corpus, key, live_server

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMEDRIVER = Path("/usr/bin/chromedriver")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

if not CHROMEDRIVER.exists() or not (shutil.which("chromium") or shutil.which("chromium-browser")):
    pytest.skip("chromium and chromium-driver are not installed (`make browser`)", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support import expected_conditions as expected  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    settings = build_corpus(tmp_path_factory.mktemp("web"))
    token = key(settings, "webuser", ["everyone"])["Authorization"].removeprefix("Bearer ")
    with live_server(settings) as url:
        yield url, token


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    for flag in FLAGS:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def test_the_page_streams_an_answer_with_citations_path_and_cost(server, browser):
    url, token = server
    browser.get(url + "/")
    assert browser.title == "Penny"
    browser.find_element(By.ID, "key").send_keys(token)
    browser.find_element(By.ID, "question").send_keys(LEAVE_QUESTION)
    browser.find_element(By.ID, "send").click()
    wait = WebDriverWait(browser, 60)
    link = wait.until(expected.presence_of_element_located((By.CSS_SELECTOR, ".turn a.citation")))
    turn = browser.find_element(By.CSS_SELECTOR, ".turn")
    assert turn.find_element(By.CSS_SELECTOR, ".question").text == LEAVE_QUESTION
    assert "25 days" in turn.find_element(By.CSS_SELECTOR, ".text").text
    assert turn.find_element(By.CSS_SELECTOR, ".path").text == "path: passages"
    assert turn.find_element(By.CSS_SELECTOR, ".cost").text.startswith("cost: $")
    assert "Annual Leave Policy" in link.text and "/v1/documents/" in link.get_attribute("href")

    # the ask form is fixed at the bottom of the page: bring the link above it, as a reader scrolls
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", link)
    link.click()  # the page fetches the cited chunk with the key and shows it beside the chat
    wait.until(expected.visibility_of_element_located((By.ID, "source")))
    wait.until(lambda driver: "25 days" in driver.find_element(By.ID, "source-text").text)

    turn.find_element(By.CSS_SELECTOR, ".feedback button[data-rating='up']").click()
    wait.until(lambda driver: "Thanks" in turn.find_element(By.CSS_SELECTOR, ".feedback").text)


def test_a_passage_answer_shows_its_passage_with_the_answering_span_marked(server, browser, tmp_path):
    url, token = server
    browser.get(url + "/")
    field = browser.find_element(By.ID, "key")
    field.clear()
    field.send_keys(token)
    browser.find_element(By.ID, "question").send_keys(LEAVE_QUESTION)
    browser.find_element(By.ID, "send").click()
    wait = WebDriverWait(browser, 60)
    mark = wait.until(expected.visibility_of_element_located((By.CSS_SELECTOR, ".turn:last-child .passage mark")))
    turn = browser.find_elements(By.CSS_SELECTOR, ".turn")[-1]
    passage = turn.find_element(By.CSS_SELECTOR, ".passage").text
    assert "25 days" in mark.text and mark.text in passage and len(passage) > len(mark.text)
    assert mark.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"  # highlighted, not just tagged
    assert turn.find_element(By.CSS_SELECTOR, ".form").text == "form: sentence"
    browser.save_screenshot(str(tmp_path / "passage-span.png"))


def test_an_answer_s_flags_are_shown_with_their_meaning(server, browser):
    """Asked twice, the second answer comes from the cache: its flag is shown as penny.FLAGS explains it."""
    url, token = server
    browser.get(url + "/")
    field = browser.find_element(By.ID, "key")
    field.clear()
    field.send_keys(token)
    wait = WebDriverWait(browser, 60)
    for asked in (1, 2):
        browser.find_element(By.ID, "question").send_keys(LEAVE_QUESTION)
        browser.find_element(By.ID, "send").click()
        wait.until(
            lambda driver, n=asked: (
                len(driver.find_elements(By.CSS_SELECTOR, ".turn .path.passages, .turn .path.cache")) == n
            )
        )
    second = browser.find_elements(By.CSS_SELECTOR, ".turn")[-1]
    wait.until(lambda driver: second.find_elements(By.CSS_SELECTOR, ".flags li[data-flag='cached_from']"))
    shown = second.find_element(By.CSS_SELECTOR, ".flags li[data-flag='cached_from']").text
    assert shown.startswith("served from the answer cache") and shown.endswith("(passages)")


def test_the_page_shows_a_clear_error_for_a_bad_key(server, browser):
    url, _ = server
    browser.get(url + "/")
    browser.execute_script("localStorage.clear()")
    browser.get(url + "/")
    field = browser.find_element(By.ID, "key")
    field.clear()
    field.send_keys("penny_not_a_key")
    browser.find_element(By.ID, "question").send_keys(LEAVE_QUESTION)
    browser.find_element(By.ID, "send").click()
    error = WebDriverWait(browser, 30).until(expected.presence_of_element_located((By.CSS_SELECTOR, ".text.error")))
    assert error.text == "this API key is unknown or revoked (unauthorized)"
