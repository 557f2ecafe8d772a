"""Where weights come from: model references, the registry, the Hugging Face Hub cache, integrity.

Deciding where a model comes from (:func:`parse_ref`, :func:`find_entry`, in :mod:`.registry`) is
pure; fetching (:func:`resolve`, in :mod:`.download`) is separate. No torch here.

A model reference is one of:
- a registry name (``algnet models list``);
- ``hf://owner/repo[@revision]/path/to/file.safetensors`` (or ``.pth``);
- a local file path.
"""

from .download import (
    READ_TIMEOUT_S,
    cached_file,
    imported_dir,
    offline_default,
    remove_model,
    resolve,
    shipped_file,
)
from .registry import (
    BUILTIN_REGISTRY,
    CACHE_ENV,
    CONFIG_ENV,
    DEFAULT,
    HF_PREFIX,
    HubRef,
    RegistryEntry,
    cache_dir,
    config_dir,
    default_model_name,
    find_entry,
    parse_ref,
    parse_registry,
    registry,
    registry_lock,
    registry_problems,
    remove_user_entry,
    save_user_entry,
    user_registry_path,
)

__all__ = [
    "BUILTIN_REGISTRY",
    "CACHE_ENV",
    "CONFIG_ENV",
    "DEFAULT",
    "HF_PREFIX",
    "READ_TIMEOUT_S",
    "HubRef",
    "RegistryEntry",
    "cache_dir",
    "cached_file",
    "config_dir",
    "default_model_name",
    "find_entry",
    "imported_dir",
    "offline_default",
    "parse_ref",
    "parse_registry",
    "registry",
    "registry_lock",
    "registry_problems",
    "remove_model",
    "remove_user_entry",
    "resolve",
    "save_user_entry",
    "shipped_file",
    "user_registry_path",
]
