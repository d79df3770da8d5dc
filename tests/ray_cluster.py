"""Test helpers for sweeps: a private local Ray cluster on 127.0.0.1, socket checks, process clean-up.

Every process is found by the session id of a ``ray start`` we launched with
``start_new_session=True`` (Ray's daemons and workers inherit it), so tear-down ends exactly the
processes these tests started, by id, never by name.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAY = str(Path(sys.executable).with_name("ray"))
LOOPBACK = {"127.0.0.1", "::ffff:127.0.0.1", "::1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ray_env(local_only: bool) -> dict:
    """Environment for Ray processes: our package importable, no usage statistics, and (for the head
    and embedded Ray) Ray's single-machine switch that keeps 127.0.0.1 as the node address."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_USAGE_STATS_ENABLED": "0", "TF_CPP_MIN_LOG_LEVEL": "3"}
    if local_only:
        env["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    else:
        env.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
    return env


def session_pids(sessions: list[int]) -> list[int]:
    """Every live process whose session id is one of ``sessions``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getsid(int(entry.name)) in sessions:
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def kill_sessions(sessions: list[int], wait: float = 10.0) -> None:
    """SIGTERM, then SIGKILL, the processes of our sessions."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(sessions):
            try:
                os.kill(pid, sig)
            except OSError:
                pass
        deadline = time.time() + wait
        while session_pids(sessions) and time.time() < deadline:
            time.sleep(0.2)


def _inodes(pids: list[int]) -> set[str]:
    inodes = set()
    for pid in pids:
        try:
            for fd in os.listdir(f"/proc/{pid}/fd"):
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    return inodes


def _address(hex_address: str) -> str:
    host, _ = hex_address.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def tcp_endpoints(pids: list[int]) -> list[tuple[str, str, str]]:
    """(state, local address, remote address) of every TCP socket the processes hold (/proc/net/tcp*)."""
    inodes = _inodes(pids)
    rows = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                state = "LISTEN" if fields[3] == "0A" else "OTHER"
                rows.append((state, _address(fields[1]), _address(fields[2])))
    return rows


def non_loopback(pids: list[int]) -> list[tuple[str, str, str]]:
    """Sockets bound to, or connected to, anything but the loopback address (listeners' remote is 0.0.0.0)."""
    bad = []
    for state, local, remote in tcp_endpoints(pids):
        if local not in LOOPBACK or (state != "LISTEN" and remote not in LOOPBACK):
            bad.append((state, local, remote))
    return bad


class LocalCluster:
    """Two Ray nodes on 127.0.0.1 (``tests/ray_two_node.py`` in its own session); ``stop()`` ends them."""

    def __init__(self, temp_dir: Path, timeout: float = 120):
        self.temp_dir = temp_dir
        address_file = temp_dir / "address"
        self.log = temp_dir / "cluster.log"
        # RAY_TMPDIR: Ray's files (ray_current_cluster, sessions) go to our private folder, not /tmp/ray.
        env = {**ray_env(local_only=True), "RAY_TMPDIR": str(temp_dir)}
        (temp_dir / "ray").mkdir(exist_ok=True)  # RAY_TMPDIR/ray: where Ray records the cluster's address
        with open(self.log, "w") as handle:  # a file, not a pipe: Ray's daemons inherit the descriptor
            self.process = subprocess.Popen([sys.executable, str(REPO / "tests" / "ray_two_node.py"), str(temp_dir),
                                             str(address_file)], env=env, stdout=handle, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self.sessions = [self.process.pid]
        deadline = time.time() + timeout
        while not address_file.is_file():
            if self.process.poll() is not None or time.time() > deadline:
                self.stop()
                raise RuntimeError(f"the two-node Ray cluster did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.5)
        self.address = address_file.read_text().strip()

    def pids(self) -> list[int]:
        return session_pids(self.sessions)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        kill_sessions(self.sessions)
