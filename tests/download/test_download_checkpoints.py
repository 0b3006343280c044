"""Released checkpoints: fetched zips are checked before anything lands in ckpt/, and failures leave nothing."""

import pytest

from dynamo_core.download import (
    PUBLIC_MODELS,
    RELEASED_MODELS,
    DownloadError,
    NotPublicError,
    download_checkpoint,
    download_checkpoints,
    install_checkpoint_zip,
    resolve_checkpoint,
    transport,
)
from dynamo_core.errors import CheckpointError, ConfigError
from dynamo_core.training.checkpoint import inspect_checkpoint
from download_support import (  # noqa: F401 (fixtures)
    MODULES,
    Route,
    checkpoint_zip,
    code_running_pth,
    damage_member,
    drive,
    module_states,
    server,
    snapshot,
    zip_bytes,
)

NAME = "K_Dynamo-Depth"
DRIVE_PATH = f"/drive/{RELEASED_MODELS[NAME].drive_id}"


def serve(drive, data: bytes, name: str = NAME, mode: str = "ok") -> None:
    drive.routes[f"/drive/{RELEASED_MODELS[name].drive_id}"] = Route(data, mode)


@pytest.fixture
def ckpt(tmp_path):
    folder = tmp_path / "ckpt"
    folder.mkdir()
    (folder / "other_run").mkdir()  # something of the user's that must survive
    (folder / "other_run" / "depth_enc.pth").write_bytes(b"user data")
    return folder


def test_download_unpacks_the_models_folder_and_leaves_nothing_else(drive, ckpt):
    files = module_states("litemono")
    serve(drive, checkpoint_zip(NAME, files))
    progress = []
    result = download_checkpoint(NAME, ckpt, progress=lambda label, done, total: progress.append((label, done, total)))
    assert result.status == "downloaded" and result.path == str(ckpt / NAME)
    assert "Lite-Mono" in result.message and "192x640" in result.message
    assert {f: (ckpt / NAME / f).read_bytes() for f in files} == files
    assert snapshot(ckpt) == sorted(["other_run", "other_run/depth_enc.pth", NAME, *(f"{NAME}/{f}" for f in files)])
    assert inspect_checkpoint(ckpt / NAME).modules == MODULES
    assert progress[-1][0] == f"{NAME}.zip" and progress[-1][1] == result.bytes
    assert drive.fetched_ids == [RELEASED_MODELS[NAME].drive_id]


def test_a_missing_ckpt_dir_is_created_on_success_and_not_left_on_failure(drive, tmp_path):
    serve(drive, b"not a zip")
    with pytest.raises(DownloadError):
        download_checkpoint(NAME, tmp_path / "new" / "ckpt")
    assert snapshot(tmp_path) == []
    serve(drive, checkpoint_zip(NAME))
    download_checkpoint(NAME, tmp_path / "new" / "ckpt")
    assert (tmp_path / "new" / "ckpt" / NAME / "motion_mask.pth").is_file()


def _refused(drive, ckpt, data: bytes, mode: str = "ok") -> str:
    before = snapshot(ckpt)
    serve(drive, data, mode=mode)
    with pytest.raises(DownloadError) as err:
        download_checkpoint(NAME, ckpt)
    assert snapshot(ckpt) == before, "a failed download must leave nothing behind"
    return str(err.value)


def test_zip_with_a_corrupt_member_is_refused(drive, ckpt):
    data = damage_member(checkpoint_zip(NAME), f"{NAME}/motion_mask.pth")
    message = _refused(drive, ckpt, data)
    assert "corrupt" in message or "not a whole zip" in message
    assert RELEASED_MODELS[NAME].drive_id in message


def test_truncated_zip_is_refused(drive, ckpt):
    data = checkpoint_zip(NAME)
    message = _refused(drive, ckpt, data[: len(data) // 2])
    assert "not a whole zip archive" in message


def test_zip_missing_a_module_is_refused_naming_it(drive, ckpt):
    message = _refused(drive, ckpt, checkpoint_zip(NAME, omit=("motion_mask.pth",)))
    assert "lacks motion_mask.pth" in message and "nothing was written" in message


def test_pth_that_would_run_code_is_refused_and_never_runs(drive, ckpt, tmp_path):
    marker = tmp_path / "code_ran"
    files = module_states() | {"depth_dec.pth": code_running_pth(marker)}
    message = _refused(drive, ckpt, checkpoint_zip(NAME, files))
    assert "depth_dec.pth" in message and "refused for safety" in message
    assert not marker.exists()


def test_interrupted_transfer_leaves_nothing(drive, ckpt):
    message = _refused(drive, ckpt, checkpoint_zip(NAME), mode="short")
    assert "stopped after" in message and "--from-file" in message


@pytest.mark.parametrize(
    "member",
    [f"{NAME}/../../escaped.pth", "/absolute.pth", f"{NAME}\\..\\escaped.pth"],
)
def test_zip_members_that_escape_the_folder_are_refused(drive, ckpt, tmp_path, member):
    message = _refused(drive, ckpt, checkpoint_zip(NAME, extra={member: b"x"}))
    assert "path" in message or "outside" in message
    assert not (tmp_path / "escaped.pth").exists() and not (ckpt.parent / "escaped.pth").exists()


def test_zip_needs_exactly_one_top_folder(drive, ckpt):
    assert "exactly one folder" in _refused(drive, ckpt, checkpoint_zip(NAME, extra={"README.txt": b"hi"}))
    assert "exactly one folder" in _refused(drive, ckpt, checkpoint_zip(NAME, extra={"Other/x.pth": b"x"}))
    flat = zip_bytes(module_states())
    assert "exactly one folder" in _refused(drive, ckpt, flat)


def test_macos_metadata_in_the_zip_is_ignored(drive, ckpt):
    serve(drive, checkpoint_zip(NAME, extra={"__MACOSX/._K": b"junk", f"{NAME}/.DS_Store": b"junk"}))
    download_checkpoint(NAME, ckpt)
    assert sorted(p.name for p in (ckpt / NAME).iterdir()) == sorted(f"{m}.pth" for m in MODULES)


def test_wrong_depth_network_for_the_name_is_refused(drive, ckpt):
    message = _refused(drive, ckpt, checkpoint_zip(NAME, module_states("monodepthv2")))
    assert "Monodepth2" in message and NAME in message


def test_rerun_skips_and_force_replaces(drive, ckpt):
    serve(drive, checkpoint_zip(NAME, module_states(seed=1)))
    download_checkpoint(NAME, ckpt)
    requests_after_first = len(drive.requests)

    serve(drive, checkpoint_zip(NAME, module_states(seed=2)))
    again = download_checkpoint(NAME, ckpt)
    assert again.status == "skipped" and "--force" in again.message
    assert len(drive.requests) == requests_after_first
    assert (ckpt / NAME / "depth_enc.pth").read_bytes() == module_states(seed=1)["depth_enc.pth"]

    forced = download_checkpoint(NAME, ckpt, force=True)
    assert forced.status == "downloaded"
    assert (ckpt / NAME / "depth_enc.pth").read_bytes() == module_states(seed=2)["depth_enc.pth"]
    assert snapshot(ckpt) == sorted(["other_run", "other_run/depth_enc.pth", NAME, *(f"{NAME}/{m}.pth" for m in MODULES)])


def test_forced_download_that_fails_keeps_the_existing_folder(drive, ckpt):
    serve(drive, checkpoint_zip(NAME, module_states(seed=1)))
    download_checkpoint(NAME, ckpt)
    before = snapshot(ckpt)
    serve(drive, checkpoint_zip(NAME, omit=("pose_dec.pth",)))
    with pytest.raises(DownloadError) as err:
        download_checkpoint(NAME, ckpt, force=True)
    assert "existing folder was kept" in str(err.value)
    assert snapshot(ckpt) == before
    assert (ckpt / NAME / "depth_enc.pth").read_bytes() == module_states(seed=1)["depth_enc.pth"]


def test_skip_notes_an_incomplete_existing_folder(ckpt):
    (ckpt / NAME).mkdir()
    (ckpt / NAME / "depth_enc.pth").write_bytes(b"x")
    result = download_checkpoint(NAME, ckpt)
    assert result.status == "skipped" and "lacks depth_dec.pth" in result.message


def test_no_names_means_every_public_model(drive, ckpt):
    for name in PUBLIC_MODELS:
        depth = RELEASED_MODELS[name].depth_model
        serve(drive, checkpoint_zip(name, module_states(depth)), name=name)
    results = download_checkpoints([], ckpt)
    assert [r.name for r in results] == list(PUBLIC_MODELS)
    assert all(r.status == "downloaded" for r in results)
    assert sorted(drive.fetched_ids) == sorted(RELEASED_MODELS[n].drive_id for n in PUBLIC_MODELS)


def test_one_failure_does_not_stop_the_others(drive, ckpt):
    serve(drive, checkpoint_zip(NAME))
    results = download_checkpoints([NAME, "N_Dynamo-Depth"], ckpt)  # N_ is not served: HTTP 404
    assert [r.status for r in results] == ["downloaded", "failed"]
    assert "404" in results[1].message


def test_unknown_name_fails_before_anything_is_fetched(drive, ckpt):
    with pytest.raises(ConfigError, match="K_Dynamo-Depth"):
        download_checkpoints([NAME, "K_Dynamo_Depth"], ckpt)
    assert drive.requests == []


# ---------------------------------------------------------------- Waymo models and local zips


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("nothing may be fetched")

    monkeypatch.setattr(transport, "fetch", refuse)


@pytest.mark.parametrize("name", ["W_Dynamo-Depth", "W_Dynamo-Depth_MD2"])
def test_waymo_models_say_how_to_request_them(no_network, ckpt, name):
    with pytest.raises(NotPublicError) as err:
        download_checkpoint(name, ckpt)
    message = str(err.value)
    assert "Waymo Open Dataset" in message and "yihong@cs.cornell.edu" in message
    assert f"dynamo download checkpoints {name} --from-file ZIP" in message
    results = download_checkpoints([name], ckpt)
    assert results[0].status == "unavailable"


def test_waymo_zip_from_file_is_installed(no_network, ckpt, tmp_path):
    zip_path = tmp_path / "W_Dynamo-Depth.zip"
    zip_path.write_bytes(checkpoint_zip("W_Dynamo-Depth"))
    result = download_checkpoint("W_Dynamo-Depth", ckpt, from_file=zip_path)
    assert result.status == "installed" and result.source == str(zip_path)
    assert inspect_checkpoint(ckpt / "W_Dynamo-Depth").depth_model == "litemono"
    assert zip_path.is_file()  # the user's zip is left alone


def test_from_file_takes_the_name_from_the_zip(no_network, ckpt, tmp_path):
    zip_path = tmp_path / "model.zip"
    zip_path.write_bytes(checkpoint_zip("W_Dynamo-Depth_MD2", module_states("monodepthv2")))
    result = install_checkpoint_zip(zip_path, ckpt_dir=ckpt)
    assert result.name == "W_Dynamo-Depth_MD2"
    assert inspect_checkpoint(ckpt / "W_Dynamo-Depth_MD2").depth_model == "monodepthv2"


def test_from_file_checks_like_a_download(no_network, ckpt, tmp_path):
    zip_path = tmp_path / "W.zip"
    zip_path.write_bytes(checkpoint_zip("W_Dynamo-Depth", omit=("motion_dec.pth",)))
    before = snapshot(ckpt)
    with pytest.raises(DownloadError) as err:
        download_checkpoint("W_Dynamo-Depth", ckpt, from_file=zip_path)
    assert str(zip_path) in str(err.value) and "motion_dec.pth" in str(err.value)
    assert snapshot(ckpt) == before
    with pytest.raises(DownloadError, match="does not exist"):
        download_checkpoint("W_Dynamo-Depth", ckpt, from_file=tmp_path / "absent.zip")


# ---------------------------------------------------------------- resolve_checkpoint


def test_resolve_returns_existing_folders_without_asking(ckpt, no_network):
    never = lambda question: pytest.fail("must not ask")  # noqa: E731
    assert resolve_checkpoint(ckpt / "other_run", ckpt, confirm=never) == ckpt / "other_run"
    (ckpt / NAME).mkdir()
    assert resolve_checkpoint(NAME, ckpt, confirm=never) == ckpt / NAME


def test_resolve_unknown_missing_folder_names_it(ckpt, no_network):
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(ckpt / "my_run", ckpt)
    assert str(ckpt / "my_run") in str(err.value) and "does not exist" in str(err.value)


def test_resolve_released_name_downloads_only_with_consent(drive, ckpt):
    serve(drive, checkpoint_zip(NAME))
    questions = []
    with pytest.raises(CheckpointError) as err:
        resolve_checkpoint(NAME, ckpt, confirm=lambda q: questions.append(q) or False)
    assert f"dynamo download checkpoints {NAME}" in str(err.value) and "--yes" in str(err.value)
    assert len(questions) == 1 and str(ckpt / NAME) in questions[0]
    assert drive.requests == [] and not (ckpt / NAME).exists()

    with pytest.raises(CheckpointError):
        resolve_checkpoint(NAME, ckpt)  # no prompt available, no --yes
    assert resolve_checkpoint(NAME, ckpt, confirm=lambda q: True) == ckpt / NAME
    assert (ckpt / NAME / "depth_enc.pth").is_file()


def test_resolve_path_ending_in_a_released_name_downloads_there_with_yes(drive, tmp_path):
    serve(drive, checkpoint_zip(NAME))
    target = tmp_path / "models" / NAME
    assert resolve_checkpoint(str(target), "ignored", assume_yes=True) == target
    assert inspect_checkpoint(target).modules == MODULES


def test_resolve_waymo_name_explains_the_request(ckpt, no_network):
    with pytest.raises(CheckpointError, match="yihong@cs.cornell.edu"):
        resolve_checkpoint("W_Dynamo-Depth", ckpt, assume_yes=True)

