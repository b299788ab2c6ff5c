"""A real Label Studio for the integration tests: started from .venv-ls on 127.0.0.1 with a temporary data dir,
talked to over its HTTP API with a legacy token, stopped by its process id (the whole process group)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from conftest import ROOT

LS_EXE = ROOT / ".venv-ls" / "bin" / "label-studio"
START_TIMEOUT = 600  # a fresh data dir runs ~200 migrations: ~70 s on a busy 2-core box, ~8 s on a restart


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LabelStudio:
    """`label-studio start` in its own process group; `api()` calls its REST API with token auth."""

    def __init__(self, data_dir: Path, files_root: Path, token: str = "alcli-test-token") -> None:
        self.data_dir, self.token, self.port = data_dir, token, free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = data_dir.parent / "label-studio.log"
        env = dict(os.environ,
                   LABEL_STUDIO_BASE_DATA_DIR=str(data_dir),  # nothing under ~/.local/share
                   LATEST_VERSION_CHECK="false",  # no call to the package index at start-up (offline)
                   COLLECT_ANALYTICS="false",
                   LOCAL_FILES_SERVING_ENABLED="true",  # /data/local-files/?d=... serves files_root
                   LOCAL_FILES_DOCUMENT_ROOT=str(files_root))
        self.log = open(self.log_path, "wb")  # noqa: SIM115 (lives as long as the server; closed in stop())
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [str(LS_EXE), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(self.port),
             "--data-dir", str(data_dir), "--username", "alcli@example.com", "--password", "alcli-test-pw",
             "--user-token", token, "--enable-legacy-api-token"],
            stdin=subprocess.DEVNULL, stdout=self.log, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        self.startup_seconds = self._wait_ready()

    def _wait_ready(self) -> float:
        """Poll until the API answers an authenticated request (not a fixed sleep); fail if the server dies."""
        deadline = self.started + START_TIMEOUT
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"label-studio exited ({self.proc.returncode}) before it was ready:\n{self.tail()}")
            try:
                self.api("GET", "/api/projects")
                return time.monotonic() - self.started
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"label-studio not ready after {START_TIMEOUT} s:\n{self.tail()}")
            time.sleep(0.25)  # poll interval, not a wait for something to happen

    def api(self, method: str, path: str, body: object = None, raw: bool = False, timeout: float = 120):
        data = None if body is None else json.dumps(body).encode()
        headers = {"Authorization": f"Token {self.token}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                payload = resp.read()
        except urllib.error.HTTPError as exc:
            raise AssertionError(f"{method} {path}: HTTP {exc.code}: {exc.read()[:500]!r}") from None
        return payload if raw else json.loads(payload or b"null")

    def tail(self, n: int = 4000) -> str:
        self.log.flush()
        return self.log_path.read_bytes()[-n:].decode("utf-8", "replace")

    def stop(self) -> None:
        """SIGTERM the process group we started, wait for the server to exit (SIGKILL after 30 s)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=30)
            except ProcessLookupError:
                pass
        self.log.close()
