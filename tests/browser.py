"""A headless Chromium driven over the DevTools protocol, for the gallery's browser tests.

The protocol runs over two pipes (``--remote-debugging-pipe``: the browser reads commands on
fd 3 and writes replies on fd 4, each message JSON ended by a NUL byte), so the tests need no
websocket library and no driver: only Chromium. Script evaluated through the protocol is not
subject to the page's Content-Security-Policy, so the page itself stays as users get it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Self

import pytest

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
READY = "document.body && document.body.dataset.ready === '1'"


def chromium() -> str:
    """The browser binary, or skip (fail when the browser is required)."""
    for name in BROWSERS:
        found = shutil.which(name)
        if found:
            return found
    if os.environ.get("GENBATCH_REQUIRE_BROWSER") == "1":
        pytest.fail("GENBATCH_REQUIRE_BROWSER=1 but no Chromium found (apt-get install chromium)")
    pytest.skip(
        "no Chromium on PATH (apt-get install chromium); set GENBATCH_REQUIRE_BROWSER=1 "
        "to make this mandatory"
    )


_TRAMPOLINE = """
import os, sys
commands, replies = int(sys.argv[1]), int(sys.argv[2])
os.dup2(commands, 3)
os.dup2(replies, 4)
os.close(commands)
os.close(replies)
os.execv(sys.argv[3], sys.argv[3:])
"""


def _high_pipe() -> tuple[int, int]:
    """A pipe whose two ends are above 4, so moving them to 3 and 4 cannot clobber one."""
    ends = []
    for end in os.pipe():
        ends.append(fcntl.fcntl(end, fcntl.F_DUPFD_CLOEXEC, 10))
        os.close(end)
    return ends[0], ends[1]


class Browser:
    """One headless Chromium with one page, steered by DevTools commands."""

    def __init__(self, profile: Path, *, width: int = 1280, height: int = 900) -> None:
        self._to_browser_read, self._to_browser = _high_pipe()
        self._from_browser, self._from_browser_write = _high_pipe()
        # A Python trampoline moves the pipes to the protocol's fixed descriptors 3 and 4,
        # then becomes the browser (its launcher may be a shell script).
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _TRAMPOLINE,
                str(self._to_browser_read),
                str(self._from_browser_write),
                chromium(),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--autoplay-policy=no-user-gesture-required",
                "--remote-debugging-pipe",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "about:blank",
            ],
            pass_fds=(self._to_browser_read, self._from_browser_write),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(self._to_browser_read)
        os.close(self._from_browser_write)
        self._buffer = b""
        self._next_id = 0
        self.session = self._attach_to_page()
        self.command("Page.enable")
        self.command("Runtime.enable")

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the browser and wait for it."""
        with contextlib.suppress(OSError, RuntimeError):  # it may be gone already
            self.command("Browser.close", session=False)
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        os.close(self._to_browser)
        os.close(self._from_browser)

    def command(self, method: str, *, session: bool = True, **params: Any) -> dict[str, Any]:
        """Send one command and return its result (raise on a protocol error)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result

    def _read_message(self) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            chunk = os.read(self._from_browser, 1 << 16)
            if not chunk:
                raise RuntimeError("the browser closed its DevTools pipe")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        message: dict[str, Any] = json.loads(raw)
        return message

    def _attach_to_page(self) -> str:
        targets = self.command("Target.getTargets", session=False)["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        attached = self.command(
            "Target.attachToTarget", session=False, targetId=page["targetId"], flatten=True
        )
        return str(attached["sessionId"])

    def open(self, page: Path, *, width: int | None = None, height: int = 900) -> None:
        """Load ``page`` (optionally at a viewport ``width``) and wait for its script."""
        if width is not None:
            self.command(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
        self.navigate(page.as_uri())

    def navigate(self, url: str, *, ready: str = READY) -> None:
        """Load ``url`` (a served page) and wait until ``ready`` holds in it."""
        self.command("Page.navigate", url=url)
        self.wait_for(ready)

    def evaluate(self, expression: str) -> Any:
        """The value of a JavaScript expression in the page (promises awaited)."""
        result = self.command(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, condition: str, *, timeout: float = 20.0) -> None:
        """Wait until a JavaScript condition holds in the page."""
        deadline = time.monotonic() + timeout
        while not self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                raise AssertionError(f"never true in the page: {condition}")
            time.sleep(0.05)

    def click(self, selector: str) -> None:
        """A real mouse click (press and release) at the middle of the element."""
        x, y = self._middle(selector)
        for kind in ("mousePressed", "mouseReleased"):
            self.command(
                "Input.dispatchMouseEvent", type=kind, x=x, y=y, button="left", clickCount=1
            )

    def hover(self, selector: str) -> None:
        """Move the mouse pointer over the middle of the element."""
        x, y = self._middle(selector)
        self.command("Input.dispatchMouseEvent", type="mouseMoved", x=x, y=y)

    def _middle(self, selector: str) -> tuple[float, float]:
        box = self.evaluate(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)});"
            " e.scrollIntoView({block: 'center', inline: 'center'});"
            " const r = e.getBoundingClientRect();"
            " return [r.left + r.width / 2, r.top + r.height / 2]; })()"
        )
        return float(box[0]), float(box[1])

    def press(self, key: str) -> None:
        """Press and release a key as the keyboard does (``k``, ``3``, ``ArrowRight``), to
        whatever has the focus (the page itself when nothing does)."""
        named = {"ArrowRight": 39, "ArrowLeft": 37, "ArrowDown": 40, "ArrowUp": 38, "Enter": 13}
        code = named.get(key, ord(key.upper()) if len(key) == 1 else 0)
        text = {"text": key} if len(key) == 1 else {}
        self.command(
            "Input.dispatchKeyEvent", type="keyDown", key=key, windowsVirtualKeyCode=code, **text
        )
        self.command("Input.dispatchKeyEvent", type="keyUp", key=key, windowsVirtualKeyCode=code)

    def type_text(self, text: str) -> None:
        """Type ``text`` into the focused field."""
        self.command("Input.insertText", text=text)

    def select(self, selector: str, value: str) -> None:
        """Choose an option of a ``<select>`` as a user does (the page sees a change event)."""
        self.evaluate(
            f"(() => {{ const s = document.querySelector({json.dumps(selector)});"
            f" s.value = {json.dumps(value)};"
            " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
        )

    def screenshot(self, path: Path, *, full_page: bool = False) -> None:
        """Save a PNG of the viewport (or of the whole page)."""
        shot = self.command("Page.captureScreenshot", format="png", captureBeyondViewport=full_page)
        path.write_bytes(base64.b64decode(shot["data"]))
