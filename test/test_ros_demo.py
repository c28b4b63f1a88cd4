"""``one2345 ros-demo``: the node doing real work over DDS without weights (marker `ros`), and a clear
refusal without ROS (runs everywhere)."""

import re
import subprocess
import sys

import pytest


def test_without_ros_the_command_says_what_to_install(monkeypatch, capsys, tmp_path):
    from one2345_ros.cli.main import main

    monkeypatch.setitem(sys.modules, "one2345_ros.ros.client", None)  # as if rclpy were missing
    assert main(["ros-demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "one2345 ros-demo needs ROS 2" in err and "tools/ros_jazzy_env.sh" in err


@pytest.mark.ros
def test_ros_demo_exits_0_with_the_error_against_the_truth(tmp_path):
    """The whole job, as a user runs it: about 25 s on 2 CPU cores (32 oracle views rendered)."""
    proc = subprocess.run([sys.executable, "-m", "one2345_ros.cli.main", "ros-demo", "--out", str(tmp_path / "out"),
                           "--resolution", "64"], capture_output=True, text=True, timeout=300)  # fmt: skip
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert "success=True" in out and "synthetic views" in out, out
    error, chamfer = map(float, re.search(r"error ([\d.]+) deg; Chamfer-L1 ([\d.]+) %", out).groups())
    print(f"\nros-demo: elevation error {error:.2f} deg, Chamfer-L1 {chamfer:.2f} %")
    assert error < 3.0 and chamfer < 2.0, out
    (folder,) = (tmp_path / "out").iterdir()
    assert '"views": "oracle"' in (folder / "result.json").read_text()
