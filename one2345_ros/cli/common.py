"""What every command shares: config flags mapped to dotted keys, the one config load, messages.

A flag that sets a configuration value declares its dotted key as ``dest``
(``--zero123`` -> ``zero123.model``), so :func:`load_args_config` applies it with
``--set KEY=VALUE`` overrides and the ``--config`` file through the one loader
(config.load_config): every command validates the same way, before any model loads.
"""

from __future__ import annotations

import argparse
import os

from .. import config as C

EXIT_BAD_INPUT = 2
EXIT_INTERNAL = 1


def add_config_args(p: argparse.ArgumentParser) -> None:
    """``--config FILE`` (the node's params.yaml or a plain mapping) and repeatable ``--set KEY=VALUE``."""
    p.add_argument("--config", help="YAML config: config/params.yaml of the node, or a plain mapping of the same keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one configuration value by its dotted key, "
                        "e.g. --set zero123.dtype=fp16")  # fmt: skip


CONFIG_DEST = "config:"
"""Prefix of the argparse ``dest`` of flags that set a configuration value."""


def config_flag(p: argparse.ArgumentParser, flag: str, key: str, **kwargs) -> None:
    """A flag that sets the configuration value ``key`` (applied by :func:`load_args_config`)."""
    p.add_argument(flag, dest=CONFIG_DEST + key, default=None, **kwargs)


def load_args_config(args: argparse.Namespace, extra: dict | None = None) -> C.Config:
    """The command's Config: defaults <- --config <- config flags and ``extra`` <- --set (later wins); all checked."""
    overrides = {k[len(CONFIG_DEST) :]: v for k, v in vars(args).items() if k.startswith(CONFIG_DEST) and v is not None}
    overrides.update(extra or {})
    for text in getattr(args, "set", []) or []:
        key, value = C.parse_override(text)
        overrides[key] = value
    return C.load_config(getattr(args, "config", None), overrides)


def error_message(exc: BaseException) -> str:
    """The whole message of ``exc`` (every line), or its type when it has none."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


def debug() -> bool:
    return bool(os.environ.get("ONE2345_DEBUG"))
