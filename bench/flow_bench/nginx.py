"""The real nginx (Debian's /usr/sbin/nginx) as scenario 1's reference reverse proxy:
bench/nginx.conf.template rendered into a temporary prefix, run in the foreground."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

NGINX = "/usr/sbin/nginx"
TEMPLATE = Path(__file__).resolve().parent.parent / "nginx.conf.template"


def render_config(
    template: str, *, prefix: Path, listen_port: int, upstream_port: int, workers: int
) -> str:
    fields = {
        "@@PREFIX@@": str(prefix),
        "@@LISTEN_PORT@@": str(listen_port),
        "@@UPSTREAM_PORT@@": str(upstream_port),
        "@@WORKERS@@": str(workers),
    }
    rendered = template
    for name, value in fields.items():
        rendered = rendered.replace(name, value)
    if "@@" in rendered:
        raise ValueError("the nginx template has a field the bench does not fill")
    return rendered


def wait_for_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout}s")


class Nginx:
    def __init__(self, *, listen_port: int, upstream_port: int, workers: int) -> None:
        self.listen_port = listen_port
        self.upstream_port = upstream_port
        self.workers = workers
        self.prefix = Path(tempfile.gettempdir())  # replaced by start()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.listen_port}"

    def start(self) -> Nginx:
        self.prefix = Path(tempfile.mkdtemp(prefix="flow-bench-nginx-"))
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        # Workers run as nobody and only need to read the prefix.
        self.prefix.chmod(0o755)
        config = self.prefix / "nginx.conf"
        config.write_text(
            render_config(
                TEMPLATE.read_text(),
                prefix=self.prefix,
                listen_port=self.listen_port,
                upstream_port=self.upstream_port,
                workers=self.workers,
            )
        )
        self.process = subprocess.Popen(  # noqa: S603 - a fixed binary, our own arguments
            [
                NGINX,
                "-p",
                str(self.prefix),
                "-c",
                str(config),
                "-e",
                str(self.prefix / "error.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        wait_for_port(self.listen_port, timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful: finish open requests
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.prefix.name.startswith("flow-bench-nginx-"):
            shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> Nginx:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
