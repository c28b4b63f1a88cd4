"""The node's synthetic view source (ros/oracle_views.py), without ROS: the oracle of the request's
camera (oracle.input_c2w or a TF lookup), the defect "views: oracle with oracle.mesh_frame passes
validation but can never activate", and the plain statement that the views are synthetic."""

import numpy as np
import pytest

from one2345_ros.config import Config
from one2345_ros.pipeline import Pipeline
from one2345_ros.ros.oracle_views import OracleViewsPipeline
from one2345_ros.synthetic.assets import load_object, object_path
from one2345_ros.synthetic.scenes import scene_camera, scene_draw
from one2345_ros.types import InputError, ReconstructionInputs


def _config(mesh_frame="world", c2w=None):
    cfg = Config(views="oracle", backend="hull")
    cfg.oracle.mesh = str(object_path("mallet"))
    cfg.oracle.mesh_frame = mesh_frame
    cfg.oracle.input_c2w = [] if c2w is None else np.asarray(c2w).reshape(-1).tolist()
    return cfg


class Recording:
    """Stands in for Pipeline: records the generators it is given."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.generators = []

    def load(self):
        pass

    def unload(self):
        pass

    def reconstruct_objects(self, objects, progress=None, cancel=None, generators=None, raise_errors=False):
        from ros_helpers import known_result

        self.generators.append(generators)
        return [known_result(objects[0].frame_id, objects[0].object_id, objects[0].stamp_ns)]


def _camera():
    """The demo camera of the mallet (seed 0), without rendering the scene."""
    elevation, azimuth, rng = scene_draw(0)
    return scene_camera(load_object("mallet"), elevation, azimuth, rng)


def _inputs(object_id="mallet"):
    return ReconstructionInputs(image=np.full((8, 8, 3), 255, np.uint8), mask=np.ones((8, 8), bool),
                                object_id=object_id, frame_id="cam", stamp_ns=7)  # fmt: skip


def test_a_pipeline_with_the_pose_from_tf_loads():
    """The defect: make_generator built the oracle at load without a pose and raised, so the node never activated."""
    pipeline = Pipeline(_config())
    pipeline.load()
    assert pipeline.generator is None and pipeline.reconstructor is not None
    with pytest.raises(InputError, match="pose comes with each request"):
        pipeline.generator_for(_inputs())


def test_the_oracle_sees_the_looked_up_camera_and_the_result_says_synthetic():
    c2w = _camera()
    asked = []

    def lookup(frame_id, stamp_ns):
        asked.append((frame_id, stamp_ns))
        return c2w

    wrapped = OracleViewsPipeline(Recording(_config()), lookup)
    result = wrapped.reconstruct(_inputs())
    (oracle,) = wrapped.pipeline.generators[0]
    assert asked == [("cam", 7)] and oracle.name == "oracle"
    np.testing.assert_allclose(oracle.input_c2w, c2w)
    assert any(w.startswith("synthetic views: rendered from the known mesh") for w in result.warnings)
    wrapped.reconstruct(_inputs())
    assert wrapped.pipeline.generators[1][0] is oracle  # same object and pose: the oracle is reused


def test_a_fixed_pose_parameter_needs_no_lookup_and_a_failed_lookup_is_a_reason():
    c2w = _camera()
    wrapped = OracleViewsPipeline(Recording(_config(mesh_frame="", c2w=c2w)), pose_lookup=None)
    wrapped.reconstruct(_inputs())
    np.testing.assert_allclose(wrapped.pipeline.generators[0][0].input_c2w, c2w)

    def no_tf(frame_id, stamp_ns):
        raise LookupError("frame world does not exist")

    with pytest.raises(InputError, match=r"no transform world <- cam at the image stamp .*does not exist"):
        OracleViewsPipeline(Recording(_config()), no_tf).reconstruct(_inputs())
    with pytest.raises(InputError, match="needs the input camera's pose"):
        OracleViewsPipeline(Recording(_config()), None).reconstruct(_inputs())
