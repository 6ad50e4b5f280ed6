"""Training: the Monodepth2 / SA4Depth step, the loop with exact resume, DDP and logging.

Public API::

    from sa4depth.train import train, TrainResult, SelfSupModel, build_train_model, EXIT_PREEMPTED
    result = train(cfg, "runs/x", resume="auto", progress=None)

Heavy imports (torch) happen when this package is imported; the CLI imports it inside ``run``.
"""
from sa4depth.train.step import SelfSupModel, check_train_config, uses_pose_net
from sa4depth.train.trainer import EXIT_PREEMPTED, StopTraining, TrainResult, build_train_model, resolve_device, train

__all__ = ["train", "TrainResult", "SelfSupModel", "build_train_model", "EXIT_PREEMPTED", "StopTraining",
           "resolve_device", "check_train_config", "uses_pose_net"]
