"""Connecting to Ray: an embedded local Ray on the loopback address, or an existing cluster.

Embedded (no address): ``ray.init`` with ``num_cpus`` CPUs, a small object store, no dashboard
and node address 127.0.0.1. Ray turns 127.0.0.1 into the machine's outward address (and its
servers then listen on all interfaces) unless ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` is set
when Ray is imported: Ray's own switch for single-machine Ray, read once by ``ray_constants``
(``get_node_ip_address`` then returns the loopback address and every gRPC server binds to it).
So this module sets it before importing Ray, and refuses (ClusterError) a Ray imported earlier
without it; after start-up the node's address is checked to be 127.0.0.1.

Cluster (``address``: ``auto``, ``HOST:PORT`` of the head's GCS, or ``ray://HOST:PORT``):
``ray.init(address=...)``; the cluster's own ``ray start`` options decide its addresses. A
cluster at ``127.0.0.1:PORT`` (one machine) is joined with the same switch set, as otherwise
Ray would rewrite that address to the outward one and miss a head bound to loopback.

Token authentication: Ray 2.60's ``ray start --head`` turns it on by default, and a driver
given an explicit address never turns it on by itself (``ray/_private/worker.py``, "an
explicit address never does"), so without ``RAY_AUTH_MODE=token`` the head refuses every call
and ``ray.init`` prints a line per retry before giving up with a bare ConnectionError. Joining
therefore captures the process's stderr (file descriptor 2, where Ray's C++ client logs)
while it connects: on a refused token the ClusterError says what to set; otherwise the
captured text is passed on to stderr unchanged.

Ray's usage statistics (a report to an outside server) are always switched off
(``RAY_USAGE_STATS_ENABLED=0``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

from ..errors import ClusterError
from ..stderr_capture import captured_stderr

LOCAL_ONLY_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"
LOOPBACK = "127.0.0.1"
OBJECT_STORE_BYTES = 200 * 1024**2
SWEEP_HINT = "install the sweep extra: pip install 'hgq_chip[sweep]' (ray[tune], optuna)"


def import_ray(local: bool):
    """``ray`` with usage statistics off and, for ``local``, the loopback-only switch set first."""
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # Tune's classic reporter, silent at verbose=0
    if local:
        if "ray" in sys.modules and os.environ.get(LOCAL_ONLY_ENV) != "0":
            raise ClusterError(f"Ray was imported before hgq_chip.sweep without {LOCAL_ONLY_ENV}=0, so a local Ray "
                               f"would listen on every network interface; set {LOCAL_ONLY_ENV}=0 before importing "
                               "ray, or pass a cluster address")
        os.environ[LOCAL_ONLY_ENV] = "0"
    try:
        import ray
        from ray import tune  # noqa: F401
    except ImportError as error:
        raise ClusterError(f"Ray Tune is not installed; {SWEEP_HINT}") from error
    return ray


def start(address: str | None, num_cpus: int, temp_dir: str | None = None) -> bool:
    """Start (``address=None``) or join Ray; returns whether this call started it (so must shut it down).

    An already initialized Ray in this process is used as it is. Raises ClusterError (Ray
    missing, cluster unreachable, local node not on 127.0.0.1).
    """
    sigterm = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    try:
        return _start(address, num_cpus, temp_dir)
    finally:
        # ray.init installs its C++ crash handler for SIGTERM in the driver (stack dump, then abort: exit 134,
        # with Ray's processes and Tune's state left to chance); Python's handler (the CLI's: exit 143 after
        # every cleanup, ray.shutdown included) is put back.
        if sigterm is not None:
            signal.signal(signal.SIGTERM, sigterm)


def _start(address: str | None, num_cpus: int, temp_dir: str | None) -> bool:
    ray = import_ray(local=address is None or _is_loopback(address))
    if ray.is_initialized():
        return False
    common = {"log_to_driver": False, "logging_level": "warning"}
    if address is None:
        ray.init(num_cpus=num_cpus, object_store_memory=OBJECT_STORE_BYTES, include_dashboard=False,
                 _node_ip_address=LOOPBACK, _temp_dir=temp_dir, **common)
        node = ray.util.get_node_ip_address()
        if node != LOOPBACK:
            ray.shutdown()
            raise ClusterError(f"the local Ray node took address {node}, not {LOOPBACK}; set {LOCAL_ONLY_ENV}=0 "
                               "before Ray is imported")
        return True
    _check_reachable(address)
    with captured_stderr() as captured:
        try:
            ray.init(address=address, **common)
            failure = None
        except (ConnectionError, RuntimeError, ValueError, TimeoutError, ray.exceptions.RayError) as error:
            failure = error
    if failure is None:
        sys.stderr.write(captured.text)
        return True
    if _token_refused(captured.text, failure):
        mode = os.environ.get(AUTH_MODE_ENV, "unset")
        raise ClusterError(f"the Ray cluster at {address} refused this driver's authentication token (RAY_AUTH_MODE "
                           f"is {mode}): its head uses token authentication (the default of `ray start --head`); "
                           "set RAY_AUTH_MODE=token and give the head's token: copy its ~/.ray/auth_token, or set "
                           "RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH") from failure
    raise ClusterError(f"cannot reach the Ray cluster at {address} ({type(failure).__name__}: "
                       f"{str(failure).splitlines()[0] if str(failure) else ''}); start it with `ray start --head` "
                       "and pass its address") from failure


def _check_reachable(address: str) -> None:
    """ClusterError at once when a ``HOST:PORT`` address refuses TCP connections: ``ray.init`` would
    retry it for minutes, silently (its stderr is captured while joining). ``auto`` and ``ray://``
    addresses are left to Ray (the client times out by itself)."""
    import socket

    host, _, port = address.rpartition(":")
    if address == "auto" or address.startswith("ray://") or not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=10).close()
    except OSError as error:
        raise ClusterError(f"cannot reach the Ray cluster at {address} ({type(error).__name__}: {error}); start it "
                           "with `ray start --head` and pass its address (the head's GCS port)") from error


AUTH_MODE_ENV = "RAY_AUTH_MODE"
TOKEN_REFUSALS = ("InvalidAuthToken", "Authentication token is missing", "Unauthenticated")


def _token_refused(stderr_text: str, error: BaseException) -> bool:
    """Whether the head refused the driver's token (Ray's C++ client logs it; the raised error may not say)."""
    text = stderr_text + "\n" + str(error) + type(error).__name__
    return "AuthenticationError" in text or any(word in text for word in TOKEN_REFUSALS)


def _is_loopback(address: str) -> bool:
    host = address.removeprefix("ray://").rsplit(":", 1)[0]
    return host in (LOOPBACK, "localhost")


def stop(started: bool) -> None:
    if started:
        import ray

        ray.shutdown()
