"""The user's own images and videos: `Predictor`, the output writers and ONNX export.

    from dynamo_core.prediction import Predictor

    predictor = Predictor.from_checkpoint("path/to/checkpoint", device="auto")
    depth = predictor.predict_depth(["frame.jpg"])[0]            # float32 (H, W)
    seq = predictor.predict_sequence(["0.jpg", "1.jpg", "2.jpg"])  # depth, mask, flow, poses

Names are imported on first use, so that `dynamo_core.prediction.onnx_runtime` loads without torch.
"""

from importlib import import_module

_NAMES = {
    "Predictor": ".predictor",
    "SequencePrediction": ".sequence",
    "Intrinsics": ".intrinsics",
    "backproject_depth": ".geometry",
    "chain_poses": ".geometry",
    "ground_plane_scale": ".geometry",
    "OnnxDepthPredictor": ".onnx_runtime",
    "export_onnx": ".export",
}

__all__ = sorted(_NAMES)


def __getattr__(name):
    if name in _NAMES:
        return getattr(import_module(_NAMES[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
