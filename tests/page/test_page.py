"""``GET /`` of ``serve --shadow``: the page people on call look at, loaded in a real
headless Chromium. It shows the served version and its stage history, the shadow's
comparison and a chart of the live windows, all read from ``/status``."""

from __future__ import annotations

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.support.rollback import MODEL
from tests.support.shadow import CANDIDATE, PROD, STAGED_MESSAGE


def test_the_page_shows_the_served_version_the_shadow_and_a_chart(served, browser,
                                                                 tmp_path_factory):
    server, answers = served
    assert {status for status, _, _ in answers} == {200}
    browser.get(server.url + "/")
    wait = WebDriverWait(browser, 60)  # bounds a hang only
    text = lambda css: browser.find_element(By.CSS_SELECTOR, css).text  # noqa: E731
    wait.until(lambda b: text("#served-version") == PROD)
    wait.until(lambda b: b.find_elements(By.CSS_SELECTOR, "#chart circle.point.shadow"))
    shot = tmp_path_factory.getbasetemp() / "page" / "serve-page.png"
    shot.parent.mkdir(parents=True, exist_ok=True)
    browser.save_screenshot(str(shot))
    print(f"screenshot of the page: {shot}")

    assert text("#model") == MODEL and text("#status") == "ok"
    assert text("#shadow-version") == CANDIDATE
    agreement = text("#shadow-agreement")
    assert agreement.endswith(" %") and 0 <= float(agreement[:-2]) <= 100
    assert text("#shadow-verdict").split(":")[0] in ("passes", "breaches")
    # one point per window and version on the chart, and the rule's limit drawn
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle.point.prod")) >= 3
    assert len(browser.find_elements(By.CSS_SELECTOR, "#chart circle.point.shadow")) >= 3
    assert browser.find_elements(By.CSS_SELECTOR, "#chart line.limit")
    # the stage history, newest first; a tag's markup is shown as text, never run
    history = browser.find_elements(By.CSS_SELECTOR, "#history tr")
    rows = [[td.text for td in tr.find_elements(By.TAG_NAME, "td")] for tr in history]
    # above it, at most the shadow verdicts this server recorded (marked automatic)
    verdicts = [r for r in rows if r[1] == "shadow (automatic)"]
    cells = rows[len(verdicts)]
    assert all(r[2] == CANDIDATE for r in verdicts) and rows[:len(verdicts)] == verdicts
    assert cells[1:4] == ["assign", CANDIDATE, "staging"] and cells[4] == STAGED_MESSAGE
    assert browser.find_elements(By.CSS_SELECTOR, "#history b, #history script") == []
    assert shot.stat().st_size > 0


def test_the_page_is_self_contained_and_status_backs_it(served):
    server, _ = served
    status, headers, body = server.raw("GET", "/")
    page = body.decode()
    assert status == 200 and headers["content-type"].startswith("text/html")
    assert "connect-src 'self'" in headers["content-security-policy"]
    assert "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "https://" not in page and "<link" not in page and "src=" not in page
    doc = server.get("/status")
    assert (doc["version"], doc["shadow"]["version"]) == (PROD, CANDIDATE)
    assert doc["chart"]["source"] == "shadow" and len(doc["chart"]["windows"]) >= 3
    assert doc["chart"]["thresholds"][0] == {"measure": "alert_rate", "rule": "max",
                                             "limit": 0.05}
    staged = next(e for e in doc["history"] if e["event"] != "shadow")  # after the verdicts
    assert staged["message"] == STAGED_MESSAGE
