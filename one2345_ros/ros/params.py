"""The node's parameters: the dotted names of config.Config, loaded and checked by config.load_config.

Every field of :class:`~one2345_ros.config.Config` is a ROS parameter of the same dotted name
(``zero123.device``, ``ros.sync_slop_s``); ``config/params.yaml`` lists every one of them.
There is no second validation here: :func:`config_from_parameters` is the CLI's loader with the
node-only rules switched on, so a misspelt or out-of-range parameter stops the node at
configure with the same message the CLI prints.
"""

from __future__ import annotations

from typing import Any

from .. import config as C


def default_parameters() -> dict[str, Any]:
    """Every parameter the node declares, dotted name -> default."""
    return C.flatten(C.Config())


def config_from_parameters(params: dict[str, Any]) -> C.Config:
    """The node's Config from its parameter values (dotted names); raises ConfigError naming every bad one."""
    return C.load_config(None, params, node=True)
