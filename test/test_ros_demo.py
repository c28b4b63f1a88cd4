"""``one2345 ros-demo``: the node doing real work over DDS without weights (marker `ros`), and a clear
refusal without ROS (runs everywhere)."""

import re
import signal
import subprocess
import sys
import time

import pytest


def test_without_ros_the_command_says_what_to_install(monkeypatch, capsys, tmp_path):
    from one2345_ros.cli.main import main

    monkeypatch.setitem(sys.modules, "one2345_ros.ros.client", None)  # as if rclpy were missing
    assert main(["ros-demo", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "one2345 ros-demo needs ROS 2" in err and "tools/ros_jazzy_env.sh" in err


@pytest.mark.ros
def test_ros_demo_exits_0_with_the_error_against_the_truth_and_holds_its_outputs(tmp_path):
    """The whole job, as a user runs it (about 25 s on 2 CPU cores: 32 oracle views rendered), with --hold:
    another process (this test) gets the latched elevation late, then SIGINT ends the demo with code 0."""
    import rclpy
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from std_msgs.msg import Float32

    log = tmp_path / "demo.log"
    command = [sys.executable, "-m", "one2345_ros.cli.main", "ros-demo", "--out", str(tmp_path / "out"),
               "--resolution", "64", "--hold"]  # fmt: skip
    with open(log, "w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 240
        while "holding the node" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        text = log.read_text()
        assert "holding the node" in text, text[-3000:]
        assert "success=True" in text and "synthetic views" in text, text[-3000:]
        error, chamfer = map(float, re.search(r"error ([\d.]+) deg; Chamfer-L1 ([\d.]+) %", text).groups())
        print(f"\nros-demo: elevation error {error:.2f} deg, Chamfer-L1 {chamfer:.2f} %")
        assert error < 3.0 and chamfer < 2.0, text[-3000:]

        rclpy.init()
        try:
            probe = rclpy.create_node("one2345_demo_probe")
            got = []
            latched = DurabilityPolicy.TRANSIENT_LOCAL
            qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=latched)
            probe.create_subscription(Float32, "/one2345_reconstructor/elevation", got.append, qos)
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                rclpy.spin_once(probe, timeout_sec=0.1)
            assert got, "the latched elevation did not reach a late subscriber in another process"
            reported = float(re.search(r"\] elevation ([\d.-]+) deg", text).group(1))
            assert abs(got[0].data - reported) < 0.05
            probe.destroy_node()
        finally:
            rclpy.try_shutdown()

        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0, log.read_text()[-3000:]
        print(f"ros-demo left {time.monotonic() - t0:.1f} s after SIGINT")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    (folder,) = (tmp_path / "out").iterdir()
    assert '"views": "oracle"' in (folder / "result.json").read_text()
