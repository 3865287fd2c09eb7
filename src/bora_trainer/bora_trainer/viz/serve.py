"""The web viewer of the ``rerun-sdk`` wheel on loopback ports (no network beyond 127.0.0.1).

The wheel's own ``rerun`` binary (``python -m rerun_cli``) hosts the viewer's HTML/wasm on the
web port and a gRPC proxy (the data) on a second port, both bound to 127.0.0.1 (``--bind``).
Given an ``.rrd`` file it loads it into the proxy; without one it waits for a live stream
(``rec.connect_grpc(proxy_url(...))``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bora_trainer.viz.log import VizInputError

HOST = "127.0.0.1"


def check_port(port: int, what: str = "--port") -> int:
    """``port`` if it can be bound on 127.0.0.1, else a one-line :class:`VizInputError`."""
    if not 1 <= int(port) <= 65535:
        raise VizInputError(f"{what} {port}: expected a TCP port 1..65535")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((HOST, int(port)))
        except OSError as e:
            raise VizInputError(f"{what} {port}: cannot listen on {HOST}:{port} ({e.strerror}); "
                                "is another viewer running? pick a free port") from None
    return int(port)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rerun_binary() -> str:
    """The ``rerun`` executable inside the rerun-sdk wheel (run directly: it then gets our SIGTERM)."""
    import rerun_cli

    exe = Path(rerun_cli.__file__).parent / "rerun"
    if not exe.exists():
        raise VizInputError(f"the rerun-sdk wheel has no viewer binary at {exe} (reinstall: make setup)")
    return str(exe)


def proxy_url(grpc_port: int) -> str:
    return f"rerun+http://{HOST}:{grpc_port}/proxy"


def viewer_url(web_port: int, grpc_port: int) -> str:
    return f"http://{HOST}:{web_port}/?url={urllib.parse.quote(proxy_url(grpc_port), safe='')}"


def start_server(web_port: int, grpc_port: int | None = None, rrd: str | Path | None = None,
                 log_path: str | Path | None = None) -> tuple[subprocess.Popen, str]:
    """Start the wheel's viewer server; returns ``(process, viewer URL)`` once the page answers."""
    check_port(web_port)
    grpc_port = check_port(grpc_port, "--grpc-port") if grpc_port else free_port()
    cmd = [rerun_binary(), "--serve-web", "--bind", HOST,
           "--web-viewer-port", str(web_port), "--port", str(grpc_port), "--server-memory-limit", "25%"]
    if rrd is not None:
        cmd.append(str(rrd))
    env = dict(os.environ, RUST_LOG=os.environ.get("RUST_LOG", "warn"))
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            preexec_fn=_die_with_parent)
    url = viewer_url(web_port, grpc_port)
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise VizInputError(f"viewer server exited with status {proc.returncode} before serving "
                                f"{HOST}:{web_port} (see {log_path or 'its output'})")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{web_port}/", timeout=1.0) as r:
                if r.status == 200:
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise VizInputError(f"viewer server did not answer on {HOST}:{web_port} within 30 s")


def _die_with_parent() -> None:
    """The server gets SIGTERM when ``bora viz`` dies, however it dies (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes
        import signal

        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))
    except (OSError, AttributeError):
        pass


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5.0)
