"""`dynamo download ...` through typer's CliRunner: exit codes, messages without tracebacks, --json."""

import json

import pytest
import torch
from typer.testing import CliRunner

from conftest import SHARED, write_split_lists
from dynamo_cli.main import app
from dynamo_core.download import RELEASED_MODELS, transport
from dynamo_core.download import pretrained as pretrained_module
from dynamo_core.download.catalog import LITEMONO_DRIVE_ID
from download_support import (  # noqa: F401 (fixtures)
    MODULES,
    Route,
    checkpoint_zip,
    closed_port_url,
    code_running_pth,
    drive,
    module_states,
    saved,
    server,
    snapshot,
)

runner = CliRunner()
NAME = "K_Dynamo-Depth"


def serve(drive, data: bytes, name: str = NAME) -> None:
    drive.routes[f"/drive/{RELEASED_MODELS[name].drive_id}"] = Route(data)


def run(*args: str):
    result = runner.invoke(app, ["download", *args])
    assert "Traceback" not in result.stdout + result.stderr
    return result


def test_checkpoints_json_then_rerun_skips(drive, tmp_path):
    serve(drive, checkpoint_zip(NAME))
    first = run("checkpoints", NAME, "--ckpt-dir", str(tmp_path), "--json")
    assert first.exit_code == 0, first.stderr
    document = json.loads(first.stdout)
    assert document["ok"] is True
    assert [(r["name"], r["status"], r["path"]) for r in document["results"]] == [(NAME, "downloaded", str(tmp_path / NAME))]
    second = json.loads(run("checkpoints", NAME, "--ckpt-dir", str(tmp_path), "--json").stdout)
    assert second["results"][0]["status"] == "skipped"
    forced = json.loads(run("checkpoints", NAME, "--ckpt-dir", str(tmp_path), "--json", "--force").stdout)
    assert forced["results"][0]["status"] == "downloaded"


def test_checkpoints_table_on_stdout(drive, tmp_path):
    serve(drive, checkpoint_zip(NAME))
    result = run("checkpoints", NAME, "--ckpt-dir", str(tmp_path))
    assert result.exit_code == 0
    assert NAME in result.stdout and "downloaded" in result.stdout


def test_refused_checkpoint_exits_1_with_the_reason_and_leaves_nothing(drive, tmp_path):
    marker = tmp_path / "code_ran"
    serve(drive, checkpoint_zip(NAME, module_states() | {"pose_enc.pth": code_running_pth(marker)}))
    ckpt = tmp_path / "ckpt"
    result = run("checkpoints", NAME, "--ckpt-dir", str(ckpt), "--json")
    assert result.exit_code == 1
    assert "pose_enc.pth" in result.stderr and "refused for safety" in result.stderr
    assert json.loads(result.stdout)["results"][0]["status"] == "failed"
    assert not marker.exists() and snapshot(tmp_path) == []


def test_offline_message_says_how_to_fetch_by_hand(monkeypatch, tmp_path):
    url = closed_port_url("/zip")
    real_fetch = transport.fetch
    monkeypatch.setattr(transport, "fetch", lambda source, dest, progress=None, timeout=60: real_fetch(url, dest, progress, 2))
    result = run("checkpoints", NAME, "--ckpt-dir", str(tmp_path / "ckpt"))
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "may be offline" in message and "--from-file ZIP" in message
    assert RELEASED_MODELS[NAME].drive_id in message
    assert snapshot(tmp_path) == []


def test_waymo_name_exits_1_with_how_to_request(tmp_path):
    result = run("checkpoints", "W_Dynamo-Depth", "--ckpt-dir", str(tmp_path))
    assert result.exit_code == 1
    message = " ".join(result.stderr.split())
    assert "yihong@cs.cornell.edu" in message and "--from-file" in message
    assert snapshot(tmp_path) == []


def test_from_file_installs_a_waymo_zip(tmp_path):
    zip_path = tmp_path / "received.zip"
    zip_path.write_bytes(checkpoint_zip("W_Dynamo-Depth"))
    result = run("checkpoints", "--from-file", str(zip_path), "--ckpt-dir", str(tmp_path / "ckpt"), "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["results"][0]
    assert (row["name"], row["status"]) == ("W_Dynamo-Depth", "installed")
    assert sorted(p.name for p in (tmp_path / "ckpt" / "W_Dynamo-Depth").iterdir()) == sorted(f"{m}.pth" for m in MODULES)


def test_from_file_takes_one_name_at_most(tmp_path):
    result = run("checkpoints", NAME, "N_Dynamo-Depth", "--from-file", str(tmp_path / "x.zip"))
    assert result.exit_code == 2


def test_unknown_name_lists_the_known_ones(tmp_path):
    result = run("checkpoints", "K_Dynamo", "--ckpt-dir", str(tmp_path))
    assert result.exit_code == 1
    assert "K_Dynamo-Depth" in result.stderr and "W_Dynamo-Depth_MD2" in result.stderr


def test_several_failures_are_each_reported(drive, tmp_path):
    result = run("checkpoints", NAME, "N_Dynamo-Depth", "--ckpt-dir", str(tmp_path))  # nothing served
    assert result.exit_code == 1
    assert "2 of 2 downloads failed" in result.stderr
    assert result.stderr.count("HTTP 404") == 2


def test_pretrained_json(server, drive, monkeypatch, tmp_path):
    import hashlib

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    resnet = saved({"fc.weight": torch.zeros(3)})  # the wrong network: refused after the hash check
    name = f"resnet18-{hashlib.sha256(resnet).hexdigest()[:8]}.pth"
    server.routes[f"/{name}"] = Route(resnet)
    monkeypatch.setattr(pretrained_module, "resnet_url", lambda n: server.url(f"/{name}"))
    server.routes[f"/drive/{LITEMONO_DRIVE_ID}"] = Route(saved({"model": {"stages.0.0.gamma": torch.zeros(64)}}))
    result = run("pretrained", "--ckpt-dir", str(tmp_path / "ckpt"), "--json")
    assert result.exit_code == 1
    rows = {r["name"]: r for r in json.loads(result.stdout)["results"]}
    assert rows["resnet18"]["status"] == "failed" and "does not fit" in rows["resnet18"]["message"]
    assert rows["lite-mono-8m"]["status"] == "downloaded"
    assert snapshot(tmp_path / "hub") == [] and snapshot(tmp_path / "ckpt") == ["lite-mono-8m-pretrain.pth"]


def test_pretrained_resnet_option(monkeypatch, tmp_path):
    asked = []

    def record(resnets, ckpt_dir, **kwargs):
        asked.append((list(resnets), kwargs["litemono"]))
        return []

    monkeypatch.setattr("dynamo_cli.download.download_pretrained", record)
    assert run("pretrained", "--resnet", "18,34", "--resnet", "50", "--no-litemono").exit_code == 0
    assert asked == [([18, 34, 50], False)]
    assert run("pretrained", "--resnet", "eighteen").exit_code == 2


def test_splits_from_a_local_base_url(server, tmp_path, tmp_path_factory):
    # The real lists where the sample data are present, else generated ones in the same format.
    lists = SHARED / "splits" if (SHARED / "splits").is_dir() else write_split_lists(tmp_path_factory.mktemp("published"))
    for path in sorted((lists / "waymo").glob("*.txt")):
        server.routes[f"/s/waymo/{path.name}"] = Route(path.read_bytes())
    result = run("splits", "waymo", "--splits-dir", str(tmp_path), "--base-url", server.url("/s"), "--json")
    assert result.exit_code == 0, result.stderr
    row = json.loads(result.stdout)["results"][0]
    assert (row["name"], row["status"]) == ("waymo", "downloaded")
    assert snapshot(tmp_path) == ["waymo", "waymo/test_files.txt", "waymo/test_mask_files.txt"]


def test_splits_offline_exits_1_and_leaves_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("DYNAMO_SPLITS_URL", closed_port_url("/splits"))
    result = run("splits", "eigen_zhou", "--splits-dir", str(tmp_path / "splits"))
    assert result.exit_code == 1
    assert "may be offline" in " ".join(result.stderr.split())
    assert snapshot(tmp_path) == []


def test_checkpoint_folder_helper_downloads_only_with_yes(drive, tmp_path, monkeypatch):
    from dynamo_cli.download import checkpoint_folder
    from dynamo_core.errors import CheckpointError

    serve(drive, checkpoint_zip(NAME))
    with pytest.raises(CheckpointError, match="--yes"):
        checkpoint_folder(NAME, ckpt_dir=tmp_path)  # no terminal to ask on: the answer is no
    assert checkpoint_folder(NAME, yes=True, ckpt_dir=tmp_path) == tmp_path / NAME
    assert (tmp_path / NAME / "depth_enc.pth").is_file()
