"""ONNX export: onnxruntime agrees with PyTorch on real frames, and a tampered model fails the check."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from dynamo_core.prediction.export import ExportError, check_frames, export_onnx  # noqa: E402
from dynamo_core.prediction.inputs import read_rgb  # noqa: E402
from predict_helpers import HEIGHT, TINY_KITTI, WIDTH, checkpoint, frames_of, predictor  # noqa: E402,F401

pytestmark = pytest.mark.sample_data  # built from, or compared with, the released sample frames


@pytest.fixture(scope="module")
def kitti_frames():
    return check_frames(HEIGHT, WIDTH, [read_rgb(p) for p in frames_of(TINY_KITTI)])


@pytest.mark.parametrize("part", ["depth", "pose", "motion"])
def test_parity_holds(predictor, kitti_frames, tmp_path, part):
    out = tmp_path / f"{part}.onnx"
    result = export_onnx(predictor.model, out, part, frames=kitti_frames)
    assert result.max_abs_error <= 1e-4 and out.is_file()
    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["dynamo.part"] == part and meta["dynamo.height"] == str(HEIGHT)


def test_a_tampered_model_fails_and_nothing_is_written(predictor, kitti_frames, tmp_path):
    def tamper(data: bytes) -> bytes:
        model = onnx.load_from_string(data)
        from onnx import numpy_helper

        biggest = max(model.graph.initializer, key=lambda t: np.prod(t.dims))
        values = numpy_helper.to_array(biggest).copy()
        values.flat[::7] += 0.5
        biggest.CopyFrom(numpy_helper.from_array(values, biggest.name))
        return model.SerializeToString()

    out = tmp_path / "depth.onnx"
    with pytest.raises(ExportError, match="not written"):
        export_onnx(predictor.model, out, "depth", frames=kitti_frames, tamper=tamper)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_onnx_depth_predictor_matches_torch(predictor, kitti_frames, tmp_path):
    from dynamo_core.prediction.onnx_runtime import OnnxDepthPredictor

    out = tmp_path / "depth.onnx"
    export_onnx(predictor.model, out, "depth", frames=kitti_frames[:1], dynamic_batch=True)
    runtime = OnnxDepthPredictor(out)
    images = [read_rgb(p) for p in frames_of(TINY_KITTI)]
    for a, b in zip(runtime.predict_depth(images), predictor.predict_depth(images)):
        assert a.shape == b.shape
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-3)
