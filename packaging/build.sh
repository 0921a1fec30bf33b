#!/usr/bin/env bash
# Build st2bridge's wheel and an installable archive:
#
#   packaging/build.sh [-o OUTDIR] [--with-deps]      (default OUTDIR: dist/)
#
# OUTDIR/st2bridge-VERSION-py3-none-any.whl
# OUTDIR/st2bridge-VERSION.tar.gz:
#   st2bridge-VERSION/install.sh                 run as root on the target host
#   st2bridge-VERSION/wheels/st2bridge-*.whl     (+ every dependency, the engine
#                                                 extra's included, with --with-deps,
#                                                 for hosts without a package index)
#   st2bridge-VERSION/systemd/…                  units and the engine's drop-in
#   st2bridge-VERSION/conf/bridge.conf.sample
#   st2bridge-VERSION/logrotate/st2bridge
#   st2bridge-VERSION/UPGRADE.md, LICENSE
#
# The wheel is built from a copy of the sources in a temporary directory, so
# the work tree gets no build/ or *.egg-info. $PYTHON (default python3) runs pip.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/dist"
with_deps=0
python="${PYTHON:-python3}"

while [ $# -gt 0 ]; do
    case "$1" in
        -o|--output) out="$2"; shift 2 ;;
        --with-deps) with_deps=1; shift ;;
        -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
    esac
done

version=$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$root/st2bridge/__init__.py")
[ -n "$version" ] || { echo "build.sh: no __version__ in st2bridge/__init__.py" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
out="$(cd "$out" && pwd)"

echo "building st2bridge $version"
mkdir "$work/src"
cp -r "$root/setup.cfg" "$root/setup.py" "$root/README.md" "$root/LICENSE" "$root/st2bridge" \
    "$work/src/"
find "$work/src" -name __pycache__ -prune -exec rm -rf {} +

# Without build isolation when the local setuptools can build wheels (fast,
# offline); otherwise pip fetches a build backend.
pip_args=(--no-deps --disable-pip-version-check -w "$work/wheels")
if "$python" -c 'import setuptools, wheel' 2>/dev/null; then
    pip_args+=(--no-build-isolation)
fi
if ! "$python" -m pip wheel "${pip_args[@]}" "$work/src" > "$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    echo "build.sh: building the wheel failed" >&2
    exit 1
fi
wheel=$(ls "$work"/wheels/st2bridge-*.whl)
echo "  wheel: $(basename "$wheel")"

stage="$work/st2bridge-$version"
mkdir -p "$stage/wheels" "$stage/systemd" "$stage/conf" "$stage/logrotate"
cp "$wheel" "$stage/wheels/"
if [ "$with_deps" = 1 ]; then
    echo "  downloading dependency wheels (--with-deps)"
    if ! "$python" -m pip download --disable-pip-version-check -d "$stage/wheels" \
            "st2bridge[engine] @ file://$wheel" > "$work/pip-deps.log" 2>&1; then
        cat "$work/pip-deps.log" >&2
        echo "build.sh: downloading the dependencies failed" >&2
        exit 1
    fi
fi
cp -r "$root/packaging/systemd/." "$stage/systemd/"
cp "$root/conf/bridge.conf.sample" "$stage/conf/"
cp "$root/packaging/logrotate/st2bridge" "$stage/logrotate/"
cp "$root/packaging/UPGRADE.md" "$root/LICENSE" "$stage/"
install -m 0755 "$root/packaging/install.sh" "$stage/install.sh"

archive="$out/st2bridge-$version.tar.gz"
tar -C "$work" --owner=0 --group=0 -czf "$archive" "st2bridge-$version"
cp "$wheel" "$out/"
echo "  archive: $archive"
echo "$out/$(basename "$wheel")"
echo "$archive"
