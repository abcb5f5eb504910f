#!/usr/bin/env bash
# Run the test suite against a private JACK dummy server.
#
#   bash tools/test.sh [pytest arguments]
#
# Installs what is missing (tools/setup.sh), starts `jackd -d dummy` under a
# unique name (real-time if allowed), exports JACK_DEFAULT_SERVER and
# RTQ_REQUIRE_AUDIO=1 (audio tests fail instead of skipping), runs pytest and
# exits with pytest's status.  On exit it ends leftover clients of the server
# (processes carrying its JACK_DEFAULT_SERVER), then the server itself.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
python=$(bash tools/setup.sh --python)

# A fresh checkout's first rtq process compiles rtq's kernels and the audio callback
# (minutes on a cold cache under load: it once outlasted a test's 120 s guard in CI; 1 s
# warm). Build them once here, as a user's first start does, so the tests' hang guards
# (timeouts on the rtq processes they start) time the tests, not the compiler: rtq live
# on its silent built-in output for 0.1 s, twice. First with an empty rtq cache of its
# own, so that it compiles through Numba and fills Numba's cache in the checkout, which
# the tests' own cold starts use (a callback already in the user's rtq cache, built from
# another checkout of the same source, would otherwise leave it cold); then with the
# user's rtq cache, which it fills from Numba's in seconds if the callback is not there.
# A failure here is left to the tests to report.
warm_cache=$(mktemp -d)
for cache in "$warm_cache" ""; do
  RTQ_CACHE_DIR="$cache" JACK_DEFAULT_SERVER="rtq-no-server-$$" JACK_NO_START_SERVER=1 \
    "$python" -m rtq live --duration 0.1 >/dev/null || echo "tools/test.sh: the warm-up start failed (the tests will say why)" >&2
done
rm -rf "$warm_cache"

name="rtq-test-$$"
coproc server { "$python" tools/jack_server.py serve "$name"; }
read -r server_pid server_log _ <&"${server[0]}" || { wait "$server_PID" || true; exit 1; }

cleanup() {
  "$python" tools/jack_server.py stop "$name" "$server_pid" || true
  wait || true
  rm -f "$server_log"
}
trap cleanup EXIT

export JACK_DEFAULT_SERVER="$name" JACK_NO_START_SERVER=1 RTQ_REQUIRE_AUDIO=1
status=0
"$python" -m pytest "$@" || status=$?
exit "$status"
