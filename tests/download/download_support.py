"""A local file server on 127.0.0.1, checkpoint zips built in the test, and a code-running .pth.

Test modules import the fixtures from here (`from download_support import server, ...`).
"""

from __future__ import annotations

import io
import os
import threading
import zipfile
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from dynamo_core.download import transport

MODULES = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")
HANG_LIMIT_S = 5.0  # a "hang" route never holds a request longer than this


@dataclass
class Route:
    body: bytes
    mode: str = "ok"  # ok | short (announces all bytes, sends half, closes) | hang (sends nothing)


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        server = self.server
        server.requests.append(self.path)
        route = server.routes.get(self.path)
        if route is None:
            self.send_error(404)
            return
        if route.mode == "hang":
            server.release.wait(HANG_LIMIT_S)
            self.close_connection = True
            return
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(route.body)))
        self.end_headers()
        if route.mode == "short":
            self.wfile.write(route.body[: len(route.body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(route.body)

    def log_message(self, *args) -> None:
        pass


class LocalServer:
    """Serves `routes` (path -> Route) on 127.0.0.1 and records every requested path."""

    def __init__(self) -> None:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.routes = {}
        self.httpd.requests = []
        self.httpd.release = threading.Event()
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def routes(self) -> dict[str, Route]:
        return self.httpd.routes

    @property
    def requests(self) -> list[str]:
        return self.httpd.requests

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}{path}"

    def close(self) -> None:
        self.httpd.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    local = LocalServer()
    yield local
    local.close()


@pytest.fixture
def drive(server, monkeypatch):
    """Google Drive ids are served from the local server at /drive/<id>, through the real HTTP transport.

    URLs pass through unchanged (tests point them at the local server themselves).
    """
    real_fetch = transport.fetch
    fetched_ids = []

    def fetch(source, dest, progress=None, timeout=transport.DEFAULT_TIMEOUT):
        if transport.is_url(source):
            return real_fetch(source, dest, progress, timeout=2.0)
        fetched_ids.append(source)
        return real_fetch(server.url(f"/drive/{source}"), dest, progress, timeout=2.0)

    monkeypatch.setattr(transport, "fetch", fetch)
    server.fetched_ids = fetched_ids
    return server


def closed_port_url(path: str = "/") -> str:
    """A URL on 127.0.0.1 where nothing listens, so connecting is refused."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def saved(obj) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def module_states(depth_model: str = "litemono", seed: int = 0) -> dict[str, bytes]:
    """Tiny module files of the given depth network, as bytes keyed by file name."""
    generator = torch.Generator().manual_seed(seed)
    tensor = lambda *shape: torch.rand(shape, generator=generator)  # noqa: E731
    depth_enc = {"stages.0.0.weight": tensor(4, 3)} if depth_model == "litemono" else {"encoder.conv1.weight": tensor(4, 3, 1, 1)}
    states = {
        "depth_enc": {**depth_enc, "height": 192, "width": 640},
        "depth_dec": {"decoder.0.weight": tensor(2)} if depth_model == "litemono" else {"dispconv_0.conv.weight": tensor(2)},
        "pose_enc": {"encoder.conv1.weight": tensor(4, 6, 1, 1), "height": 192, "width": 640},
        "pose_dec": {"convs.pose.weight": tensor(2)},
        "motion_enc": {"encoder.conv1.weight": tensor(4, 9, 1, 1), "height": 192, "width": 640},
        "motion_dec": {"convs.0.weight": tensor(2)},
        "motion_mask": {"convs.0.weight": tensor(3)},
    }
    return {f"{name}.pth": saved(states[name]) for name in MODULES}


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def checkpoint_zip(name: str, files: dict[str, bytes] | None = None, omit: tuple[str, ...] = (), extra: dict[str, bytes] | None = None) -> bytes:
    """A zip holding `<name>/` with the module files (minus `omit`) plus `extra` members (full paths)."""
    files = module_states() if files is None else files
    members = {f"{name}/{f}": data for f, data in files.items() if f not in omit}
    members.update(extra or {})
    return zip_bytes(members)


class RunsCode:
    """Pickles to a call of os.system: loading it without weights_only would touch `marker`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def code_running_pth(marker: Path) -> bytes:
    return saved({"weight": torch.zeros(2), "payload": RunsCode(marker)})


def snapshot(folder: Path) -> list[str]:
    """Every path under `folder`, hidden ones included; [] when it does not exist."""
    if not folder.exists():
        return []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def damage_member(data: bytes, member: str) -> bytes:
    """`data` (a zip) with one byte flipped in the middle of `member`'s compressed bytes."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        info = archive.getinfo(member)
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    damaged = bytearray(data)
    damaged[start + info.compress_size // 2] ^= 0xFF
    return bytes(damaged)
