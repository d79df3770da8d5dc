"""A two-node Ray cluster on 127.0.0.1 for the sweep tests: ``python tests/ray_two_node.py TEMP_DIR ADDRESS_FILE``.

Started as its own process (``start_new_session=True``) with ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``
set, so Ray keeps 127.0.0.1 as every node's address and binds its servers there. The nodes
are started with Ray's multi-node test cluster, ``ray.cluster_utils.Cluster`` (a head and one
worker node, 1 CPU each, dashboard off), not with two ``ray start`` commands: in Ray 2.60
``ray start --address=127.0.0.1:PORT`` rewrites the loopback address to the machine's outward
one (and refuses to join at all with the switch above), so a worker node started that way
cannot stay on loopback. Writes the head's address to ADDRESS_FILE, then runs until SIGTERM,
which shuts both nodes down.
"""

from __future__ import annotations

import os
import signal
import sys
import time

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
os.environ["RAY_USAGE_STATS_ENABLED"] = "0"

from ray.cluster_utils import Cluster

NODE = {"num_cpus": 1, "object_store_memory": 100 * 1024**2, "node_ip_address": "127.0.0.1"}


def main(temp_dir: str, address_file: str) -> None:
    cluster = Cluster(initialize_head=True, shutdown_at_exit=True,
                      head_node_args={**NODE, "include_dashboard": False, "temp_dir": temp_dir})
    cluster.add_node(**NODE)
    cluster.wait_for_nodes()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with open(address_file + ".tmp", "w") as handle:
        handle.write(cluster.address)
    os.replace(address_file + ".tmp", address_file)
    while not stopping:
        time.sleep(0.2)
    cluster.shutdown()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
