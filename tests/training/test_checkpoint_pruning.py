"""Older checkpoints give up their resume state, and with phase-end their folders, only after a newer one is complete."""

from __future__ import annotations

import pytest

from dynamo_core.training.state import MARKER, STATE_FILE, latest_checkpoint, prune_checkpoints


def _fake_checkpoint(models, name):
    folder = models / name
    folder.mkdir(parents=True)
    for file in ("depth_enc.pth", STATE_FILE, MARKER):
        (folder / file).write_bytes(b"x")
    return folder


NAMES = ["disp_init_00", "disp_init_01", "motion_init_00", "mask_init_00", "mask_init_01", "mask_init_02"]


@pytest.mark.parametrize("keep", ["all", "phase-end"])
def test_only_the_newest_checkpoint_keeps_its_resume_state(tmp_path, keep):
    models = tmp_path / "models"
    for name in NAMES:
        _fake_checkpoint(models, name)
    (models / ".mask_init_03.abc.partial").mkdir()  # a write in progress is never touched
    prune_checkpoints(models / "mask_init_01", keep)

    assert (models / "mask_init_01" / STATE_FILE).is_file()
    assert (models / "mask_init_02" / STATE_FILE).is_file()  # newer than the one just saved: left alone
    assert (models / ".mask_init_03.abc.partial").is_dir()
    expected = set(NAMES) if keep == "all" else set(NAMES) - {"mask_init_00"}
    assert {p.name for p in models.iterdir() if not p.name.startswith(".")} == expected
    for name in expected - {"mask_init_01", "mask_init_02"}:
        assert (models / name / "depth_enc.pth").is_file()
        assert not (models / name / STATE_FILE).exists(), name
    assert latest_checkpoint(models).name == "mask_init_02"


def test_phase_end_keeps_the_last_epoch_of_every_phase(tmp_path):
    models = tmp_path / "models"
    for name in NAMES:
        _fake_checkpoint(models, name)
        prune_checkpoints(models / name, "phase-end")
    assert sorted(p.name for p in models.iterdir()) == ["disp_init_01", "mask_init_02", "motion_init_00"]
    assert [p.name for p in models.iterdir() if (p / STATE_FILE).exists()] == ["mask_init_02"]


def test_unknown_keep_is_refused(tmp_path):
    folder = _fake_checkpoint(tmp_path / "models", "disp_init_00")
    with pytest.raises(ValueError, match="keep"):
        prune_checkpoints(folder, "newest")
