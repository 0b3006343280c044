"""`run_predict`, the command's engine: single images are predicted together, up to the batch size."""

from __future__ import annotations

import numpy as np

from dynamo_core.prediction.inputs import resolve_inputs
from dynamo_core.prediction.run import PredictOptions, run_predict
from predict_helpers import checkpoint, predictor, small_image  # noqa: F401


def test_single_images_share_batches_and_keep_their_order_and_size(predictor, tmp_path, monkeypatch):
    batch_size = 2
    paths = [small_image(tmp_path / "in" / f"a{i}.png", size=(96 + 16 * (i % 2), 40), seed=i) for i in range(5)]
    corrupt = tmp_path / "in" / "bad.png"
    corrupt.write_bytes(b"not a png")
    arguments = [str(p) for p in paths[:3]] + [str(corrupt)] + [str(p) for p in paths[3:]]
    sources, failures = resolve_inputs(arguments)
    assert not failures and not any(s.is_sequence for s in sources)

    calls = []
    real = predictor.predict_depth
    monkeypatch.setattr(predictor, "predict_depth", lambda images, batch_size: calls.append(len(images)) or
                        real(images, batch_size=batch_size))
    records, failed = [], []
    summary = run_predict(predictor, sources, PredictOptions(out=tmp_path / "out", save=("depth_npy",),
                                                             batch_size=batch_size),
                          on_frame=records.append, on_failure=failed.append)
    monkeypatch.undo()

    assert max(calls) == batch_size and sum(calls) == len(paths)
    assert [f.input for f in failed] == [str(corrupt)] and "bad.png" in failed[0].message
    assert summary.frames == len(paths)
    assert [r.input for r in records] == [str(p) for p in paths]
    for record, path in zip(records, paths):
        depth = np.load(record.outputs["depth_npy"])
        alone = predictor.predict_depth([path], batch_size=1)[0]
        assert depth.shape == alone.shape == (record.height, record.width)
        np.testing.assert_allclose(depth, alone, rtol=1e-4, atol=1e-4)
