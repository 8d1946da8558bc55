"""Notebook 04 in a real front end: JupyterLab (headless, loopback) driven by headless Chromium.

The test starts ``jupyter lab`` on 127.0.0.1 with its settings, workspaces, config, data and
runtime directories inside the test's temporary directory, opens a parameterised copy of
notebook 04 (written by papermill with ``prepare_only=True``, pointing at toy-LVIS) in Chromium
through Selenium and Debian's chromedriver, runs all cells from the Run menu, waits until the
widget app (root widget with the CSS class ``lvisnb-browser`` holding an ``img``) is in the DOM,
saves a screenshot as ``<run dir>/browser_04.png`` and saves the notebook to check its outputs.

Marked ``browser``: it runs in ``make test`` (whose test target installs Debian's ``chromium``
and ``chromium-driver`` when missing) and ``pytest -m "not browser"`` deselects it. Without
Chromium or chromedriver it is skipped with the reason, never passed.
"""

from __future__ import annotations

import base64
import contextlib
import io
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import nbformat
import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks" / "04_mask_visualisation.ipynb"
SCREENSHOT = "browser_04.png"  # the window, scrolled to the widget
WIDGET_SCREENSHOT = "browser_04_widget.png"  # the widget alone

CHROMIUM = os.environ.get("LVISNB_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("LVISNB_CHROMEDRIVER", "/usr/bin/chromedriver")
# Off the network entirely: without the background-networking flags Chromium's own connections
# (component updates, sync, QUIC probes) are refused by a closed network and slow it down.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
]

_MISSING = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
# Decided before any fixture runs (so no toy data is made for nothing); never a silent pass.
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        bool(_MISSING),
        reason=f"browser test skipped: {', '.join(_MISSING)} missing; `make test` installs "
        "Debian's chromium and chromium-driver with apt-get when run as root (or set "
        "LVISNB_CHROMIUM / LVISNB_CHROMEDRIVER)",
    ),
]

SERVER_TIMEOUT = 180  # JupyterLab answering /api/status
PAGE_TIMEOUT = 180  # the notebook open with its kernel idle
RUN_TIMEOUT = 420  # all cells run and the widget rendered
SAVE_TIMEOUT = 120  # the notebook saved to disk with its outputs


# ----------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def chromium_paths() -> tuple[str, str]:
    """Chromium and chromedriver (their absence skips the module, see ``pytestmark``)."""
    pytest.importorskip("selenium", reason="browser test skipped: selenium (dev extra) missing")
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    path.mkdir()
    return path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_lab_settings(settings_dir: Path) -> None:
    """No news or update checks (they would go to the network); every cell kept in the DOM."""
    overrides = {
        "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False},
        "notebook-extension/tracker": {"windowingMode": "none"},
    }
    for name, values in overrides.items():
        path = settings_dir / "@jupyterlab" / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(values))


class Lab:
    def __init__(self, url: str, token: str, log: Path) -> None:
        self.url, self.token, self.log = url, token, log

    def log_tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""


def _stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    """SIGTERM (JupyterLab then shuts its kernels down), then SIGKILL to its own group."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    # kernels it started live in the process group created for it; end any left over
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def jupyter_lab(tmp_path: Path, run_dir: Path):
    """JupyterLab serving ``run_dir`` on 127.0.0.1 with a fresh token; stopped at teardown."""
    home = tmp_path / "jupyter"
    dirs = {name: home / name for name in ("config", "data", "runtime", "ipython", "settings")}
    for d in dirs.values():
        d.mkdir(parents=True)
    _write_lab_settings(dirs["settings"])
    port, token = _free_port(), secrets.token_hex(16)
    env = dict(os.environ)
    env.update(
        JUPYTER_CONFIG_DIR=str(dirs["config"]),
        JUPYTER_DATA_DIR=str(dirs["data"]),
        JUPYTER_RUNTIME_DIR=str(dirs["runtime"]),
        IPYTHONDIR=str(dirs["ipython"]),
        PYTHONUNBUFFERED="1",
    )
    env.pop("MPLBACKEND", None)  # the kernel uses matplotlib's inline backend, as for a user
    # headless runs (lvisnb run, other tests) set this; a kernel started by Lab must not see it,
    # so that interactive="auto" finds the front end attached
    env.pop("LVISNB_HEADLESS", None)
    cmd = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--allow-root",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={run_dir}",
        "--ServerApp.terminals_enabled=False",
        f"--LabApp.user_settings_dir={dirs['settings']}",
        f"--LabApp.workspaces_dir={home / 'workspaces'}",
        "--LabApp.news_url=",
    ]
    log = tmp_path / "jupyter.log"
    url = f"http://127.0.0.1:{port}"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=run_dir,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    lab = Lab(url, token, log)
    try:
        deadline = time.monotonic() + SERVER_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with {proc.returncode}:\n{lab.log_tail()}")
            request = urllib.request.Request(
                f"{url}/api/status", headers={"Authorization": f"token {token}"}
            )
            try:
                with urllib.request.urlopen(request, timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"jupyter lab not up after {SERVER_TIMEOUT} s:\n{lab.log_tail()}")
            time.sleep(0.3)
        yield lab
    finally:
        _stop(proc)


@pytest.fixture
def chromium(chromium_paths, tmp_path: Path, monkeypatch):
    """Headless Chromium through Debian's chromedriver (given explicitly: no Selenium Manager)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    monkeypatch.setenv("SE_OFFLINE", "true")  # in case any Selenium Manager call slips through
    binary, driver_path = chromium_paths
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    service = Service(driver_path, log_output=str(tmp_path / "chromedriver.log"))
    driver = webdriver.Chrome(service=service, options=options)
    try:
        driver.set_page_load_timeout(PAGE_TIMEOUT)
        driver.set_script_timeout(30)
        yield driver
    finally:
        driver.quit()


# ----------------------------------------------------------------------------- the notebook


def _results_from_ground_truth(ann_file: Path, out: Path, n_images: int) -> list[int]:
    """Toy val annotations of the first ``n_images`` images as LVIS results, perturbed a little:
    RLE masks (counts as str), boxes shifted by a pixel, scores in (0.3, 1), every 6th instance
    left out (a miss) and every 7th given another category (a false positive or unverified).
    Returns the image ids."""
    import numpy as np
    from pycocotools import mask as mask_utils

    data = json.loads(ann_file.read_text())
    images = {im["id"]: im for im in data["images"][:n_images]}
    category_ids = sorted(c["id"] for c in data["categories"])
    rng = np.random.default_rng(0)
    anns = [a for a in data["annotations"] if a["image_id"] in images]
    results = []
    for k, ann in enumerate(anns):
        if k % 6 == 5:
            continue
        image = images[ann["image_id"]]
        rle = mask_utils.merge(
            mask_utils.frPyObjects(ann["segmentation"], image["height"], image["width"])
        )
        rle["counts"] = rle["counts"].decode("ascii")
        category_id = ann["category_id"]
        if k % 7 == 3:
            category_id = category_ids[(category_ids.index(category_id) + 1) % len(category_ids)]
        x, y, bw, bh = ann["bbox"]
        results.append(
            {
                "image_id": ann["image_id"],
                "category_id": category_id,
                "bbox": [round(x + 1.0, 2), round(y + 1.0, 2), bw, bh],
                "segmentation": rle,
                "score": round(float(rng.uniform(0.3, 1.0)), 3),
            }
        )
    out.write_text(json.dumps(results))
    return list(images)


def _prepare(run_dir: Path, toy_root: Path, toy_val: Path) -> Path:
    """A parameterised, unexecuted copy of notebook 04 in ``run_dir``."""
    import papermill

    image_ids = _results_from_ground_truth(toy_val, run_dir / "results.json", n_images=4)
    target = run_dir / NOTEBOOK.name
    papermill.execute_notebook(
        str(NOTEBOOK),
        str(target),
        parameters={
            "run_dir": str(run_dir),
            "ann_file": str(toy_val),
            "image_root": str(toy_root),
            "results_file": str(run_dir / "results.json"),
            "image_ids": ",".join(map(str, image_ids[:3])),
            "n_images": 3,
            "score_thr": 0.3,
            "category": "",
            "interactive": "auto",
        },
        prepare_only=True,
        kernel_name="python3",
        progress_bar=False,
    )
    return target


# ----------------------------------------------------------------------------- the page

# Page state in one round trip: kernel status, prompts, errors, the widget.
STATE_JS = r"""
const indicator = document.querySelector('.jp-Notebook-ExecutionIndicator');
const prompts = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')]
  .map(e => e.innerText.trim());
const stderr = [...document.querySelectorAll(
  '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
  .map(e => e.innerText);
const errors = stderr.filter(t => /Traceback|^\s*\w*(Error|Exception)(:|\s*$)/m.test(t));
const body = document.body.innerText;
for (const text of ['Error displaying widget', 'Error rendering widget']) {
  if (body.includes(text)) errors.push(text);
}
const app = document.querySelector('.lvisnb-browser');
const img = app ? app.querySelector('img') : null;
const bar = document.querySelector('#jp-main-statusbar');
const status = bar ? bar.innerText.match(/^(.+?) \| (\w+)$/m) : null;
return {
  kernel: indicator ? indicator.getAttribute('data-status') : null,
  session: status ? [status[1], status[2]] : null,
  prompts: prompts,
  errors: errors,
  widget: !!app,
  image: img ? [img.naturalWidth, img.naturalHeight, img.complete] : null,
  dialog: [...document.querySelectorAll('.jp-Dialog')].map(e => e.innerText),
};
"""


def _read_complete(notebook: Path, deadline: float):
    """The saved notebook once the server has finished writing it: the file may be seen empty
    or half-written (it is not always replaced atomically), so read until it parses and its
    modification time holds still, or fail at ``deadline`` (plus a grace of 30 s)."""
    last_error = None
    deadline = max(deadline, time.monotonic() + 30)
    while time.monotonic() < deadline:
        stamp = notebook.stat().st_mtime_ns
        text = notebook.read_text(errors="replace")
        try:
            parsed = nbformat.reads(text, as_version=4)
        except Exception as error:  # empty or cut short: the write is still going on
            last_error = error
        else:
            if notebook.stat().st_mtime_ns == stamp:
                return parsed
        time.sleep(0.3)
    pytest.fail(f"{notebook} never became a complete notebook: {last_error}")


def _wait(driver, what: str, timeout: float, done, lab: Lab, run_dir: Path):
    """Poll the page state until ``done(state)``; fail with the state, a screenshot and logs."""
    deadline = time.monotonic() + timeout
    state = None
    while time.monotonic() < deadline:
        state = driver.execute_script(STATE_JS)
        if state["errors"] or state["dialog"]:
            break  # a traceback, a widget error or an unexpected dialog: no use waiting
        if done(state):
            return state
        time.sleep(0.25)
    driver.save_screenshot(str(run_dir / "browser_04_failure.png"))
    why = (
        "an error or a dialog shown"
        if state and (state["errors"] or state["dialog"])
        else f"not reached in {timeout} s"
    )
    pytest.fail(
        f"{what}: {why}; page state {state}\n"
        f"screenshot {run_dir / 'browser_04_failure.png'}\njupyter log:\n{lab.log_tail()}"
    )


def _kernel_ready(state: dict) -> bool:
    """The session has its kernel and it is idle. The toolbar's execution indicator says "idle"
    before that (while the status bar says "No Kernel | Initializing"); running cells then opens
    JupyterLab's Select Kernel dialog instead."""
    session = state["session"]
    return (
        state["kernel"] == "idle"
        and session is not None
        and session[0] != "No Kernel"
        and session[1] == "Idle"
        and len(state["prompts"]) > 0
    )


def _click_menu(driver, menu: str, command: str, run_dir: Path) -> None:
    """Open ``menu`` in Lab's menu bar and click the entry for the JupyterLab ``command``
    (Lab 4 exposes no command API to pages, so the menus are the stable way in)."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 15)
    entry = (By.CSS_SELECTOR, f'.lm-Menu-item[data-command="{command}"]:not(.lm-mod-disabled)')
    try:
        wait.until(
            lambda d: (
                [e for e in d.find_elements(By.CSS_SELECTOR, ".lm-MenuBar-item") if e.text == menu]
                or False
            )
        )[0].click()
        wait.until(ec.element_to_be_clickable(entry)).click()
    except TimeoutException:
        driver.save_screenshot(str(run_dir / "browser_04_failure.png"))
        shown = driver.execute_script(
            "return [...document.querySelectorAll('.lm-Menu-item[data-command]')]"
            ".map(e => e.dataset.command + (e.classList.contains('lm-mod-disabled') ? '*' : ''))"
        )
        pytest.fail(f"menu {menu!r} has no enabled {command!r}; entries (* disabled): {shown}")


def _png_stats(data: bytes) -> tuple[tuple[int, int], int]:
    from PIL import Image

    with Image.open(io.BytesIO(data)) as im:
        rgb = im.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 20) or []
        return rgb.size, len(colours)


# ----------------------------------------------------------------------------- the test


def test_notebook_04_widget_renders_in_jupyterlab(
    chromium, jupyter_lab, run_dir, toy_root, toy_val, record_property
):
    notebook = _prepare(run_dir, toy_root, toy_val)
    driver, lab = chromium, jupyter_lab

    driver.get(f"{lab.url}/lab/tree/{notebook.name}?token={lab.token}")
    _wait(
        driver,
        "notebook open with an idle kernel",
        PAGE_TIMEOUT,
        _kernel_ready,
        lab,
        run_dir,
    )

    _click_menu(driver, "Run", "runmenu:run-all", run_dir)
    state = _wait(
        driver,
        "all cells run and the widget rendered",
        RUN_TIMEOUT,
        lambda s: (
            s["kernel"] == "idle"
            and any(re.fullmatch(r"\[\d+\]:", p) for p in s["prompts"])
            and not any("*" in p for p in s["prompts"])
            and s["widget"]
            and s["image"] is not None
            and s["image"][2]
            and min(s["image"][:2]) > 0
        ),
        lab,
        run_dir,
    )

    from selenium.webdriver.common.by import By

    app = driver.find_element(By.CSS_SELECTOR, ".lvisnb-browser")
    driver.execute_script("arguments[0].scrollIntoView({block: 'start'});", app)
    time.sleep(0.5)  # let the scroll settle before the screenshot
    shot = run_dir / SCREENSHOT
    assert driver.save_screenshot(str(shot)), "Chromium took no screenshot"
    record_property("screenshot", str(shot))
    size, colours = _png_stats(shot.read_bytes())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000
    assert size[0] >= 800 and colours > 100, (size, colours)
    # the widget itself, cropped by Chromium: a real picture, not a blank box
    crop = base64.b64decode(app.screenshot_as_base64)
    (run_dir / WIDGET_SCREENSHOT).write_bytes(crop)
    widget_size, widget_colours = _png_stats(crop)
    assert min(widget_size) > 50 and widget_colours > 50, (widget_size, widget_colours)
    assert app.find_elements(By.CSS_SELECTOR, "img"), "no img inside .lvisnb-browser"
    assert state["image"][0] > 50, state

    # Save from the File menu and check the outputs Lab wrote: no error, a widget view.
    before = notebook.stat().st_mtime_ns
    _click_menu(driver, "File", "docmanager:save", run_dir)
    deadline = time.monotonic() + SAVE_TIMEOUT
    while notebook.stat().st_mtime_ns == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert notebook.stat().st_mtime_ns != before, "JupyterLab did not save the notebook"
    saved = _read_complete(notebook, deadline)
    outputs = [o for c in saved.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    errors = [o for o in outputs if o.output_type == "error"]
    assert not errors, [f"{o.ename}: {o.evalue}" for o in errors]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs), (
        "no widget view among the saved outputs"
    )
    code = [c for c in saved.cells if c.cell_type == "code" and c.source.strip()]
    assert all(c.execution_count for c in code), "a code cell did not run"
