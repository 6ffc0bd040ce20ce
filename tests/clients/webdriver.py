"""A minimal W3C WebDriver client (urllib only) for headless Chromium through Debian's
`chromium-driver`: open a page, run a script, take a screenshot, read the browser's
console log. Enough for the console tests; no selenium dependency.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome")
DRIVER_CANDIDATES = ("chromedriver", "chromium-driver")


def find_browser() -> tuple[str, str] | None:
    """(chromium, chromedriver) paths, or None when either is missing."""
    browser = next((shutil.which(b) for b in CHROMIUM_CANDIDATES if shutil.which(b)), None)
    driver = next((shutil.which(d) for d in DRIVER_CANDIDATES if shutil.which(d)), None)
    if not driver and os.path.exists("/usr/lib/chromium/chromedriver"):
        driver = "/usr/lib/chromium/chromedriver"
    return (browser, driver) if browser and driver else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class WebDriverError(AssertionError):
    pass


class Browser:
    def __init__(self, browser: str, driver: str, log_path: Path, width: int = 1400, height: int = 1000):
        self.port = _free_port()
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen([driver, f"--port={self.port}"], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        self.base = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while True:
            try:
                if self._call("GET", "/status")["ready"]:
                    break
            except (OSError, WebDriverError):
                pass
            if time.monotonic() > deadline:
                self.close()
                raise WebDriverError("chromedriver did not become ready")
            time.sleep(0.1)
        caps = {"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": browser, "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                f"--window-size={width},{height}", "--hide-scrollbars", "--force-device-scale-factor=1"]},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}}
        self.session = self._call("POST", "/session", caps)["sessionId"]

    def _call(self, method: str, path: str, body: dict | None = None):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                doc = json.loads(r.read() or b"{}")
        except urllib.error.HTTPError as e:
            raise WebDriverError(f"{method} {path}: {e.code} {e.read()[:500]!r}") from None
        return doc.get("value", doc)

    def _s(self, method: str, path: str, body: dict | None = None):
        return self._call(method, f"/session/{self.session}{path}", body)

    def get(self, url: str) -> None:
        self._s("POST", "/url", {"url": url})

    def js(self, script: str, *args):
        return self._s("POST", "/execute/sync", {"script": script, "args": list(args)})

    def wait_for(self, script: str, *args, timeout: float = 20, what: str = ""):
        """Run `script` until it returns something truthy; return that."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.js(script, *args)
            if last:
                return last
            time.sleep(0.2)
        raise WebDriverError(f"timed out waiting for {what or script!r} (last: {last!r})")

    def text(self, selector: str) -> str | None:
        return self.js("const e = document.querySelector(arguments[0]); return e ? e.textContent.trim() : null;",
                       selector)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(self._s("GET", "/screenshot")))

    def console_log(self) -> list[dict]:
        """The browser's console entries since the last call ({level, message})."""
        for path in ("/se/log", "/log"):
            try:
                return self._s("POST", path, {"type": "browser"})
            except WebDriverError:
                continue
        raise WebDriverError("chromedriver offers no browser log")

    def close(self) -> None:
        try:
            if getattr(self, "session", None):
                self._call("DELETE", f"/session/{self.session}")
        except (OSError, WebDriverError):
            pass
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
