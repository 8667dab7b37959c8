"""A `prefect server start` subprocess on loopback, for the scale-out test, serve tests and benches.

It is started with its own PREFECT_HOME (and, if given, a PostgreSQL database) and stopped by the
PID it was started with, never by name.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from types import TracebackType


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def prefect_command() -> list[str]:
    """`prefect` from the same environment as this interpreter."""
    beside = Path(sys.executable).with_name("prefect")
    return [str(beside)] if beside.exists() else [shutil.which("prefect") or "prefect"]


class LocalPrefectServer:
    """``with LocalPrefectServer(home) as server:`` then ``server.api_url`` and ``server.env``."""

    def __init__(self, home: Path, *, database_url: str | None = None, startup_timeout: float = 120.0) -> None:
        self.home = home
        self.port = free_port()
        self.database_url = database_url
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = home / "server.log"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    @property
    def env(self) -> dict[str, str]:
        """Environment for clients and workers of this server."""
        env = dict(os.environ)
        env.update(PREFECT_HOME=str(self.home), PREFECT_API_URL=self.api_url,
                   PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_LOGGING_LEVEL="WARNING")
        return env

    def start(self) -> LocalPrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        env = self.env
        env.pop("PREFECT_API_URL")
        env["PREFECT_UI_ENABLED"] = "false"
        if self.database_url:
            env["PREFECT_API_DATABASE_CONNECTION_URL"] = self.database_url
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [*prefect_command(), "server", "start", "--host", "127.0.0.1", "--port", str(self.port), "--no-ui"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prefect server exited: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.api_url}/health", timeout=2) as response:
                    if response.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"prefect server not up after {self.startup_timeout:.0f} s")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The server runs uvicorn and its services in its own session: signal that group, by our PID.
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def __enter__(self) -> LocalPrefectServer:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()
