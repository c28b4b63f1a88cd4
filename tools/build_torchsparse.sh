#!/usr/bin/env bash
# Build and install torchsparse 1.4.0 (the version One-2-3-45's SparseNeuS uses) into a venv.
#
#   tools/build_torchsparse.sh [VENV_PYTHON]      (default: <repo>/.venv/bin/python)
#
# * Does nothing if that Python already imports torchsparse 1.4.0 with its compiled backend.
# * Source: $TORCHSPARSE_SRC if set, else <repo>/../shared/torchsparse/torchsparse-1.4.0-src.tgz,
#   else /work/shared/torchsparse/torchsparse-1.4.0-src.tgz (torchsparse is not on PyPI).
#   $TORCHSPARSE_CACHE moves the wheel cache.
# * The wheel is built against the venv's torch (--no-build-isolation: never installs another
#   torch) and cached under <repo>/.cache/torchsparse/ (gitignored), keyed by the torch version,
#   the Python tag, cpu/cuda and the source's checksum; a later run on the same machine, or a
#   CI machine that keeps .cache/, installs the cached wheel without compiling.
# * Building needs a C++ compiler and the sparsehash headers (Debian: libsparsehash-dev, which
#   this script installs with apt-get when it runs as root). CUDA kernels are built when torch
#   sees a GPU and a CUDA toolkit (or FORCE_CUDA=1), as torchsparse's setup.py decides.
set -euo pipefail

VERSION=1.4.0
TGZ_NAME="torchsparse-${VERSION}-src.tgz"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PY=${1:-$ROOT/.venv/bin/python}
CACHE=${TORCHSPARSE_CACHE:-$ROOT/.cache/torchsparse}

die() { echo "build_torchsparse: error: $*" >&2; exit 1; }
log() { echo "build_torchsparse: $*"; }

if [[ "$PY" != */* ]]; then PY=$(command -v "$PY") || die "no Python called $1 on PATH"; fi
[ -x "$PY" ] || die "no Python at $PY (pass the venv's python, e.g. .venv/bin/python)"
PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY")  # absolute (not resolved: a venv's python is a symlink)
"$PY" -c "import torch" 2>/dev/null || die "$PY cannot import torch: install the project first (pip install -c constraints.txt -e .)"

installed() {  # from /, so that a torchsparse source folder in the cwd is not what imports
    (cd / && "$PY" - <<'EOF' 2>/dev/null
import sys
import torchsparse
import torchsparse.backend  # the compiled extension; fails if it was built for another torch
sys.exit(0 if torchsparse.__version__ == "1.4.0" else 1)
EOF
    )
}

if installed; then
    log "torchsparse $VERSION already installed for $PY; nothing to do"
    exit 0
fi

# ------------------------------------------------------------------ source
if [ -n "${TORCHSPARSE_SRC:-}" ]; then
    candidates=("$TORCHSPARSE_SRC")  # set: only there
else
    candidates=("$ROOT/../shared/torchsparse/$TGZ_NAME" "/work/shared/torchsparse/$TGZ_NAME")
fi
SRC=""
for c in "${candidates[@]}"; do
    if [ -f "$c" ]; then SRC=$c; break; fi
done
[ -n "$SRC" ] || die "source $TGZ_NAME not found; looked in: ${candidates[*]} (set TORCHSPARSE_SRC to the tgz of mit-han-lab/torchsparse v$VERSION)"
SRC=$(cd "$(dirname "$SRC")" && pwd)/$(basename "$SRC")

# ------------------------------------------------------------------ cache key
KEY=$("$PY" - "$SRC" <<'EOF'
import hashlib, os, sys
import torch
from torch.utils.cpp_extension import CUDA_HOME
cuda = (torch.cuda.is_available() and CUDA_HOME is not None) or os.getenv("FORCE_CUDA", "0") == "1"
digest = hashlib.sha256(open(sys.argv[1], "rb").read()).hexdigest()[:12]
tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
print(f"torch-{torch.__version__}-{tag}-{'cuda' if cuda else 'cpu'}-src-{digest}")
EOF
)
WHEEL_DIR=$CACHE/$KEY
wheel() { ls "$WHEEL_DIR"/torchsparse-"$VERSION"-*.whl 2>/dev/null | head -n 1; }

if [ -n "$(wheel)" ]; then
    log "installing the cached wheel $(wheel)"
    start=$(date +%s)
    "$PY" -m pip install -q --no-deps --force-reinstall "$(wheel)"
    installed || die "the cached wheel $(wheel) does not import; delete $WHEEL_DIR and rerun"
    log "done in $(( $(date +%s) - start )) s (cached wheel, no compilation)"
    exit 0
fi

# ------------------------------------------------------------------ build dependencies
CXX=${CXX:-c++}
command -v "$CXX" >/dev/null || die "no C++ compiler ($CXX); on Debian: apt-get install -y g++"
has_sparsehash() { echo '#include <google/dense_hash_map>' | "$CXX" -x c++ -fsyntax-only - 2>/dev/null; }
if ! has_sparsehash; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        log "installing libsparsehash-dev (apt-get)"
        export DEBIAN_FRONTEND=noninteractive
        apt-get install -y -q libsparsehash-dev >/dev/null 2>&1 \
            || { apt-get update -q >/dev/null && apt-get install -y -q libsparsehash-dev >/dev/null; } \
            || die "apt-get install libsparsehash-dev failed"
    fi
    has_sparsehash || die "the sparsehash headers (<google/dense_hash_map>) are missing: run as root
    apt-get install -y libsparsehash-dev
(or put them on CPATH) and rerun this script"
fi

# ------------------------------------------------------------------ build
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
tar xzf "$SRC" -C "$WORK"
[ -f "$WORK/torchsparse-$VERSION/setup.py" ] || die "$SRC does not unpack to torchsparse-$VERSION/setup.py"
mkdir -p "$WHEEL_DIR"
log "building torchsparse $VERSION from $SRC for $PY ($KEY); this takes a few minutes"
start=$(date +%s)
"$PY" -m pip wheel -q --no-build-isolation --no-deps -w "$WORK/dist" "$WORK/torchsparse-$VERSION" \
    || die "the build failed (output above)"
built=$(ls "$WORK"/dist/torchsparse-"$VERSION"-*.whl)
"$PY" -m pip install -q --no-deps --force-reinstall "$built"
installed || die "torchsparse was built and installed but does not import in $PY"
cp "$built" "$WHEEL_DIR/"
log "built and installed in $(( $(date +%s) - start )) s; wheel cached in $WHEEL_DIR"
