"""Headless Chromium driven over the DevTools protocol on a pipe (no extra Python package).

Used by the browser test of ``bora viz --serve`` and to make the README screenshot:
``python -m bora_trainer.viz.browser URL OUT.png [--wait S]``. Chromium is Debian's package
(``apt-get install chromium``, scripts/setup.sh). ``--remote-debugging-pipe`` speaks JSON messages
terminated by NUL on file descriptors 3 (to the browser) and 4 (from it); nothing listens on a port.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(name)
        if p:
            return p
    return None


class Browser:
    """One headless Chromium with one page target; ``call`` sends a CDP command and waits for its reply."""

    def __init__(self, width: int = 1600, height: int = 1000, exe: str | None = None):
        exe = exe or chromium_path()
        self.width, self.height = width, height
        if exe is None:
            raise RuntimeError("chromium not found (apt-get install chromium; scripts/setup.sh does)")
        self.profile = tempfile.TemporaryDirectory(prefix="bora-chromium-")
        to_r, self._to_w = os.pipe()
        self._from_r, from_w = os.pipe()
        args = [exe, "--headless", "--remote-debugging-pipe", "--no-sandbox", "--no-first-run",
                "--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--hide-scrollbars",
                "--mute-audio", "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                "--disable-backgrounding-occluded-windows", f"--user-data-dir={self.profile.name}",
                f"--window-size={width},{height}",
                "about:blank"]
        # the child's fds 3 and 4 are the pipe ends (via 100/101, so neither end is overwritten early)
        def remap():
            os.dup2(to_r, 100)
            os.dup2(from_w, 101)
            os.dup2(100, 3)
            os.dup2(101, 4)

        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, pass_fds=(3, 4), preexec_fn=remap)
        os.close(to_r)
        os.close(from_w)
        self._buf = b""
        self._id = 0
        self.events: list[dict] = []
        targets = self.call("Target.getTargets")["targetInfos"]
        page = next(t for t in targets if t["type"] == "page")
        self.session = self.call("Target.attachToTarget", targetId=page["targetId"], flatten=True)["sessionId"]

    def _read(self, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while b"\0" not in self._buf:
            if time.monotonic() > deadline:
                raise TimeoutError("no reply from chromium")
            import select

            r, _, _ = select.select([self._from_r], [], [], 0.5)
            if r:
                chunk = os.read(self._from_r, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, timeout: float = 30.0, page: bool = False, **params) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params}
        if page:
            msg["sessionId"] = self.session
        os.write(self._to_w, json.dumps(msg).encode() + b"\0")
        while True:
            reply = self._read(timeout)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def goto(self, url: str) -> None:
        self.call("Emulation.setDeviceMetricsOverride", page=True, width=self.width, height=self.height,
                  deviceScaleFactor=1, mobile=False)
        self.call("Page.navigate", page=True, url=url)

    def evaluate(self, expr: str, timeout: float = 60.0):
        r = self.call("Runtime.evaluate", timeout, page=True, expression=expr, returnByValue=True, awaitPromise=True)
        return r.get("result", {}).get("value")

    def screenshot(self, path: str, timeout: float = 60.0) -> bytes:
        data = base64.b64decode(self.call("Page.captureScreenshot", timeout, page=True, format="png")["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    def console(self) -> list[str]:
        out = []
        for e in self.events:
            if e.get("method") == "Runtime.consoleAPICalled":
                out.append(" ".join(str(a.get("value", a.get("description", ""))) for a in e["params"]["args"]))
        return out

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=5.0)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5.0)
        os.close(self._to_w)
        os.close(self._from_r)
        self.profile.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bora_trainer.viz.browser")
    p.add_argument("url")
    p.add_argument("out")
    p.add_argument("--wait", type=float, default=20.0)
    a = p.parse_args(argv)
    b = Browser()
    try:
        b.goto(a.url)
        time.sleep(a.wait)
        b.screenshot(a.out)
        print("\n".join(b.console()[-20:]))
    finally:
        b.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
