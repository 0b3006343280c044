"""Frames per second of prediction at the checkpoint's size, batch 1 and batch 8. Prints one JSON object.

    python benchmarks/predict.py --height 192 --width 640 --threads 2 [--models litemono,monodepthv2] [--no-onnx]

Measured per depth model (scratch weights; speed does not depend on the values):

- `baseline`: the original notebook's path, a plain float32 forward at batch 1 (default memory
  layout, autograd on), depth network only;
- `depth` in torch: `Predictor.disparity` (inference mode, channels-last) at batch 1 and 8;
- `depth` in onnxruntime: the `dynamo export onnx` depth file, batch 1 and 8;
- `motion` in torch: depth, both poses, complete flow and mask for one target frame (a triplet),
  at batch 1 and 8, as `dynamo predict` runs them for sequences.

`speedup_depth_b8` is the best depth-only batch-8 figure over the baseline.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dynamo_core.config import ModelConfig, default_scales  # noqa: E402
from dynamo_core.model import DynamoModel  # noqa: E402
from dynamo_core.prediction.predictor import Predictor  # noqa: E402


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


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


def bench_model(depth_model: str, args) -> dict:
    config = ModelConfig(depth_model=depth_model, weights_init="scratch", height=args.height, width=args.width,
                         scales=default_scales(depth_model))
    model = DynamoModel(config).eval()
    result: dict = {}

    # The notebook's path: a fresh float32 model, default layout, autograd on, batch 1.
    baseline_model = DynamoModel(config).eval()
    x1 = torch.rand(1, 3, args.height, args.width)
    result["baseline_fps_b1"] = fps(lambda: baseline_model.depth_dec(baseline_model.depth_enc(x1)), 1, args.repeats)

    predictor = Predictor(model, "cpu", "fp32", loaded=("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc",
                                                         "motion_dec", "motion_mask"))
    for batch in (1, 8):
        x = predictor._batch(list(torch.rand(batch, 3, args.height, args.width)))
        result[f"torch_depth_fps_b{batch}"] = fps(lambda: predictor.disparity(x), batch, args.repeats)
        if not args.motion:
            continue
        triplet = [predictor._batch(list(torch.rand(batch, 3, args.height, args.width))) for _ in range(3)]

        def motion():
            predictor.disparity(triplet[1])
            predictor._motion(*triplet)

        result[f"torch_motion_fps_b{batch}"] = fps(motion, batch, max(1, args.repeats // 2))
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
            data = export_bytes(model.float().to(memory_format=torch.contiguous_format), "depth", args.height,
                                args.width, dynamic_batch=True)
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
            "cpu": cpu_model(),
            "threads": args.threads,
            "height": args.height,
            "width": args.width,
            "torch": torch.__version__,
            "models": {name: bench_model(name, args) for name in args.models.split(",") if name},
        }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
