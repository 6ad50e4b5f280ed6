"""sa4depth.models: ResNet backbones (torchvision-compatible keys), Monodepth2 depth / pose
networks, and the sa4depth model-file format.

Public API (stable; the trainer, refinement and evaluation import it)::

    from sa4depth.models import (ResnetEncoder, DepthDecoder, PoseDecoder, DepthNet, PoseNet,
                                 predict_relative_pose, build_models, save_model_file,
                                 read_model_file, load_model_file, load_depth_model,
                                 load_imagenet_weights, resnet18, resnet50)

``models/vgg.py`` and ``models/feature_net.py`` (SA4Depth features) are imported from their own
modules so that this package does not depend on them.
"""
from sa4depth.models.io import (
    MODEL_FORMAT,
    build_models,
    load_depth_model,
    load_model_file,
    read_model_file,
    save_model_file,
)
from sa4depth.models.networks import (
    ConvBlock,
    Conv3x3,
    DepthDecoder,
    DepthNet,
    PoseDecoder,
    PoseNet,
    ResnetEncoder,
    predict_relative_pose,
    upsample,
)
from sa4depth.models.resnet import (
    ResNet,
    build_resnet,
    load_imagenet_weights,
    read_state_dict,
    resnet18,
    resnet50,
)

__all__ = [
    "MODEL_FORMAT",
    "build_models",
    "load_depth_model",
    "load_model_file",
    "read_model_file",
    "save_model_file",
    "ConvBlock",
    "Conv3x3",
    "DepthDecoder",
    "DepthNet",
    "PoseDecoder",
    "PoseNet",
    "ResnetEncoder",
    "predict_relative_pose",
    "upsample",
    "ResNet",
    "build_resnet",
    "load_imagenet_weights",
    "read_state_dict",
    "resnet18",
    "resnet50",
]
