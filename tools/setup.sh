#!/usr/bin/env bash
# Install what rtq needs on Debian (root or sudo, Python >= 3.11, no sound card
# required).  Idempotent and quick when everything is already there.
#
#   bash tools/setup.sh            # install missing apt packages + pip install -e '.[test,bench,plot,cluster,web]'
#   bash tools/setup.sh --python   # same, then print the Python interpreter to use
#
# The interpreter is $PYTHON (default python3).  If it is an externally managed
# system Python (PEP 668) outside a virtualenv, a virtualenv .venv is created
# in the repository and used instead (an existing .venv is always used).
# Progress goes to stderr; only --python writes to stdout.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$PWD

say() { echo "setup: $*" >&2; }
die() { say "error: $*"; exit 1; }

print_python=0
case "${1-}" in
  --python) print_python=1 ;;
  "") ;;
  *) die "unknown option $1 (use --python or nothing)" ;;
esac

python=${PYTHON:-python3}
venv_needed=0
if [[ -x .venv/bin/python ]]; then
  python=.venv/bin/python
else
  command -v "$python" >/dev/null || die "$python not found (set PYTHON=/path/to/python3.11)"
  "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
    die "$python is $("$python" -V 2>&1); rtq needs Python >= 3.11 (set PYTHON=...)"
  if "$python" - <<'EOF'
import os, sys, sysconfig
managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
sys.exit(0 if managed and sys.prefix == sys.base_prefix else 1)
EOF
  then
    venv_needed=1
  fi
fi

# --- system packages ------------------------------------------------------
apt_packages=(libportaudio2 libsndfile1 jackd2 sox ffmpeg fuse3 chromium chromium-driver tmux rt-tests)  # tmux, rt-tests (cyclictest): tools/bench_live.py
((venv_needed)) && apt_packages+=(python3-venv)
missing=()
for pkg in "${apt_packages[@]}"; do
  [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get; install them by hand"
  sudo=()
  if ((EUID != 0)); then
    command -v sudo >/dev/null || die "missing ${missing[*]}; run as root or install sudo"
    sudo=(sudo)
  fi
  log=$(mktemp)
  say "installing ${missing[*]} (apt log: $log)"
  if ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >"$log" 2>&1 ||
     ! "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
         "${missing[@]}" >>"$log" 2>&1; then
    cat "$log" >&2
    die "apt-get failed"
  fi
  rm -f "$log"
fi

if ((venv_needed)); then
  say "$python is externally managed; creating .venv"
  "$python" -m venv .venv
  python=.venv/bin/python
fi

# --- Python packages --------------------------------------------------------
# Skip pip when rtq is installed editable from this checkout with the current
# version and scripts, and every requirement of pyproject.toml (dependencies
# plus the test, bench, plot, cluster and web extras: the tests draw the plots, run a Dask
# LocalCluster and serve the web pages to a headless Chromium) is satisfied.
extras=test,bench,plot,cluster,web
if ! "$python" -P - "$root" "$extras" <<'EOF'
import importlib.metadata as md
import json
import pathlib
import sys
import tomllib

try:
    from packaging.requirements import Requirement
except ImportError:
    from pip._vendor.packaging.requirements import Requirement

root = pathlib.Path(sys.argv[1])
project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
extras = project.get("optional-dependencies", {})
requirements = project.get("dependencies", []) + [r for extra in sys.argv[2].split(",") for r in extras.get(extra, [])]
try:
    dist = md.distribution(project["name"])
except md.PackageNotFoundError:
    sys.exit(1)
url = json.loads(dist.read_text("direct_url.json") or "{}")
if not url.get("dir_info", {}).get("editable") or url.get("url") != root.as_uri():
    sys.exit(1)
if dist.version != project["version"]:
    sys.exit(1)
scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
if scripts != project.get("scripts", {}):
    sys.exit(1)
for requirement in map(Requirement, requirements):
    if requirement.marker and not requirement.marker.evaluate():
        continue
    try:
        version = md.version(requirement.name)
    except md.PackageNotFoundError:
        sys.exit(1)
    if not requirement.specifier.contains(version, prereleases=True):
        sys.exit(1)
EOF
then
  say "pip install -e '.[$extras]'"
  PIP_ROOT_USER_ACTION=ignore "$python" -m pip install --quiet --disable-pip-version-check \
    --no-input -e ".[$extras]" >&2 || die "pip install failed"
fi

if ((print_python)); then
  if [[ $python == */* ]]; then
    realpath -s "$python"
  else
    command -v "$python"
  fi
fi
