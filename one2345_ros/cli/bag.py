"""``one2345 bag IN --image-topic T --mask-topic M|--labels-topic L --out OUT``: rosbag2 in, result messages out
(no ROS install)."""

from __future__ import annotations

import argparse

from .. import config as C
from .common import add_config_args, config_flag, load_args_config


def add_parser(subparsers) -> argparse.ArgumentParser:
    p = subparsers.add_parser("bag", help="reconstruct from a rosbag2 (sqlite3/mcap) and write result messages")
    p.add_argument("bag_in", metavar="IN", help="input rosbag2 folder (or .mcap/.db3 file's folder)")
    p.add_argument("--image-topic", required=True)
    objects = p.add_mutually_exclusive_group(required=True)
    objects.add_argument("--mask-topic", help="sensor_msgs/Image mask (mono8, non-zero = object)")
    objects.add_argument("--labels-topic", help="sensor_msgs/Image label image (mono8, 16UC1 or 32SC1 instance ids, "
                         "0 = background): every object, named <object-id>_<id>")  # fmt: skip
    p.add_argument("--label-ids", type=int, nargs="+", help="with --labels-topic: only these ids")
    p.add_argument("--depth-topic", default="")
    p.add_argument("--camera-info-topic", default="")
    p.add_argument("--out", required=True, help="output rosbag2 folder (must not exist); results go to OUT/meshes")
    p.add_argument("--stamps", type=float, nargs="+", default=None, metavar="SEC",
                   help="reconstruct the images at these header stamps (seconds); default: the first pair")
    p.add_argument("--slop", type=float, default=None, help="largest stamp difference in a pair, seconds "
                   "(default: ros.sync_slop_s of --config, 0.05)")  # fmt: skip
    p.add_argument("--object-id", default="object")
    p.add_argument("--storage", choices=("sqlite3", "mcap"), default="mcap")
    p.add_argument("--distro", choices=("humble", "jazzy"), default="humble", help="message definitions to use")
    p.add_argument("--namespace", default=f"/{C.NODE_NAME}", help="prefix of the output topics")
    config_flag(p, "--zero123", "zero123.model", help="Zero123 diffusers folder or .ckpt (default $ONE2345_ZERO123)")
    config_flag(p, "--sparseneus", "sparseneus.checkpoint", help="SparseNeuS checkpoint (default $ONE2345_SPARSENEUS)")
    config_flag(p, "--allow-cpu", "zero123.allow_cpu", action="store_const", const=True,
                help="run Zero123 on a CPU (hours per image)")  # fmt: skip
    add_config_args(p)
    p.set_defaults(func=run)
    return p


def run(args, reconstruct_fn=None) -> int:
    from ..ros.bag import run_bag

    return run_bag(args, load_args_config(args), reconstruct_fn)
