#!/usr/bin/env bash
# Fetch the official ROS 2 interface parser (rosidl_adapter, rosidl_parser) without ROS.
#
# It is not on PyPI; Debian bookworm ships it as python3-rosidl (3.3.1, pure Python, needs
# lark and empy<4 from the test extras). We download the .deb with apt and unpack it into
# a cache folder instead of installing it, so no root-owned system state changes.
# Prints the folder to put on sys.path. The tests call this themselves when needed.
#
# Usage: tools/get_rosidl.sh [CACHE_DIR]   (default: .cache/rosidl in the repository)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dest="${1:-$repo/.cache/rosidl}"
site="usr/lib/python3/dist-packages"
mkdir -p "$dest"
cd "$dest"
if [ -f "$site/rosidl_adapter/parser.py" ] && [ -f "$site/rosidl_parser/parser.py" ]; then
    echo "$dest/$site"
    exit 0
fi
for tool in apt-get dpkg-deb; do
    command -v "$tool" >/dev/null || {
        echo "get_rosidl: '$tool' not found; this needs Debian/Ubuntu (python3-rosidl .deb)." >&2
        exit 1
    }
done
if ! ls python3-rosidl_*.deb >/dev/null 2>&1; then
    # Fresh containers have empty apt lists: update once, as root, when the package is unknown.
    if ! apt-get download python3-rosidl >&2; then
        if [ "$(id -u)" = 0 ]; then
            apt-get update -qq >&2
            apt-get download python3-rosidl >&2
        else
            echo "get_rosidl: 'apt-get download python3-rosidl' failed; run 'sudo apt-get update' and retry." >&2
            exit 1
        fi
    fi
fi
dpkg-deb -x python3-rosidl_*.deb .
test -f "$site/rosidl_adapter/parser.py"
echo "$dest/$site"
