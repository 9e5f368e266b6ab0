"""A minimal headless-Chromium driver for the book's page tests, over the DevTools protocol.

Chromium is started with ``--remote-debugging-pipe``: it reads protocol commands from file
descriptor 3 and writes replies and events to descriptor 4, each message a JSON object
terminated by a NUL byte. No websocket library and no browser download are needed: only
Debian's ``chromium`` package.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time

BINARIES = ("chromium", "chromium-browser", "google-chrome")


def find_chromium() -> str | None:
    """Path of a Chromium binary on PATH, or None."""
    for name in BINARIES:
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless browser with one page. Use as a context manager."""

    def __init__(self, binary: str | None = None, width: int = 1280, height: int = 900, timeout: float = 60.0):
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError(f"no Chromium binary found (looked for {', '.join(BINARIES)}); "
                                    "install Debian's 'chromium' package")
        self.timeout = timeout
        self._profile = tempfile.mkdtemp(prefix="chromium-profile-")
        commands_read, self._commands = os.pipe()
        self._replies, replies_write = os.pipe()
        # Move the child's ends out of the way, then onto descriptors 3 and 4 in the child.
        high_read, high_write = os.dup(commands_read) + 100, os.dup(replies_write) + 100
        os.dup2(commands_read, high_read)
        os.dup2(replies_write, high_write)
        for fd in (commands_read, replies_write):
            os.close(fd)

        def child_fds():
            os.dup2(high_read, 3)
            os.dup2(high_write, 4)

        self._process = subprocess.Popen(
            [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
             "--disable-dev-shm-usage", "--no-first-run", "--hide-scrollbars", "--mute-audio",
             f"--window-size={width},{height}", f"--user-data-dir={self._profile}", "about:blank"],
            pass_fds=(3, 4, high_read, high_write), preexec_fn=child_fds,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(high_read)
        os.close(high_write)
        self._buffer = b""
        self._next_id = 0
        self._events: list[dict] = []
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        self._session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        self.send("Page.enable", session=True)
        self.send("Emulation.setDeviceMetricsOverride", session=True, width=width, height=height,
                  deviceScaleFactor=1, mobile=False)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for fd in (self._commands, self._replies):
            try:
                os.close(fd)
            except OSError:
                pass
        self._process.terminate()
        try:
            self._process.wait(10)
        except subprocess.TimeoutExpired:
            self._process.kill()
        shutil.rmtree(self._profile, ignore_errors=True)

    def _read_message(self, deadline: float) -> dict:
        while b"\0" not in self._buffer:
            if time.monotonic() > deadline:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._replies, 1 << 16)
            if not chunk:
                raise RuntimeError(f"Chromium exited (status {self._process.poll()})")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, session: bool = False, **params) -> dict:
        """Send one protocol command and return its result; raises on a protocol error."""
        self._next_id += 1
        message = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self._session
        os.write(self._commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.timeout
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)

    def _wait_for_event(self, method: str) -> dict:
        deadline = time.monotonic() + self.timeout
        while True:
            for i, event in enumerate(self._events):
                if event.get("method") == method:
                    return self._events.pop(i)
            self._events.append(self._read_message(deadline))

    def open(self, url: str) -> None:
        """Navigate to ``url`` and wait for its load event."""
        self._events.clear()
        self.send("Page.navigate", session=True, url=url)
        self._wait_for_event("Page.loadEventFired")

    def evaluate(self, expression: str):
        """Value of a JavaScript expression in the page (promises are awaited)."""
        result = self.send("Runtime.evaluate", session=True, expression=expression, returnByValue=True,
                           awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"JavaScript error: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path) -> None:
        """Save a PNG of the whole page to ``path``."""
        data = self.send("Page.captureScreenshot", session=True, format="png", captureBeyondViewport=True)["data"]
        with open(path, "wb") as file:
            file.write(base64.b64decode(data))


# What a book page must show: every image loaded with a size, and its visible text.
PAGE_REPORT = """
(async () => {
  const images = [...document.querySelectorAll('article img')];  // the page's content, not the toolbar icons
  images.forEach(img => { img.loading = 'eager'; });
  await Promise.all(images.map(img => img.complete ? null :
      new Promise(done => { img.addEventListener('load', done); img.addEventListener('error', done); })));
  const main = document.querySelector('main') || document.body || document.documentElement;
  return {
    ready: document.readyState,
    title: document.title,
    text: main.innerText,
    images: images.map(img => ({src: img.getAttribute('src'), loaded: img.complete && img.naturalWidth > 0,
                                width: img.naturalWidth, height: img.naturalHeight,
                                shown_width: img.getBoundingClientRect().width})),
    error_outputs: document.querySelectorAll('.output.error, .output.traceback, .output.stderr').length,
    // each table's full width against the content column's, in CSS pixels
    tables: [...document.querySelectorAll('article table')].map(table => ({
        width: table.scrollWidth, column: document.querySelector('article').clientWidth,
        start: table.innerText.slice(0, 60).replace(/\\s+/g, ' ')})),
  };
})()
"""
