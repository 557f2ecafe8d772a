"""The ALGNet network, its configuration, and loading it for inference with its descriptor."""

from .algnet import ALGNet, restore
from .config import DEFAULT, NAFNET_STYLE, ALGNetConfig
from .load import ModelDescriptor, load_model

__all__ = [
    "ALGNet",
    "ALGNetConfig",
    "DEFAULT",
    "ModelDescriptor",
    "NAFNET_STYLE",
    "load_model",
    "restore",
]
