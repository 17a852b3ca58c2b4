"""The web dashboard in a real browser: a control plane with two local agents (2 logical GPUs each,
their telemetry fed through the agents' telemetry file), two long jobs holding every GPU and a
third waiting behind them; headless Debian Chromium driven by Selenium logs in, sees the waiting
job's position, reasons and estimated start, opens a node's GPU history chart and the cost view,
and is refused with a wrong token. Saves the README's screenshots under docs/img/.

Skipped only where /usr/bin/chromium is missing.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SMALL = {"cpus": "100m", "memory": "16Mi"}
WAIT_S = 20


@pytest.fixture
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1400,900", "--hide-scrollbars"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


class TelemetryFeed:
    """Writes each agent's telemetry file every 0.2 s with moving GPU readings (logical GPUs have
    none of their own), so the node charts have a shape to draw."""

    def __init__(self, files: list[Path], gpus: int) -> None:
        self.files = files
        self.gpus = gpus
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        t0 = time.monotonic()
        while not self.stop.is_set():
            t = time.monotonic() - t0
            for n, path in enumerate(self.files):
                gpus = [{"index": i, "utilization_percent": round(55 + 35 * math.sin(t * 1.3 + i + 2 * n), 1),
                         "temperature_c": round(58 + 8 * math.sin(t * 0.7 + i), 1),
                         "power_w": round(240 + 90 * math.sin(t * 1.3 + i + 2 * n), 1),
                         "memory_used_mb": 30000 + 4000 * i, "memory_total_mb": 81920} for i in range(self.gpus)]
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps({"gpus": gpus}))
                os.replace(tmp, path)  # a reading never sees half a file
            self.stop.wait(0.2)

    def __enter__(self) -> TelemetryFeed:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def test_the_dashboard_shows_why_a_job_waits_and_a_nodes_gpu_history(make_cluster, browser):
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    c = make_cluster(agents=2, gpus_per_agent=2, node_timeout=5.0,
                     agent_args=("--telemetry-file=telemetry.json", "--metrics-interval=0.25"))
    admin = c.client()
    r = admin.post("/v1/apply", json={"documents": [{"kind": "Team", "name": "vision"}, {"kind": "Team", "name": "nlp"}]})
    assert r.status_code == 200, r.text
    tokens = {x["name"]: x["token"] for x in r.json()["results"]}
    feed = TelemetryFeed([c.data_dir / "agents" / f"local-{n}" / "telemetry.json" for n in (1, 2)], gpus=2)
    with feed:
        # a short job per team first, so the cost meter has something per team; then two long
        # jobs take all four GPUs and a third waits behind them
        warmup = [c.submit({"name": f"warmup-{t}", "resources": {"gpus": 2, **SMALL}, "command": "sleep 1"}, tokens[t])["id"]
                  for t in ("vision", "nlp")]
        done = c.wait_jobs(warmup, timeout=30)
        assert {j["phase"] for j in done.values()} == {"succeeded"}, done
        long = [c.submit({"name": f"train-{t}", "resources": {"gpus": 2, **SMALL}, "command": "sleep 600",
                          "runtime_estimate": "10m", "grace_period": "1s"}, tokens[t])["id"] for t in ("vision", "nlp")]
        c.wait_jobs(long, phases=("running",), timeout=30)
        waiting = c.submit({"name": "eval-vision", "resources": {"gpus": 2, **SMALL}, "command": "sleep 1"}, tokens["vision"])["id"]
        api_row = c.wait(lambda: admin.get("/v1/dashboard/pending").json()["items"],
                         lambda items: items and items[0]["id"] == waiting and items[0]["reasons"], WAIT_S, "a verdict")[0]
        c.wait(lambda: admin.get("/v1/dashboard/nodes/local-1/metrics").json()["samples"], lambda n: n >= 8, WAIT_S,
               "telemetry samples")

        d = browser
        # the page re-renders its tables every few seconds: look elements up again when they go stale
        wait = WebDriverWait(d, WAIT_S, ignored_exceptions=(NoSuchElementException, StaleElementReferenceException))
        d.get(f"{c.api}/")  # redirects to /ui/
        token_box = wait.until(ec.visibility_of_element_located((By.ID, "token-input")))
        assert d.current_url.endswith("/ui/")

        # a wrong token is refused, with a message, and nothing else shows
        token_box.send_keys("not-a-token")
        d.find_element(By.ID, "login-button").click()
        error = wait.until(ec.visibility_of_element_located((By.ID, "login-error")))
        assert "Token refused: invalid token" in error.text
        assert not d.find_element(By.ID, "app").is_displayed()

        # the admin token: the queue view shows the waiting job first, why, and when it may start
        token_box.clear()
        token_box.send_keys(c.admin_token)
        d.find_element(By.ID, "login-button").click()

        def pending_row(d) -> dict[str, str]:
            row = d.find_element(By.CSS_SELECTOR, f'[data-testid="pending-row"][data-job-id="{waiting}"]')
            return {k: row.find_element(By.CSS_SELECTOR, f'[data-testid="pending-{k}"]').text
                    for k in ("position", "reasons", "estimate")}

        shown = wait.until(pending_row)
        assert shown["position"] == "1"
        reason = next(r for r in api_row["reasons"] if "t=" not in r["reason"])  # the page shows epoch times as dates
        assert reason["reason"] in shown["reasons"] and reason["plugin"] in shown["reasons"]
        estimate = shown["estimate"]
        assert re.search(r"in \d+ min", estimate), estimate  # the running jobs' 10-minute estimates
        assert d.find_element(By.ID, "who").text == "admin"
        assert "2 / 2" in d.find_element(By.CSS_SELECTOR, '[data-testid="stat-nodes"]').text
        IMG.mkdir(parents=True, exist_ok=True)
        d.save_screenshot(str(IMG / "dashboard-queues.png"))

        # running: both long jobs with their GPUs' live utilisation
        d.find_element(By.ID, "tab-running").click()
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="running-row"]')) == 2)
        wait.until(lambda d: "%" in d.find_element(By.CSS_SELECTOR, '[data-testid="gpu-meter"]').text)

        # nodes: open one and its GPU utilisation chart is drawn from its telemetry history
        d.find_element(By.ID, "tab-nodes").click()
        wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '[data-testid="node-row"][data-node-id="local-1"]').click() or True)
        wait.until(ec.visibility_of_element_located((By.ID, "node-detail")))

        def drawn(d) -> list[str]:
            paths = d.find_elements(By.CSS_SELECTOR, '[data-testid="chart-utilization"] path.series')
            shapes = [p.get_attribute("d") or "" for p in paths]
            return shapes if len(shapes) == 2 and all(s.count("L") >= 5 for s in shapes) else []

        shapes = wait.until(drawn)  # one line per GPU, through several points
        assert all(s.startswith("M") for s in shapes)
        assert d.find_element(By.ID, "node-detail-title").text == "local-1"
        for chart in ("chart-temperature", "chart-power"):
            assert d.find_elements(By.CSS_SELECTOR, f'[data-testid="{chart}"] path.series'), chart
        d.save_screenshot(str(IMG / "dashboard-node.png"))

        # cost per team over the last 6 hours
        d.find_element(By.ID, "tab-cost").click()
        d.find_element(By.CSS_SELECTOR, '#cost-range [data-range="6h"]').click()
        wait.until(lambda d: {e.get_attribute("data-team") for e in d.find_elements(By.CSS_SELECTOR, '[data-testid="cost-row"]')}
                   == {"vision", "nlp"})
        wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, '[data-testid="chart-cost"] path.series')) == 2)
        d.save_screenshot(str(IMG / "dashboard-cost.png"))

        # logging out forgets the token
        d.find_element(By.ID, "logout").click()
        wait.until(ec.visibility_of_element_located((By.ID, "login-form")))
        assert d.execute_script("return sessionStorage.getItem('hyperion.token')") is None
