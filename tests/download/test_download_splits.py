"""Split lists: fetched per split from a configurable base URL, checked, and installed all or nothing."""

from pathlib import Path

import pytest

from conftest import SHARED, write_split_lists
from dynamo_core.download import SPLIT_FILES, SPLITS_URL_ENV, DownloadError, download_split, download_splits
from dynamo_core.download.catalog import splits_base_url
from dynamo_core.errors import ConfigError
from download_support import Route, server, snapshot  # noqa: F401 (fixture)

PUBLISHED_SPLITS = SHARED / "splits"  # the real lists, in the sample data
SPLITS = Path()  # the lists these tests publish, set by the fixture below


@pytest.fixture(scope="module", autouse=True)
def _split_lists(tmp_path_factory):
    """The real lists where the sample data are present (the largest is 1.8 MB), else generated ones
    in the same format."""
    global SPLITS
    SPLITS = PUBLISHED_SPLITS if PUBLISHED_SPLITS.is_dir() else write_split_lists(tmp_path_factory.mktemp("published"))


def publish(server, names=tuple(SPLIT_FILES)) -> str:
    """Serve the split lists at <base>/<name>/<file>; return the base URL."""
    for name in names:
        for path in sorted((SPLITS / name).glob("*.txt")):
            server.routes[f"/splits/{name}/{path.name}"] = Route(path.read_bytes())
    return server.url("/splits")


@pytest.mark.sample_data
def test_catalog_lists_exactly_the_published_files():
    for name, files in SPLIT_FILES.items():
        assert sorted(files) == sorted(p.name for p in (PUBLISHED_SPLITS / name).glob("*.txt"))


def test_every_split_arrives_byte_for_byte(server, tmp_path):
    base = publish(server)
    results = download_splits([], tmp_path / "splits", base_url=base)
    assert [r.name for r in results] == list(SPLIT_FILES) and all(r.status == "downloaded" for r in results)
    for name, files in SPLIT_FILES.items():
        for file_name in files:
            assert (tmp_path / "splits" / name / file_name).read_bytes() == (SPLITS / name / file_name).read_bytes()
    assert snapshot(tmp_path / "splits") == sorted([*SPLIT_FILES, *(f"{n}/{f}" for n, fs in SPLIT_FILES.items() for f in fs)])


def test_waymo_asks_only_for_its_public_files(server, tmp_path):
    base = publish(server, ["waymo"])
    download_split("waymo", tmp_path, base_url=base)
    assert sorted(server.requests) == ["/splits/waymo/test_files.txt", "/splits/waymo/test_mask_files.txt"]


def test_base_url_comes_from_the_environment(server, tmp_path, monkeypatch):
    monkeypatch.setenv(SPLITS_URL_ENV, publish(server, ["eigen_zhou"]) + "/")
    result = download_split("eigen_zhou", tmp_path)
    assert result.source == server.url("/splits/eigen_zhou")
    assert (tmp_path / "eigen_zhou" / "test_files.txt").is_file()


def test_default_base_url_is_the_public_repository(monkeypatch):
    monkeypatch.delenv(SPLITS_URL_ENV, raising=False)
    assert splits_base_url() == "https://raw.githubusercontent.com/YihongSun/Dynamo-Depth/main/splits"


def _refused(server, tmp_path, name="eigen_zhou") -> str:
    before = snapshot(tmp_path)
    with pytest.raises(DownloadError) as err:
        download_split(name, tmp_path / "splits", base_url=server.url("/splits"))
    assert snapshot(tmp_path) == before, "a failed split must leave nothing behind"
    return str(err.value)


@pytest.mark.parametrize(
    "body, reason",
    [
        (b"<!DOCTYPE html><html><body>Not Found</body></html>\n", "line 1"),
        (b"", "empty"),
        (b"   \n\n", "empty"),
        (b"2011_09_26/drive 0000000069 l\n\x00\x01binary", "binary"),
        (b"../../etc 12 l\n", "line 1"),
        (b"2011_09_26/drive 12 x\n", "line 1"),
        (b"\xff\xfe not utf-8 12\n", "UTF-8"),
    ],
)
def test_implausible_split_files_are_refused(server, tmp_path, body, reason):
    publish(server, ["eigen_zhou"])
    server.routes["/splits/eigen_zhou/test_files.txt"] = Route(body)
    message = _refused(server, tmp_path)
    assert reason in message and server.url("/splits/eigen_zhou/test_files.txt") in message


def test_a_missing_file_means_no_file_of_the_split_is_installed(server, tmp_path):
    publish(server, ["eigen_zhou"])
    del server.routes["/splits/eigen_zhou/test_files.txt"]
    message = _refused(server, tmp_path)
    assert "HTTP 404" in message and "save it as" in message
    assert server.requests[0] == "/splits/eigen_zhou/train_files.txt"  # fetched, then discarded


def test_interrupted_transfer_leaves_nothing(server, tmp_path):
    publish(server, ["eigen_zhou"])
    route = server.routes["/splits/eigen_zhou/train_files.txt"]
    server.routes["/splits/eigen_zhou/train_files.txt"] = Route(route.body, mode="short")
    assert "stopped after" in _refused(server, tmp_path)


def test_existing_files_are_kept_unless_forced(server, tmp_path):
    base = publish(server, ["eigen_zhou"])
    folder = tmp_path / "eigen_zhou"
    folder.mkdir()
    (folder / "train_files.txt").write_text("mine/drive 1 l\n")
    partial = download_split("eigen_zhou", tmp_path, base_url=base)
    assert partial.status == "downloaded" and "kept train_files.txt" in partial.message
    assert server.requests == ["/splits/eigen_zhou/test_files.txt"]
    assert (folder / "train_files.txt").read_text() == "mine/drive 1 l\n"

    assert download_split("eigen_zhou", tmp_path, base_url=base).status == "skipped"
    assert len(server.requests) == 1

    download_split("eigen_zhou", tmp_path, base_url=base, force=True)
    assert (folder / "train_files.txt").read_bytes() == (SPLITS / "eigen_zhou" / "train_files.txt").read_bytes()
    assert snapshot(folder) == ["test_files.txt", "train_files.txt"]


def test_unknown_split_fails_before_anything_is_fetched(server, tmp_path):
    with pytest.raises(ConfigError, match="eigen_zhou"):
        download_splits(["eigen_zhou", "kitti"], tmp_path, base_url=server.url("/splits"))
    assert server.requests == [] and snapshot(tmp_path) == []
