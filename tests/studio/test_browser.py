"""The studio page in a real browser: streamlit serves app.py on a tiny exported model, headless Chromium clicks
"Sample" and finds the piano roll, the sheet music SVG and the audio player.  Screenshot: test-artifacts/studio.png.

Needs the Debian packages `chromium` and `chromium-driver` (`make system-deps` installs them as root).
"""

from __future__ import annotations

import argparse
import contextlib
import base64
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

from musicgen_tf.studio.launch import add_studio_arguments, studio_command
from tests import serving

pytestmark = pytest.mark.slow

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
START_TIMEOUT, RESULT_TIMEOUT = 120, 300
SVG_URI = "data:image/svg+xml;base64,"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory) -> Path:
    """A tiny cat-mel_2bar model trained on fixture MIDI and exported with `musicgen export`'s `export()`."""
    source, _ = serving.exported("melody")
    root = tmp_path_factory.mktemp("studio-browser") / "models"
    shutil.copytree(source, root)
    return root


@contextlib.contextmanager
def _studio(models_dir: Path, *extra: str):
    """streamlit serving the studio on 127.0.0.1 and a free port (yields its URL); stopped on exit."""
    port = _free_port()
    args = add_studio_arguments(argparse.ArgumentParser()).parse_args(
        ["--models", str(models_dir), "--port", str(port), "--address", "127.0.0.1", *extra])
    log = tempfile.TemporaryFile("w+")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "HOME": tempfile.mkdtemp(prefix="studio-home-")}
    process = subprocess.Popen(studio_command(args), stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + START_TIMEOUT
        while True:
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.time() > deadline:
                log.seek(0)
                pytest.fail(f"streamlit did not start:\n{log.read()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


@pytest.fixture(scope="module")
def studio_url(models_dir):
    with _studio(models_dir) as url:
        yield url


@pytest.fixture(scope="module")
def browser():
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        pytest.skip("headless Chromium is not installed: apt-get install chromium chromium-driver "
                    "(`make system-deps` does it as root)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="studio-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--window-size=1400,2000"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _screenshot(browser):
    ARTIFACTS.mkdir(exist_ok=True)
    height = browser.execute_script("return document.querySelector('[data-testid=\"stMain\"]')?.scrollHeight "
                                    "|| document.body.scrollHeight")
    browser.set_window_size(1400, max(900, min(int(height) + 100, 4000)))
    time.sleep(1)
    assert browser.save_screenshot(str(ARTIFACTS / "studio.png"))
    (ARTIFACTS / "studio.html").write_text(browser.page_source)


def _click(browser, label: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(browser, START_TIMEOUT).until(ec.element_to_be_clickable(
        (By.XPATH, f"//button[not(@role='tab')][.//p[normalize-space()='{label}']]"))).click()


def test_sample_shows_piano_roll_sheet_and_audio(studio_url, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(studio_url)
    wait = WebDriverWait(browser, START_TIMEOUT)
    sample = wait.until(ec.element_to_be_clickable(
        (By.XPATH, "//button[not(@role='tab')][.//p[normalize-space()='Sample']]")))
    assert "melody" in browser.find_element(By.CSS_SELECTOR, "[data-testid='stSidebar']").text
    sample.click()

    WebDriverWait(browser, RESULT_TIMEOUT).until(
        lambda driver: driver.find_elements(By.CSS_SELECTOR, "audio")
        or driver.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']"))
    time.sleep(1)  # let the rest of the results render before the screenshot
    _screenshot(browser)  # first, so a failing assertion below still leaves a picture of the page
    alerts = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']")]
    assert not alerts, alerts
    audios = browser.find_elements(By.CSS_SELECTOR, "audio")
    assert len(audios) == 2 and all(audio.get_attribute("src") for audio in audios)
    rolls = browser.find_elements(By.CSS_SELECTOR, "[data-testid='stImage'] img")
    assert len(rolls) == 2
    WebDriverWait(browser, 30).until(lambda driver: all(
        driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) for img in rolls))
    sheets = browser.find_elements(By.CSS_SELECTOR, ".musicgen-sheet img")
    assert len(sheets) == 2
    for sheet in sheets:
        src = sheet.get_attribute("src")
        assert src.startswith(SVG_URI)
        svg = base64.b64decode(src[len(SVG_URI):]).decode("utf-8")
        assert svg.lstrip().startswith("<svg") and 'class="note"' in svg
        assert browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", sheet)
    downloads = [b.text for b in browser.find_elements(By.CSS_SELECTOR, "[data-testid='stDownloadButton'] button")]
    assert downloads.count("Download MIDI") == downloads.count("Download WAV") == 2
    assert downloads.count("Download MusicXML") == 2



def test_server_down_is_a_message_not_a_crash(models_dir, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    with _studio(models_dir, "--server", "127.0.0.1:9") as url:  # nothing listens on the discard port
        browser.get(url)
        _click(browser, "Sample")
        errors = WebDriverWait(browser, RESULT_TIMEOUT).until(
            lambda driver: driver.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']"))
        assert "TF Serving at 127.0.0.1:9 is not answering" in errors[0].text
        assert not browser.find_elements(By.CSS_SELECTOR, "[data-testid='stException']")
        _click(browser, "Sample")  # the page still works after the error
        time.sleep(2)
        assert browser.find_elements(By.CSS_SELECTOR, "[data-testid='stAlertContentError']")
