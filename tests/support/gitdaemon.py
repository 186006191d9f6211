"""A real ``git daemon`` on 127.0.0.1 serving the bare repositories of one folder."""

from __future__ import annotations

import socket
import subprocess
import time
from pathlib import Path

from tests.support.s3server import free_port


class GitDaemon:
    """``git daemon`` serving every bare repository under ``base`` (push enabled)."""

    def __init__(self, base: Path):
        self.base = base
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["git", "daemon", "--reuseaddr", "--listen=127.0.0.1", f"--port={self.port}",
             "--export-all", "--enable=receive-pack", "--informative-errors",
             f"--base-path={base}", str(base)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 300  # bounds a hang only
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=30).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("git daemon did not start")

    def url(self, name: str) -> str:
        return f"git://127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(timeout=60)
