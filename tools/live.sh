#!/usr/bin/env bash
# The README's main command: set up what is missing, then run `rtq live` with the
# interpreter set-up chose (a .venv on a Debian system Python).  Arguments go to
# `rtq live` (e.g. `bash tools/live.sh cd-16-shibata --duration 10`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=$(bash tools/setup.sh --python)
exec "$python" -m rtq live "$@"
