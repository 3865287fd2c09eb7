"""`bora viz --serve` in a real browser: Debian's headless Chromium opens the served web viewer.

The check goes through the viewer's own data: the page's viewer handle saves the recording it has
loaded (``WebHandle.save_recording``, an .rrd) and the test reads it back with the Rerun SDK and
compares it with the sample recording's closed forms. The screenshot must show more than a blank
page. Both servers must listen on 127.0.0.1 only, and SIGTERM to `bora viz` stops them.
Set BORA_VIZ_SCREENSHOT=path to keep the screenshot (the README's docs/images/viz.png).
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from bora_trainer.data.synthetic_bag import BagLayout, ScriptedEpisode
from bora_trainer.viz.browser import Browser, chromium_path
from bora_trainer.viz.readback import rrd_rows, scalar_series, texts
from bora_trainer.viz.sample import write_sample_bag
from bora_trainer.viz.serve import free_port

SAVE_JS = """(async () => { try {
  const r = await window._handle.save_recording(); if (!r) return "";
  const u = new Uint8Array(r); let s = "";
  for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
  return btoa(s); } catch (e) { return ""; } })()"""
EXPECTED = ("cameras/front/color", "cameras/front/depth", "value/q", "value/v", "value/v0", "value/chunk_q",
            "residual/magnitude", "residual/alpha", "takeover/beta", "events/takeover", "events/episode",
            "episode/outcome", "events/checkpoint")


def _listeners(port: int) -> list[str]:
    """Local addresses (hex, /proc/net/tcp{,6}) listening on ``port``."""
    out = []
    for f in ("/proc/net/tcp", "/proc/net/tcp6"):
        if os.path.exists(f):
            for line in open(f).read().splitlines()[1:]:
                cols = line.split()
                addr, hexport = cols[1].rsplit(":", 1)
                if int(hexport, 16) == port and cols[3] == "0A":  # LISTEN
                    out.append(addr)
    return out


@pytest.mark.timeout(480)
def test_served_viewer_in_headless_chromium(tmp_path):
    if chromium_path() is None:
        pytest.fail("chromium not installed: run scripts/setup.sh (apt-get install chromium)")
    lay = BagLayout(cameras=("left", "front", "right"), image_hw=(24, 32))
    write_sample_bag(tmp_path / "bag", lay, [ScriptedEpisode(0, 8, "success", takeovers=[(2, 5, 4)])])
    port = free_port()
    bora = shutil.which("bora") or os.path.join(os.path.dirname(sys.executable), "bora")
    proc = subprocess.Popen([bora, "viz", "--bag", str(tmp_path / "bag"), "--serve", "--port", str(port),
                             "--duration", "200"], stderr=subprocess.PIPE, text=True)
    browser = None
    try:
        url = None
        t0 = time.monotonic()
        while url is None and time.monotonic() - t0 < 60:
            line = proc.stderr.readline()
            assert line, f"bora viz exited ({proc.poll()}) before serving"
            m = re.search(r"serving (http://127\.0\.0\.1:\d+/\S+)", line)
            url = m.group(1) if m else None
        assert url is not None
        grpc_port = int(re.search(r"127\.0\.0\.1%3A(\d+)%2Fproxy", url).group(1))
        for p in (port, grpc_port):
            assert _listeners(p) == ["0100007F"], f"port {p} listens on {_listeners(p)}, expected 127.0.0.1 only"
        t_url = time.monotonic()
        browser = Browser(width=960, height=600)
        browser.goto(url)
        rows: dict = {}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            time.sleep(2.0)
            data = browser.evaluate(SAVE_JS)
            if data:
                (tmp_path / "viewer.rrd").write_bytes(base64.b64decode(data))
                rows = rrd_rows(tmp_path / "viewer.rrd")
                if all(e in rows for e in EXPECTED) and len(scalar_series(rows["value/q"])) == 8 \
                        and len(texts(rows["events/episode"])) == 2:
                    break
        print(f"served after {t_url - t0:.1f} s, viewer data complete after {time.monotonic() - t_url:.1f} s")
        missing = [e for e in EXPECTED if e not in rows]
        assert not missing, f"the viewer's recording lacks {missing} after 300 s"
        # the viewer's data equals the sample's closed forms (sample.py / synthetic_bag.py)
        q = scalar_series(rows["value/q"])
        assert sorted(q) == list(range(8)) and np.allclose([q[t] for t in range(8)], 0.8 - 0.02 * np.arange(8))
        assert [t for t, b in sorted(scalar_series(rows["takeover/beta"]).items()) if b == 1.0] == [2, 3, 4]
        assert [s for s, _ in texts(rows["events/takeover"])] == [2, 4, 5]
        assert scalar_series(rows["episode/outcome"]) == {8: 1.0}
        time.sleep(3.0)  # let the last frame render
        png = browser.screenshot(str(tmp_path / "viz.png"), timeout=120.0)
        from PIL import Image

        img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), np.float32)
        assert img.shape[:2] == (600, 960)
        assert img.std() > 20.0, "the screenshot is (nearly) uniform: the viewer drew nothing"
        if os.environ.get("BORA_VIZ_SCREENSHOT"):
            shutil.copy(tmp_path / "viz.png", os.environ["BORA_VIZ_SCREENSHOT"])
    finally:
        if browser is not None:
            browser.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    deadline = time.monotonic() + 10
    while _listeners(port) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _listeners(port) == [], "the viewer server outlived `bora viz`"
