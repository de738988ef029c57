"""``history --html``: the dashboard renders offline in headless Chromium, lazily, with its alert list."""

from __future__ import annotations

import re
import shutil
import subprocess
from datetime import timedelta

import numpy as np
import pytest
from dataset import write_run
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.store.layout import new_run_id

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SERIES = 200


@pytest.fixture(scope="module")
def dashboard(tmp_path_factory):
    """A dashboard of 200 series over 24 runs; one drops 10% at run 14."""
    from test_history import T0

    base = tmp_path_factory.mktemp("dash")
    rng = np.random.default_rng(11)
    for i in range(24):
        trials = [{"workload": f"bench.{k:03d}", "metric": "ops_per_s",
                   "rounds": (90.0 if k == 7 and i >= 14 else 100.0) * (1 + rng.normal(0, 0.01, 6))}
                  for k in range(SERIES)]
        write_run(base / "r", new_run_id(T0 + timedelta(hours=i)), T0 + timedelta(hours=i), trials)
    out = CliRunner().invoke(app, ["history", "--results", str(base / "r"), "--html", str(base / "site"),
                                   "--format", "json"])
    assert out.exit_code == 0, out.output
    return base / "site" / "index.html"


def test_the_page_is_offline_and_holds_every_series(dashboard):
    page = dashboard.read_text()
    assert not re.search(r"(src|href)=['\"]?(https?:)?//", page)  # no CDN, nothing fetched
    assert page.count("<section class='series'") == SERIES and page.count("<div class='plot'") == SERIES
    assert page.count("class='alert'") == 1


def _chromium(args, tmp_path):
    return subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,1600", "--virtual-time-budget=5000", *args],
        capture_output=True, text=True, timeout=180, check=False)


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium); "
                                             "the dashboard check needs a headless browser")
def test_dashboard_renders_in_headless_chromium(dashboard, tmp_path):
    dom = _chromium(["--dump-dom", dashboard.as_uri()], tmp_path)
    assert dom.returncode == 0, dom.stderr[-2000:]
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', re.search(r"<body ([^>]*)>", dom.stdout).group(1)))
    assert attrs["errors"] == "0" and "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr
    assert attrs["shown"] == str(SERIES) and int(attrs["drawn"]) < SERIES  # plots out of view wait: lazy
    alerts = re.search(r"<ul id=\"alerts\">(.*?)</ul>", dom.stdout, re.DOTALL).group(1)
    assert alerts.count('class="alert"') == 1 and "bench.007" in alerts and "REGRESSION" in alerts
    # Filtered (a shareable link), ten series are left and their plots come into view and are drawn.
    shot = tmp_path / "dashboard.png"
    filtered = dashboard.as_uri() + "#filter=bench.00"
    taken = _chromium([f"--screenshot={shot}", filtered], tmp_path)
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    dom = _chromium(["--dump-dom", filtered], tmp_path)
    attrs = dict(re.findall(r'data-(\w+)="(\d+)"', re.search(r"<body ([^>]*)>", dom.stdout).group(1)))
    assert attrs["errors"] == "0" and attrs["shown"] == "10" and 1 <= int(attrs["drawn"]) <= 10
    assert dom.stdout.count("<svg") == int(attrs["drawn"]) and dom.stdout.count("<circle") >= 24
    one = _chromium(["--dump-dom", dashboard.as_uri() + "#filter=bench.007"], tmp_path)
    assert one.stdout.count("<svg") == 1 and one.stdout.count('class="change"') == 1  # its change point, marked
