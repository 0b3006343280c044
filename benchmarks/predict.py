"""Frames per second of prediction at the checkpoint's size, batch 1 and batch 8. Prints one JSON object.

    python benchmarks/predict.py --height 192 --width 640 --threads 2 [--models litemono,monodepthv2] [--no-onnx]

Measured per depth model (scratch weights; speed does not depend on the values):

- `baseline`: the original notebook's path, a plain float32 forward at batch 1 (default memory
  layout, autograd on), depth network only; like every figure here it runs with glibc keeping freed
  memory (`keep_freed_memory`), which `Predictor` sets;
- `depth` in torch: `Predictor.disparity` (inference mode, each convolution in its measured faster
  layout) at batch 1 and 8, and `reference`: the same with plain float32 convolutions in the default
  layout; `ratio_*` is our time per frame over the reference's;
- `depth` in onnxruntime: the `dynamo export onnx` depth file, batch 1 and 8;
- `motion` in torch: depth, both poses, complete flow and mask for one target frame (a triplet),
  at batch 1 and 8, as `dynamo predict` runs them for sequences, ours and the reference's.

`speedup_depth_b8` is the best depth-only batch-8 figure (ours, torch or onnxruntime) over the baseline.
For Lite-Mono, `ratio_mlp_blocks_b1` and `_b8` give the depth forward's time with its residual MLP in
row blocks over its time with the plain form (`plain_mlp_depth_fps_*`). All depth figures of a model are
measured in interleaved rounds, one call of each per round, so the machine's drift reaches them alike;
the motion figures likewise among themselves.
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
from dynamo_core.runtime import keep_freed_memory, machine_info  # noqa: E402
from dynamo_core.model import DynamoModel  # noqa: E402
from dynamo_core.networks import pointwise_mlp  # noqa: E402
from dynamo_core.prediction.predictor import Predictor  # noqa: E402


def interleaved_fps(runs: dict, repeats: int) -> dict[str, float]:
    """Frames per second of each `name: (run, frames)`: after one warm-up call each, `repeats` rounds that
    call every run once, so that the machine's drift reaches them all alike. The order rotates by one each
    round, so that no run always follows the same other one (a large batch leaves the caches cold for
    whatever runs next). Medians per run."""
    for run, _ in runs.values():
        run()
    names = list(runs)
    times: dict[str, list[float]] = {name: [] for name in runs}
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            start = time.perf_counter()
            runs[name][0]()
            times[name].append(time.perf_counter() - start)
    return {name: frames / statistics.median(times[name]) for name, (_, frames) in runs.items()}


def plain_mlp(run):
    """`run` with Lite-Mono's residual MLP in its plain form instead of row blocks."""
    def plain():
        with mock.patch.object(pointwise_mlp, "_in_blocks_applies", lambda *a: False):
            run()
    return plain


def onnx_session(model, args):
    try:
        import onnxruntime as ort

        from dynamo_core.prediction.export import export_bytes
    except ImportError:
        return None
    data = export_bytes(model, "depth", args.height, args.width, dynamic_batch=True)
    options = ort.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.log_severity_level = 3
    # onnxruntime's threads otherwise spin after each run and slow whatever is timed next.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def bench_model(depth_model: str, args) -> dict:
    config = ModelConfig(depth_model=depth_model, weights_init="scratch", height=args.height, width=args.width,
                         scales=default_scales(depth_model))
    model = DynamoModel(config).eval()
    result: dict = {}
    loaded = ("depth_enc", "depth_dec", "pose_enc", "pose_dec", "motion_enc", "motion_dec", "motion_mask")
    predictor = Predictor(model, "cpu", "fp32", loaded=loaded)
    # The reference pattern: the same forward with plain float32 convolutions in the default layout.
    reference = Predictor(DynamoModel(config).eval(), "cpu", "fp32", loaded=loaded)
    conv_layouts.remove(reference.model)
    # The notebook's path: a fresh float32 model, default layout, autograd on, batch 1.
    baseline_model = DynamoModel(config).eval()
    x1 = torch.rand(1, 3, args.height, args.width)
    depth_runs = {"baseline_fps_b1": (lambda: baseline_model.depth_dec(baseline_model.depth_enc(x1)), 1)}
    motion_runs = {}
    session = onnx_session(model, args) if args.onnx else None
    if args.onnx and session is None:
        result["onnx"] = "onnxruntime not installed"
    for batch in (1, 8):
        x = predictor._batch(list(torch.rand(batch, 3, args.height, args.width)))
        triplet = [predictor._batch(list(torch.rand(batch, 3, args.height, args.width))) for _ in range(3)]
        for name, runner in (("torch", predictor), ("reference", reference)):
            depth_runs[f"{name}_depth_fps_b{batch}"] = (lambda runner=runner, x=x: runner.disparity(x), batch)

            def motion(runner=runner, triplet=triplet):
                runner.disparity(triplet[1])
                runner._motion(*triplet)

            motion_runs[f"{name}_motion_fps_b{batch}"] = (motion, batch)
        if depth_model == "litemono":
            depth_runs[f"plain_mlp_depth_fps_b{batch}"] = (plain_mlp(lambda x=x: predictor.disparity(x)), batch)
        if session is not None:
            array = x.numpy()
            depth_runs[f"onnx_depth_fps_b{batch}"] = (lambda array=array: session.run(None, {"image": array}), batch)
    result.update(interleaved_fps(depth_runs, args.repeats))
    if args.motion:
        result.update(interleaved_fps(motion_runs, max(1, args.repeats // 2)))
    for batch in (1, 8):
        for kind in ("depth", "motion") if args.motion else ("depth",):
            # Time per frame, ours over the reference pattern's.
            result[f"ratio_{kind}_b{batch}"] = result[f"reference_{kind}_fps_b{batch}"] / result[f"torch_{kind}_fps_b{batch}"]
        if depth_model == "litemono":
            result[f"ratio_mlp_blocks_b{batch}"] = result[f"plain_mlp_depth_fps_b{batch}"] / result[f"torch_depth_fps_b{batch}"]
    if args.bf16:
        bf16 = Predictor(DynamoModel(config).eval(), "cpu", "bf16")
        x = bf16._batch(list(torch.rand(8, 3, args.height, args.width)))
        result.update(interleaved_fps({"torch_bf16_depth_fps_b8": (lambda: bf16.disparity(x), 8)}, args.repeats))
    best = max(v for k, v in result.items() if k.endswith("depth_fps_b8") and not k.startswith(("reference", "plain"))
               and isinstance(v, float))
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
    # Predictor sets this process-wide allocator option on the CPU; set it first, so that every
    # measurement, the baseline's too, runs under it.
    keep_freed_memory()
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
