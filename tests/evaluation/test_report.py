"""The HTML report is self-contained and renders in headless Chromium with no console errors and
every image loaded."""
import os
import shutil

import pytest

from roadseg.cli import main

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def test_report_is_self_contained(trained, carla_dir, tmp_path):
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(carla_dir), "--split", "all",
                 "--report", str(tmp_path / "rep"), "--worst", "3"]) == 0
    page = (tmp_path / "rep" / "index.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script" not in page
    # bars, matrix, per-frame histogram, 3 worst and 3 best frames, curves
    assert page.count("data:image/png;base64,") == 3 + 3 + 3 + 1
    for text in ("mean IoU", "Road", "Worst 3 frames", "Best 3 frames", "Training curves", "Confusion matrix",
                 "precision", "recall", "Per-frame mean IoU", "Colours", "<th>prediction</th>",
                 "network <code>unet</code>", "parameters, input 32x48", "roadseg 0.1.0"):
        assert text in page, text


@pytest.mark.skipif((not CHROMIUM or not DRIVER) and os.environ.get("CI") != "true",
                    reason="chromium and chromium-driver not installed (.ci/run installs them)")
def test_report_renders_in_headless_chromium(trained, carla_dir, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out = tmp_path / "rep"
    assert main(["evaluate", "--model", str(trained / "best.pt"), "--data", str(carla_dir),
                 "--report", str(out)]) == 0
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        driver.get((out / "index.html").as_uri())
        images = driver.execute_script(
            "return Array.from(document.images).map(i => [i.alt, i.complete, i.naturalWidth])")
        errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
        title = driver.title
    finally:
        driver.quit()
    assert title == "roadseg evaluation"
    assert len(images) >= 4
    assert all(complete and width > 0 for _, complete, width in images), images
    assert errors == []
