"""Our msg/srv/action definitions registered in a rosbags typestore (no ROS needed).

Used by the ``bag`` command (to write ReconstructedObject messages) and the tests. The
definition files are found in the source tree, in ``<prefix>/share/one2345_ros`` (pip
installs them there via setup.py's data_files), or in an ament install
(``$AMENT_PREFIX_PATH/share/one2345_ros``).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

PACKAGE = "one2345_ros"
MESSAGES = ("ReconstructedObject",)
SERVICES = ("ReconstructObject",)
ACTIONS = ("ReconstructObject",)
_SEPARATOR = re.compile(r"^---\s*$", re.MULTILINE)


def interface_dir() -> Path:
    """The folder holding msg/, srv/ and action/ (raises FileNotFoundError listing where it looked)."""
    candidates = [Path(__file__).resolve().parents[2], Path(sys.prefix) / "share" / PACKAGE]
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            candidates.append(Path(prefix) / "share" / PACKAGE)
    for folder in candidates:
        if (folder / "msg" / f"{MESSAGES[0]}.msg").is_file():
            return folder
    raise FileNotFoundError(f"{PACKAGE} interface files (msg/{MESSAGES[0]}.msg) not found; looked in: "
                            + ", ".join(str(c) for c in candidates))  # fmt: skip


def definitions() -> dict[str, str]:
    """rosbags type name -> .msg text for our messages and the parts of our services and actions."""
    folder = interface_dir()
    defs = {f"{PACKAGE}/msg/{name}": (folder / "msg" / f"{name}.msg").read_text() for name in MESSAGES}
    for name in SERVICES:
        request, response = _SEPARATOR.split((folder / "srv" / f"{name}.srv").read_text())
        defs[f"{PACKAGE}/srv/{name}_Request"] = request
        defs[f"{PACKAGE}/srv/{name}_Response"] = response
    for name in ACTIONS:
        goal, result, feedback = _SEPARATOR.split((folder / "action" / f"{name}.action").read_text())
        defs[f"{PACKAGE}/action/{name}_Goal"] = goal
        defs[f"{PACKAGE}/action/{name}_Result"] = result
        defs[f"{PACKAGE}/action/{name}_Feedback"] = feedback
    return defs


def register_types(typestore) -> None:
    """Add our types to a rosbags typestore (idempotent)."""
    from rosbags.typesys import get_types_from_msg

    types = {}
    for name, text in definitions().items():
        if name not in typestore.types:
            # rosbags normalises any 'pkg/x/Name' to 'pkg/x/msg/Name'; parse under a msg name
            # and register under the real one (pkg/srv/Name_Request, pkg/action/Name_Goal...).
            parsed = get_types_from_msg(text, f"{PACKAGE}/msg/{name.rsplit('/', 1)[1]}")
            (definition,) = parsed.values()
            types[name] = definition
    typestore.register(types)


def make_typestore(distro: str = "humble"):
    """A rosbags typestore for ROS 2 ``distro`` ('humble' or 'jazzy') with our types registered."""
    from rosbags.typesys import Stores, get_typestore

    stores = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}
    if distro not in stores:
        raise ValueError(f"distro {distro!r}: use one of {', '.join(stores)}")
    typestore = get_typestore(stores[distro])
    register_types(typestore)
    return typestore
