"""`dynamo train`: the four-phase Dynamo-Depth training."""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Tuple

import typer

from dynamo_core.config import DATASET_SIZES, DataConfig, ModelConfig, OptimConfig, RunConfig, TrainConfig, default_scales

from .options import int_list, str_list
from .output import err_console, handle_errors
from .progress import TrainingProgress

DATASETS = "kitti, waymo, nuscenes or synthetic"


def build_config(
    *,
    name: str,
    log_dir: str,
    dataset: str,
    data_path: str,
    split: Optional[str],
    height: Optional[int],
    width: Optional[int],
    cam_name: Optional[str],
    img_type: str,
    depth_model: str,
    num_layers: int,
    weights_init: str,
    scales: Optional[str],
    frame_ids: str,
    min_depth: float,
    max_depth: float,
    batch_size: int,
    learning_rate: float,
    scheduler_step_size: int,
    epoch_schedule: Tuple[int, int, int, int],
    epoch_size: int,
    loss,
    load: str,
    log_frequency: int,
    save_frequency: int,
    keep_checkpoints: str,
    num_workers: int,
    device: str,
    seed: int,
    max_steps: int,
    threads: int,
    wandb: bool,
    precision: str = "fp32",
    conv_layout: str = "auto",
    flow_start: str = "random",
) -> RunConfig:
    """Options to a validated RunConfig, with the dataset-dependent defaults filled in."""
    default_h, default_w = DATASET_SIZES.get(dataset, (192, 640))
    model = ModelConfig(
        depth_model=depth_model,
        num_layers=num_layers,
        weights_init=weights_init,
        height=height or default_h,
        width=width or default_w,
        scales=int_list(scales, "--scales") if scales else default_scales(depth_model),
        frame_ids=int_list(frame_ids, "--frame-ids"),
        min_depth=min_depth,
        max_depth=max_depth,
        flow_start=flow_start,
    )
    config = RunConfig(
        model=model,
        data=DataConfig(dataset=dataset, data_path=data_path, split=split or "", img_type=img_type,
                        cam_name=cam_name or "", num_workers=num_workers),
        loss=loss,
        optim=OptimConfig(learning_rate=learning_rate, scheduler_step_size=scheduler_step_size, batch_size=batch_size,
                          epoch_schedule=list(epoch_schedule), epoch_size=epoch_size),
        train=TrainConfig(name=name, log_dir=log_dir, seed=seed, device=device, max_steps=max_steps,
                          log_frequency=log_frequency, save_frequency=save_frequency, keep_checkpoints=keep_checkpoints, load=load,
                          threads=threads, wandb=wandb,
                          precision=precision, conv_layout=conv_layout),
    )
    config.validate()
    return config


@handle_errors
def train(
    dataset: str = typer.Option("kitti", "-d", "--dataset", help=f"Dataset layout: {DATASETS}."),
    data_path: str = typer.Option(..., "--data-path", help="Root folder of the processed dataset."),
    split: Optional[str] = typer.Option(
        None, "--split", help="Split name under the project's splits/ or a folder with train_files.txt. "
        "Default: eigen_zhou (KITTI), waymo, nuscenes, or DATA_PATH/splits (synthetic)."),
    name: str = typer.Option("dynamo", "-n", "--name", help="Run name; files go to LOG_DIR/NAME/."),
    log_dir: str = typer.Option("logs", "--log-dir", help="Folder holding run folders."),
    height: Optional[int] = typer.Option(None, "--height", help="Input height, a multiple of 32. Default per dataset: "
                                         "KITTI 192, Waymo 320, nuScenes 288, synthetic 192."),
    width: Optional[int] = typer.Option(None, "--width", help="Input width, a multiple of 32. Default per dataset: "
                                        "KITTI 640, Waymo 480, nuScenes 512, synthetic 640."),
    cam_name: Optional[str] = typer.Option(None, "--cam-name", help="Camera folder (default: image_02 for KITTI, FRONT otherwise)."),
    img_type: str = typer.Option("downsample", "--train-img-type", help="Image folder to train on: downsample or original."),
    depth_model: str = typer.Option("litemono", "--depth-model", help="litemono (Lite-Mono-8M) or monodepthv2 (ResNet)."),
    num_layers: int = typer.Option(18, "--num-layers", help="ResNet depth of the pose/motion encoders (18, 34 or 50)."),
    weights_init: str = typer.Option("pretrained", "--weights-init", help="pretrained (ImageNet) or scratch."),
    flow_start: str = typer.Option("random", "--flow-start", help="How the complete-flow head starts: random (as "
                                   "published) or ego (it outputs the ego translation at every pixel)."),
    scales: Optional[str] = typer.Option(None, "--scales", help="Loss scales, e.g. 0,1,2 (default: 0,1,2 Lite-Mono; 0,1,2,3 Monodepth2)."),
    frame_ids: str = typer.Option("0,-1,1", "--frame-ids", help="Target frame then source frames."),
    min_depth: float = typer.Option(0.1, "--min-depth", help="Depth of the largest disparity, in metres."),
    max_depth: float = typer.Option(100.0, "--max-depth", help="Depth of the smallest disparity, in metres."),
    batch_size: int = typer.Option(3, "-b", "--batch-size", help="Frames per batch per process."),
    learning_rate: float = typer.Option(1e-4, "--learning-rate", help="Adam learning rate (halved in fine_tune)."),
    scheduler_step_size: int = typer.Option(10, "--scheduler-step-size", help="Epochs between learning-rate halvings."),
    epoch_schedule: Tuple[int, int, int, int] = typer.Option(
        (1, 1, 5, 20), "--epoch-schedule", help="Epochs of disp_init, motion_init, mask_init and fine_tune."),
    epoch_size: int = typer.Option(8000, "--epoch-size", help="Batches sampled per epoch; 0 for one pass over the split."),
    g_p_photo: float = typer.Option(1.0, "--g-p-photo", help="Weight of the photometric term."),
    g_d_smooth: float = typer.Option(1e-3, "--g-d-smooth", help="Weight of disparity smoothness."),
    g_d_ground: float = typer.Option(0.1, "--g-d-ground", help="Weight of the above-the-road term."),
    g_c_smooth: float = typer.Option(1e-3, "--g-c-smooth", help="Weight of complete-flow smoothness."),
    g_c_consistency: float = typer.Option(5.0, "--g-c-consistency", help="Weight of flow/ego consistency off the mask."),
    g_m_sparsity: float = typer.Option(0.04, "--g-m-sparsity", help="Weight of motion-mask sparsity."),
    g_m_smooth: float = typer.Option(0.1, "--g-m-smooth", help="Weight of motion-mask smoothness."),
    weight_ramp: str = typer.Option("c_smooth,c_consistency,m_sparsity,m_smooth", "--weight-ramp",
                                    help="Terms whose weight ramps up at the start of each phase."),
    ramp_red: float = typer.Option(3.0, "--ramp-red", help="The ramp reaches full weight after 1/RAMP_RED of an epoch."),
    ssim_weight: float = typer.Option(0.85, "--ssim-weight", help="SSIM share of the photometric error (rest: L1)."),
    mask_disp_thrd: float = typer.Option(0.03, "--mask-disp-thrd", help="Disparity below which consistency is not enforced."),
    gp_prior: float = typer.Option(0.4, "--gp-prior", help="Fraction of rows (from the bottom) that may hold the road."),
    gp_tol: float = typer.Option(0.005, "--gp-tol", help="RANSAC inlier tolerance of the road plane."),
    gp_max_it: int = typer.Option(100, "--gp-max-it", help="RANSAC hypotheses."),
    gp_np_per_it: int = typer.Option(5, "--gp-np-per-it", help="Points per RANSAC hypothesis."),
    load: str = typer.Option("", "-l", "--load", help="Start from the weights of this checkpoint folder, "
                             "or of a released model by name (e.g. K_Dynamo-Depth), downloaded if missing."),
    yes: bool = typer.Option(False, "--yes", "-y", help="Download a released checkpoint named by --load without asking."),
    resume: bool = typer.Option(False, "--resume", help="Continue LOG_DIR/NAME from its latest complete checkpoint."),
    log_frequency: int = typer.Option(100, "--log-frequency", help="Steps between TensorBoard image panels."),
    save_frequency: int = typer.Option(1, "--save-frequency", help="Epochs between checkpoints."),
    keep_checkpoints: str = typer.Option(
        "all", "--keep-checkpoints",
        help="all: keep the weights of every saved epoch (as the original does); phase-end: keep only the newest epoch "
             "of each phase. Only the newest checkpoint keeps the optimiser state that --resume needs.",
    ),
    num_workers: int = typer.Option(2, "--num-workers", help="Data-loading processes."),
    device: str = typer.Option("auto", "--device", help="cpu, cuda or auto."),
    seed: int = typer.Option(0, "--seed", help="Seed for sampling, augmentation and initialisation."),
    max_steps: int = typer.Option(0, "--max-steps", help="Stop after this many steps in total (0: no cap)."),
    threads: int = typer.Option(0, "--threads", help="CPU threads for torch (0: default)."),
    precision: str = typer.Option(
        "fp32", "--precision",
        help="fp32 (default), bf16 or auto. bf16 runs the networks in bfloat16 (weights, gradients and the loss stay "
             "float32): on a CPU with native bfloat16 instructions a step takes about half the time, but the gradient "
             "is coarser, most of all in motion_init (see the README). auto uses bf16 on such a CPU and fp32 elsewhere."),
    conv_layout: str = typer.Option(
        "auto", "--conv-layout",
        help="CPU convolution memory layouts: auto (time each convolution's forward, input gradient and weight "
             "gradient in both layouts once per CPU and shape, cache the choice under ~/.cache/dynamo), contiguous, "
             "channels_last or plain. Results are the same to float rounding; only the speed differs."),
    wandb: bool = typer.Option(False, "--wandb", help="Also log to Weights & Biases."),
    gpus: int = typer.Option(1, "--gpus", help="Worker processes on this machine (one per GPU; with --device cpu, CPU processes). "
                             "More than 1 trains with DistributedDataParallel through torchrun."),
    nnodes: int = typer.Option(1, "--nnodes", help="Machines in a multi-node run."),
    node_rank: int = typer.Option(0, "--node-rank", help="This machine's rank in a multi-node run."),
    master_addr: str = typer.Option("127.0.0.1", "--master-addr", help="Address of node 0 in a multi-node run."),
    master_port: int = typer.Option(29500, "--master-port", help="Port of node 0 in a multi-node run."),
) -> None:
    """Train depth, pose, complete flow and motion mask in four phases.

    Checkpoints go to LOG_DIR/NAME/models/<phase>_<epoch>/ in the released per-module layout, TensorBoard events to LOG_DIR/NAME/tensorboard/, the config to LOG_DIR/NAME/config.json.
    """
    from dynamo_core.losses import LossConfig
    from dynamo_core.training.distributed import LaunchSpec
    from dynamo_core.training.run import build_training_dataset
    from dynamo_core.training.trainer import Trainer

    from .download import checkpoint_folder

    if load:
        load = str(checkpoint_folder(load, yes=yes))
    loss = LossConfig(
        weights={"p_photo": g_p_photo, "d_smooth": g_d_smooth, "d_ground": g_d_ground, "c_smooth": g_c_smooth,
                 "c_consistency": g_c_consistency, "m_sparsity": g_m_sparsity, "m_smooth": g_m_smooth},
        ramped=[t.removeprefix("g_") for t in str_list(weight_ramp)],
        ramp_red=ramp_red, ssim_weight=ssim_weight, mask_disp_threshold=mask_disp_thrd, ground_prior=gp_prior,
        ground_tolerance=gp_tol, ground_hypotheses=gp_max_it, ground_points_per_hypothesis=gp_np_per_it,
    )
    config = build_config(
        name=name, log_dir=log_dir, dataset=dataset, data_path=data_path, split=split, height=height, width=width,
        cam_name=cam_name, img_type=img_type, depth_model=depth_model, num_layers=num_layers, weights_init=weights_init,
        scales=scales, frame_ids=frame_ids, min_depth=min_depth, max_depth=max_depth, batch_size=batch_size,
        learning_rate=learning_rate, scheduler_step_size=scheduler_step_size, epoch_schedule=epoch_schedule,
        epoch_size=epoch_size, loss=loss, load=load, log_frequency=log_frequency, save_frequency=save_frequency,
        keep_checkpoints=keep_checkpoints, num_workers=num_workers, device=device, seed=seed, max_steps=max_steps, threads=threads, wandb=wandb,
        precision=precision, conv_layout=conv_layout, flow_start=flow_start,
    )
    run_dir = Path(config.train.log_dir) / config.train.name
    if gpus > 1 or nnodes > 1:
        launch_distributed(config, run_dir, LaunchSpec(gpus, nnodes, node_rank, master_addr, master_port, resume))
        typer.echo(f"finished; checkpoints in {run_dir / 'models'}")
        return
    with TrainingProgress(err_console) as progress:
        dataset_obj = build_training_dataset(config, progress=progress.checking_files)
        trainer = Trainer(config, dataset_obj, callbacks=progress, resume=resume)
        final = trainer.fit()
    typer.echo(f"finished {final.phase} epoch {final.epoch} after {final.global_step} steps; checkpoints in {run_dir / 'models'}")


def launch_distributed(config: RunConfig, run_dir: Path, spec) -> None:
    """Check the data once here, write the config the workers read, and start them."""
    import torch

    from dynamo_core.config import save_json
    from dynamo_core.errors import ConfigError
    from dynamo_core.training.distributed import launch
    from dynamo_core.training.run import build_training_dataset

    if spec.nproc_per_node < 1 or spec.nnodes < 1:
        raise ConfigError("--gpus and --nnodes must be at least 1.")
    if config.train.device == "cuda" and torch.cuda.device_count() < spec.nproc_per_node:
        raise ConfigError(
            f"--gpus {spec.nproc_per_node} asks for more GPUs than the {torch.cuda.device_count()} visible; "
            "lower --gpus or use --device cpu."
        )
    with TrainingProgress(err_console) as progress:
        build_training_dataset(config, progress=progress.checking_files)
    config_path = run_dir / "launch_config.json"
    save_json(config, config_path)
    launch(spec, config_path, run_dir)
