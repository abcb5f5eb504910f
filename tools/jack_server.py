"""Start and stop private JACK dummy servers (for tests and benchmarks).

Library use::

    with JackServer.start("rtq-demo") as server:   # exports nothing, see .env
        ...

Command line (used by tools/test.sh)::

    python tools/jack_server.py serve NAME     # starts it; once it answers prints
                                               # "PID LOGFILE realtime|not-realtime",
                                               # then waits until the server exits
    python tools/jack_server.py stop NAME PID  # ends NAME's clients, then the server

The server runs the dummy backend (no sound card needed): 48 kHz, period 64,
2 capture + 2 playback channels.  It asks for real-time scheduling (-R) and
falls back to normal scheduling when the system refuses it.  Stop servers
only after their clients: PortAudio hangs or aborts in a process whose JACK
server vanished (see rtq/live/portaudio/stream.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

RATE = 48000
PERIOD = 64


def _reachable(name: str, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for server ``name`` to accept clients."""
    env = dict(os.environ, JACK_DEFAULT_SERVER=name, JACK_NO_START_SERVER="1")
    if shutil.which("jack_wait"):
        cmd = ["jack_wait", "-w", "-t", str(max(1, round(timeout)))]
        result = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout + 5)
        return result.returncode == 0
    deadline = time.monotonic() + timeout
    probe = (
        "import jack, sys\n"
        "jack.set_error_function(lambda m: None)\n"
        "try:\n"
        "    jack.Client('rtq-probe', no_start_server=True, servername=sys.argv[1]).close()\n"
        "except jack.JackOpenError:\n"
        "    sys.exit(1)\n"
    )
    while time.monotonic() < deadline:
        if subprocess.run([sys.executable, "-c", probe, name], env=env).returncode == 0:
            return True
        time.sleep(0.1)
    return False


class JackServer:
    """A running ``jackd`` dummy server started by :meth:`start`."""

    def __init__(self, name: str, process: subprocess.Popen, realtime: bool, log_path: str):
        self.name = name
        self.process = process
        self.realtime = realtime
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def env(self) -> dict[str, str]:
        """Environment for client processes that should use this server."""
        return dict(os.environ, JACK_DEFAULT_SERVER=self.name, JACK_NO_START_SERVER="1")

    @classmethod
    def start(cls, name: str, timeout: float = 10.0, capture: int = 2) -> "JackServer":
        """Start ``jackd -n name`` (real-time if allowed) and wait until it answers;
        ``capture``: its capture channels (0: a playback-only device).

        Raises
        ------
        RuntimeError
            If no server came up, with the tail of jackd's log.
        """
        if not shutil.which("jackd"):
            raise RuntimeError("jackd not found (run tools/setup.sh)")
        log = ""
        for realtime in (True, False):
            fd, log_path = tempfile.mkstemp(prefix=f"jackd-{name}-", suffix=".log")
            cmd = ["jackd", "-n", name, *(["-R"] if realtime else ["-r"])]
            cmd += ["-d", "dummy", "-r", str(RATE), "-p", str(PERIOD), "-C", str(capture), "-P", "2"]
            process = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=fd,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=dict(os.environ, JACK_NO_START_SERVER="1"),
            )
            os.close(fd)
            server = cls(name, process, realtime, log_path)
            if process.poll() is None and _reachable(name, timeout) and process.poll() is None:
                if not realtime or not server._realtime_refused():
                    return server
            with open(log_path) as f:
                log = f.read()
            server._terminate()
        raise RuntimeError(f"jackd -n {name} did not start:\n{log[-2000:]}")

    def _realtime_refused(self) -> bool:
        with open(self.log_path) as f:
            return "Cannot use real-time scheduling" in f.read()

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the server (fault injection); :meth:`stop` still cleans up."""
        self.process.send_signal(sig)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM the server, SIGKILL it if it does not exit within ``timeout``.

        A server killed by a signal it cannot handle (SIGKILL) leaves its slot
        in JACK's shared-memory registry, which holds only 8 servers and frees
        a slot only when a server *of the same name* starts.  So after such an
        exit, a server of the same name is started and stopped cleanly to give
        the slot back, and the name's leftover client semaphores are removed
        from /dev/shm.
        """
        self._terminate(timeout)
        if self.process.returncode < 0 and self.process.returncode != -signal.SIGTERM:
            JackServer.start(self.name)._terminate(timeout)
        for leftover in glob.glob(f"/dev/shm/jack_sem.{os.getuid()}_{glob.escape(self.name)}_*"):
            os.unlink(leftover)

    def _terminate(self, timeout: float = 5.0) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        if os.path.exists(self.log_path):
            os.unlink(self.log_path)

    def __enter__(self) -> "JackServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM process ``pid`` (not our child), SIGKILL it if still alive after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    sig = signal.SIGTERM
    while _alive(pid):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:  # it ended between the check and the signal
            return
        sig = signal.SIGKILL if time.monotonic() > deadline else 0
        time.sleep(0.02)


def _alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie (orphans may stay unreaped in containers)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):
        return False


def stop_clients(name: str, timeout: float = 2.0) -> None:
    """End processes whose environment selects server ``name`` (except this one and its parent).

    Run before stopping a server: a client whose server vanishes hangs or
    aborts inside PortAudio.
    """
    marker = f"JACK_DEFAULT_SERVER={name}".encode()
    spared = {os.getpid(), os.getppid()}
    clients = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) in spared:
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if marker in f.read().split(b"\0"):
                    clients.append(int(entry))
        except OSError:
            continue
    for pid in clients:
        stop_pid(pid, timeout)


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "serve":
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is for the tests; `stop` ends the server
        server = JackServer.start(argv[1])
        print(server.pid, server.log_path, "realtime" if server.realtime else "not-realtime", flush=True)
        server.process.wait()  # reap it: PID 1 of a container may not
        return 0
    if len(argv) == 3 and argv[0] == "stop":
        stop_clients(argv[1])
        stop_pid(int(argv[2]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
