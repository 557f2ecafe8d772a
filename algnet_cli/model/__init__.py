"""The ALGNet network (torch and ops only)."""

from .algnet import ALGNet, restore
from .config import DEFAULT, NAFNET_STYLE, ALGNetConfig

__all__ = ["ALGNet", "ALGNetConfig", "DEFAULT", "NAFNET_STYLE", "restore"]
