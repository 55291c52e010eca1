"""The generated leaderboard in a real headless Chromium (Debian's chromium + chromium-driver, driven
by selenium): every table with its rows, sorting reorders rows, images load, no console errors.
`make test` installs the browser (scripts/install_browser.sh); if it cannot start, this test FAILS."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

from dcbench.results import ResultStore
from reports.site import write_site
from reports.tables import PER_K_LABEL, TABLE_IDS, build_tables

BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def _binary(names: tuple[str, ...], what: str) -> str:
    for name in names:
        if found := shutil.which(name):
            return found
    pytest.fail(f"no {what} on PATH (looked for {', '.join(names)}): run scripts/install_browser.sh")


@pytest.fixture(scope="module")
def browser() -> Iterator[webdriver.Chrome]:
    options = Options()
    options.binary_location = _binary(BROWSERS, "Chromium")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--window-size=1400,1000", "--allow-file-access-from-files"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=_binary(("chromedriver",), "chromedriver"))
    try:
        driver = webdriver.Chrome(options=options, service=service)
    except Exception as err:  # noqa: BLE001 - the reason must reach the report, not a skip
        pytest.fail(f"the browser could not start: {type(err).__name__}: {err}")
    yield driver
    driver.quit()


def _column(table, index: int, rows: str = "tbody tr") -> list[str]:
    return [row.find_elements(By.TAG_NAME, "td")[index].text
            for row in table.find_elements(By.CSS_SELECTOR, rows)]


def test_leaderboard_in_a_real_browser(browser: webdriver.Chrome, tmp_path: Path, site_store: Path,
                                       pretrain_log: Path) -> None:
    frame = ResultStore(site_store).read()
    index = write_site(frame, tmp_path / "site", pretrain_logs={"dc": pretrain_log})
    browser.get(index.resolve().as_uri())
    assert browser.title == "deepcluster-bench leaderboard"

    expected = {t.table_id: len(t.frame) for t in build_tables(frame)}
    for table_id in TABLE_IDS:
        table = browser.find_element(By.CSS_SELECTOR, f'table[data-table="{table_id}"]')
        assert len(table.find_elements(By.CSS_SELECTOR, "tbody tr")) == expected[table_id], table_id

    svm = browser.find_element(By.CSS_SELECTOR, 'table[data-table="voc_svm"]')
    svm_header = svm.find_elements(By.TAG_NAME, "th")[3]  # the SVM column
    pinned = _column(svm, 0, "tbody tr[data-pinned]")  # the per-k extra row, then the published row
    assert pinned == [f"dc ({PER_K_LABEL})", "published"]
    ours = "tbody tr:not([data-pinned])"
    svm_header.click()
    ascending = _column(svm, 3, ours)
    svm_header.click()
    descending = _column(svm, 3, ours)
    assert ascending == sorted(ascending, key=float) and descending == ascending[::-1]
    assert _column(svm, 0) == ["moco v2|x", "dc", *pinned]  # the model column follows its row

    images = browser.find_elements(By.CSS_SELECTOR, "img.plot")
    assert len(images) == 2
    for image in images:
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image) > 0

    missing = browser.find_element(By.CSS_SELECTOR, 'table[data-table="det_coco"] td.missing')
    assert "failed" in missing.get_attribute("title")

    browser.find_element(By.LINK_TEXT, "dc").click()
    assert browser.find_elements(By.CSS_SELECTOR, "table.provenance tbody tr")
    errors = [e for e in browser.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == [], errors
    browser.back()
    assert browser.save_screenshot(str(tmp_path / "leaderboard.png"))
    assert (tmp_path / "leaderboard.png").stat().st_size > 0
