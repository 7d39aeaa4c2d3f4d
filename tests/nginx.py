"""Debian's nginx as the reverse proxy in front of the live test server, started by the test itself.

It runs as one process of the test's own user on a free loopback port, with its configuration, pid,
logs and temporary files in a folder of the test, and forwards the way the README's deployment does:
it appends the address it received the request from to X-Forwarded-For.
"""

from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import socket
import subprocess
import time
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import pytest

CONFIG = """\
daemon off;
master_process off;
pid {folder}/nginx.pid;
error_log {folder}/error.log notice;
events {{ worker_connections 64; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://127.0.0.1:{upstream_port};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


class Nginx:
    def __init__(self, folder: Path, *, upstream_port: int):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not Path(binary).is_file():
            pytest.fail("Debian's nginx is needed: scripts/system-packages.sh test")
        self.folder = folder
        self.port = _free_port()
        config = folder / "nginx.conf"
        config.write_text(CONFIG.format(folder=folder, port=self.port, upstream_port=upstream_port))
        self._log = (folder / "stderr.log").open("w")
        self.process = subprocess.Popen(
            [binary, "-p", str(folder), "-e", str(folder / "error.log"), "-c", str(config)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self._wait_until_listening()

    def log(self) -> str:
        return "\n".join(
            path.read_text() for name in ("stderr.log", "error.log") if (path := self.folder / name).is_file()
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()

    def _wait_until_listening(self) -> None:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"nginx exited with {self.process.returncode}:\n{self.log()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"nginx did not listen on port {self.port}:\n{self.log()}")


class Computer:
    """A client on its own loopback address (all of 127.0.0.0/8 is this machine), so that nginx sees
    each one as a separate computer. It keeps its cookies and sends the CSRF token as a browser does."""

    def __init__(self, port: int, address: str):
        self.port = port
        self.address = address
        self.cookies: dict[str, str] = {}

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
        return self._request("GET", path, None, headers or {})

    def post(self, path: str, data: dict[str, str], headers: dict[str, str] | None = None) -> tuple[int, str]:
        if "csrftoken" not in self.cookies:
            self.get(path)
        form = urlencode(data | {"csrfmiddlewaretoken": self.cookies["csrftoken"]})
        form_headers = (headers or {}) | {"Content-Type": "application/x-www-form-urlencoded"}
        return self._request("POST", path, form, form_headers)

    def _request(self, method: str, path: str, body: str | None, headers: dict[str, str]) -> tuple[int, str]:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30, source_address=(self.address, 0))
        if self.cookies:
            headers = headers | {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            text = response.read().decode()
        finally:
            connection.close()
        for header in response.headers.get_all("Set-Cookie") or []:
            for name, morsel in SimpleCookie(header).items():
                if morsel["max-age"] == "0":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return response.status, text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
