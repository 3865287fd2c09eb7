"""The README's viewer screenshot (docs/images/viz.png): `bora viz --serve` on the sample recording in
headless Chromium, taken once the viewer has loaded the whole recording (its own saved copy read back).

    .venv/bin/python scripts/viz_screenshot.py [OUT.png]
"""

from __future__ import annotations

import base64
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bora_trainer.viz.browser import Browser
from bora_trainer.viz.readback import rrd_rows, scalar_series
from bora_trainer.viz.sample import write_sample_bag
from bora_trainer.viz.serve import free_port

SAVE_JS = """(async () => { try { const r = await window._handle.save_recording(); if (!r) return "";
  const u = new Uint8Array(r); let s = "";
  for (let i = 0; i < u.length; i += 8192) s += String.fromCharCode.apply(null, u.subarray(i, i + 8192));
  return btoa(s); } catch (e) { return ""; } })()"""


def main() -> int:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/images/viz.png")
    tmp = Path(tempfile.mkdtemp(prefix="bora-viz-shot-"))
    write_sample_bag(tmp / "bag")
    port = free_port()
    bora = str(Path(sys.executable).parent / "bora")
    proc = subprocess.Popen([bora, "viz", "--bag", str(tmp / "bag"), "--serve", "--port", str(port),
                             "--duration", "900"], stderr=subprocess.PIPE, text=True)
    b = None
    try:
        url = None
        while url is None:
            line = proc.stderr.readline()
            if not line:
                raise SystemExit("bora viz exited before serving")
            m = re.search(r"serving (\S+)", line)
            url = m.group(1) if m else None
        b = Browser(width=1600, height=1000)
        b.goto(url)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 600:
            time.sleep(3)
            data = b.evaluate(SAVE_JS)
            if data:
                (tmp / "v.rrd").write_bytes(base64.b64decode(data))
                rows = rrd_rows(tmp / "v.rrd")
                if len(scalar_series(rows.get("value/q", []))) == 40 and len(rows.get("events/episode", [])) == 4:
                    break
        print(f"viewer data complete after {time.monotonic() - t0:.0f} s")
        time.sleep(5)
        out.parent.mkdir(parents=True, exist_ok=True)
        b.screenshot(str(out), timeout=180)
        print(f"wrote {out}")
    finally:
        if b is not None:
            b.close()
        proc.terminate()
        proc.wait(timeout=20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
