"""Frames per second of prediction at the checkpoint's size, batch 1 and batch 8. Prints one JSON object.

    python benchmarks/predict.py --height 192 --width 640 --threads 2 [--models litemono,monodepthv2] [--no-onnx]

Measured per depth model (scratch weights; speed does not depend on the values):

- `baseline`: the original notebook's path, a plain float32 forward at batch 1 (default memory
  layout, autograd on), depth network only;
- `depth` in torch: `Predictor.disparity` (inference mode, each convolution in its measured faster
  layout) at batch 1 and 8, and `reference`: the same with plain float32 convolutions in the default
  layout; `ratio_*` is our time per frame over the reference's;
- `depth` in onnxruntime: the `dynamo export onnx` depth file, batch 1 and 8;
- `motion` in torch: depth, both poses, complete flow and mask for one target frame (a triplet),
  at batch 1 and 8, as `dynamo predict` runs them for sequences, ours and the reference's.

`speedup_depth_b8` is the best depth-only batch-8 figure over the baseline. For Lite-Mono,
`ratio_mlp_blocks_b1` and `_b8` give the depth forward's time with its residual MLP in row blocks over
its time with the plain form, the two alternating in this process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamo_core import conv_layouts  # noqa: E402
from dynamo_core.config import ModelConfig, default_scales  # noqa: E402
from dynamo_core.runtime import machine_info  # noqa: E402
from dynamo_core.model import DynamoModel  # noqa: E402
from dynamo_core.networks import pointwise_mlp  # noqa: E402
from dynamo_core.prediction.predictor import Predictor  # noqa: E402


def fps(run, frames: int, repeats: int, warmup: int = 1) -> float:
    """Frames per second from the median of `repeats` timed calls of `run` (each handles `frames` frames)."""
    for _ in range(warmup):
        run()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return frames / statistics.median(times)


def seconds(run) -> float:
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def bench_model(depth_model: str, args) -> dict:
    config = ModelConfig(depth_model=depth_model, weights_init="scratch", height=args.height, width=args.width,
                         scales=default_scales(depth_model))
    model = DynamoModel(config).eval()
    result: dict = {}

    # The notebook's path: a fresh float32 model, default layout, autograd on, batch 1.
    baseline_model = DynamoModel(config).eval()
    x1 = torch.rand(1, 3, args.height, args.width)
    result["baseline_fps_b1"] = fps(lambda: baseline_model.depth_dec(baseline_model.depth_enc(x1)), 1, args.repeats)

    loaded = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")
    predictor = Predictor(model, "cpu", "fp32", loaded=loaded)
    # The reference pattern: the same forward with plain float32 convolutions in the default layout.
    reference = Predictor(DynamoModel(config).eval(), "cpu", "fp32", loaded=loaded)
    conv_layouts.remove(reference.model)
    for batch in (1, 8):
        x = predictor._batch(list(torch.rand(batch, 3, args.height, args.width)))
        triplet = [predictor._batch(list(torch.rand(batch, 3, args.height, args.width))) for _ in range(3)]
        for name, runner in (("torch", predictor), ("reference", reference)):
            result[f"{name}_depth_fps_b{batch}"] = fps(lambda: runner.disparity(x), batch, args.repeats)
            if args.motion:
                def motion(runner=runner):
                    runner.disparity(triplet[1])
                    runner._motion(*triplet)

                result[f"{name}_motion_fps_b{batch}"] = fps(motion, batch, max(1, args.repeats // 2))
        for kind in ("depth", "motion") if args.motion else ("depth",):
            # Time per frame, ours over the reference pattern's.
            result[f"ratio_{kind}_b{batch}"] = result[f"reference_{kind}_fps_b{batch}"] / result[f"torch_{kind}_fps_b{batch}"]
    if depth_model == "litemono":
        # Lite-Mono's residual MLP in row blocks over its plain form, steps alternating in this process.
        for batch in (1, 8):
            x = predictor._batch(list(torch.rand(batch, 3, args.height, args.width)))
            blocks, plain = [], []
            for _ in range(max(args.repeats, 3)):
                blocks.append(seconds(lambda: predictor.disparity(x)))
                with mock.patch.object(pointwise_mlp, "_in_blocks_applies", lambda *a: False):
                    plain.append(seconds(lambda: predictor.disparity(x)))
            result[f"ratio_mlp_blocks_b{batch}"] = statistics.median(blocks) / statistics.median(plain)
    if args.bf16:
        bf16 = Predictor(DynamoModel(config).eval(), "cpu", "bf16")
        x = bf16._batch(list(torch.rand(8, 3, args.height, args.width)))
        result["torch_bf16_depth_fps_b8"] = fps(lambda: bf16.disparity(x), 8, args.repeats)

    if args.onnx:
        try:
            import onnxruntime as ort

            from dynamo_core.prediction.export import export_bytes
        except ImportError:
            result["onnx"] = "onnxruntime not installed"
        else:
            data = export_bytes(model, "depth", args.height, args.width, dynamic_batch=True)
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            options.log_severity_level = 3
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            for batch in (1, 8):
                x = torch.rand(batch, 3, args.height, args.width).numpy()
                result[f"onnx_depth_fps_b{batch}"] = fps(lambda: session.run(None, {"image": x}), batch, args.repeats)
    best = max(v for k, v in result.items() if k.endswith("depth_fps_b8") and isinstance(v, float))
    result["speedup_depth_b8"] = best / result["baseline_fps_b1"]
    return {k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", default="litemono,monodepthv2")
    parser.add_argument("--no-onnx", dest="onnx", action="store_false")
    parser.add_argument("--no-motion", dest="motion", action="store_false", help="Skip the motion timings.")
    parser.add_argument("--bf16", action="store_true", help="Also time depth in bfloat16 at batch 8.")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory():
        report = {
            "benchmark": "predict",
            "machine": machine_info(),
            "height": args.height,
            "width": args.width,
            "torch": torch.__version__,
            "models": {name: bench_model(name, args) for name in args.models.split(",") if name},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
