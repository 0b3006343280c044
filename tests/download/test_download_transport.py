"""The transport: urllib for URLs (against a server on 127.0.0.1), gdown for Drive ids (gdown patched)."""

import time

import gdown
import pytest
import requests

from dynamo_core.download import transport
from dynamo_core.download.transport import DownloadError
from download_support import Route, closed_port_url, server  # noqa: F401 (fixture)


def test_url_transfer_writes_every_byte_and_reports_progress(server, tmp_path):
    body = bytes(range(256)) * 9000  # more than one chunk
    server.routes["/file.bin"] = Route(body)
    calls = []
    size = transport.fetch(server.url("/file.bin"), tmp_path / "out", lambda done, total: calls.append((done, total)))
    assert size == len(body)
    assert (tmp_path / "out").read_bytes() == body
    assert calls[-1] == (len(body), len(body))
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_transfer_that_stops_early_is_an_error_naming_url_and_counts(server, tmp_path):
    server.routes["/file.bin"] = Route(b"x" * 10_000, mode="short")
    with pytest.raises(DownloadError) as err:
        transport.fetch(server.url("/file.bin"), tmp_path / "out")
    message = str(err.value)
    assert server.url("/file.bin") in message
    assert "10000" in message and "offline" in message


def test_silent_server_times_out_with_an_offline_hint(server, tmp_path):
    server.routes["/slow"] = Route(b"", mode="hang")
    started = time.monotonic()
    with pytest.raises(DownloadError) as err:
        transport.fetch(server.url("/slow"), tmp_path / "out", timeout=0.5)
    assert time.monotonic() - started < 4
    assert "offline" in str(err.value) and server.url("/slow") in str(err.value)


def test_refused_connection_says_the_machine_may_be_offline(tmp_path):
    url = closed_port_url("/x")
    with pytest.raises(DownloadError, match="may be offline") as err:
        transport.fetch(url, tmp_path / "out", timeout=2)
    assert url in str(err.value)


def test_http_error_status_is_named(server, tmp_path):
    with pytest.raises(DownloadError, match="HTTP 404") as err:
        transport.fetch(server.url("/missing.txt"), tmp_path / "out")
    assert server.url("/missing.txt") in str(err.value)


def test_drive_ids_go_through_gdown_into_the_destination(monkeypatch, tmp_path):
    seen = {}

    def fake_download(output=None, id=None, quiet=False, progress=None, timeout=None, **kwargs):
        seen.update(id=id, quiet=quiet, timeout=timeout)
        output.write(b"zip bytes")
        if progress is not None:
            progress(9, 9)
        return output

    monkeypatch.setattr(gdown, "download", fake_download)
    calls = []
    size = transport.fetch("1AbCdEf", tmp_path / "out", lambda done, total: calls.append((done, total)), timeout=7)
    assert size == 9 and (tmp_path / "out").read_bytes() == b"zip bytes"
    assert seen == {"id": "1AbCdEf", "quiet": True, "timeout": 7}  # our progress bar replaces gdown's
    assert calls == [(9, 9)]


def test_gdown_network_failure_becomes_a_download_error_naming_the_id(monkeypatch, tmp_path):
    def failing_download(**kwargs):
        raise requests.exceptions.ConnectionError("Failed to resolve 'drive.google.com'")

    monkeypatch.setattr(gdown, "download", failing_download)
    with pytest.raises(DownloadError) as err:
        transport.fetch("1AbCdEf", tmp_path / "out")
    message = str(err.value)
    assert "1AbCdEf" in message and "https://drive.google.com/uc?id=1AbCdEf" in message
    assert "may be offline" in message and "ConnectionError" in message


def test_empty_drive_download_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setattr(gdown, "download", lambda **kwargs: kwargs["output"])
    with pytest.raises(DownloadError, match="arrived empty"):
        transport.fetch("1AbCdEf", tmp_path / "out")
