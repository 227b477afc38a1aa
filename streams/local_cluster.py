"""A throw-away local Kafka cluster for tests and rehearsals: several brokers and their
KRaft controller quorum on 127.0.0.1, each node one `deploy/kafka/kafka.sh` process
(streams.local_kafka.LocalKafka) from the same Maven jars as the single test broker::

    with LocalCluster() as cluster:          # 3 brokers, 1 dedicated controller
        ensure_topics(cluster.bootstrap, load_topic_specs("cluster"))
        cluster.kill(2)                      # kill -9 of broker 2
        cluster.start_node(2)                # back with its data (it catches up)

The cluster's settings are those of production (deploy/cluster/): replication factor 3
of every topic (and of `__consumer_offsets`), `min.insync.replicas` 2,
`unclean.leader.election.enable` false. `controllers`: the number of dedicated controllers
(brokers 1..N, controllers 101..); 0 makes every broker a controller too (combined
nodes, whose quorum is lost with a majority of the nodes). Small heaps: the whole cluster
fits a small machine. Every node is stopped by stop() (or when this process dies:
kafka.sh's watchdog), and a temporary data directory is deleted.
"""
from __future__ import annotations

import atexit
import base64
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streams.local_kafka import LocalKafka, free_ports

CONTROLLER_IDS = 101  # the first dedicated controller's node id


def new_cluster_id() -> str:
    """A base64url UUID as `kafka-storage.sh random-uuid` makes it."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class LocalCluster:
    """`brokers` brokers and `controllers` dedicated KRaft controllers (0: combined nodes)
    on free 127.0.0.1 ports. `nodes[node_id]` is each node's LocalKafka; `bootstrap` lists
    every broker."""

    def __init__(self, brokers: int = 3, controllers: int = 1, data_dir=None, *, replication: int | None = None,
                 min_isr: int | None = None, broker_heap: str = "-Xmx320m -Xms128m",
                 controller_heap: str = "-Xmx192m -Xms64m", extra_config: str | None = None,
                 start_timeout: int = 120):
        self.cluster_id = new_cluster_id()
        self.replication = replication or min(brokers, 3)
        self.min_isr = min_isr or max(1, self.replication - 1)
        self.broker_ids = list(range(1, brokers + 1))
        self.controller_ids = list(range(CONTROLLER_IDS, CONTROLLER_IDS + controllers)) or list(self.broker_ids)
        node_ids = list(dict.fromkeys(self.broker_ids + self.controller_ids))
        ports = iter(free_ports(2 * len(node_ids)))
        # explicit ports: a voter's controller port is in every node's config, it must not move
        endpoints = {i: (next(ports), next(ports)) for i in node_ids}
        self._temp_dir = data_dir is None
        self.data_dir = Path(tempfile.mkdtemp(prefix="local-cluster-") if data_dir is None else data_dir).resolve()
        voters = ",".join(f"{i}@127.0.0.1:{endpoints[i][1]}" for i in self.controller_ids)
        self.nodes: dict[int, LocalKafka] = {}
        for node_id, (port, controller_port) in endpoints.items():
            roles = ("broker,controller" if controllers == 0 else "broker") if node_id in self.broker_ids \
                else "controller"
            self.nodes[node_id] = LocalKafka(
                port, self.data_dir / f"node-{node_id}", controller_port=controller_port, extra_config=extra_config,
                heap=broker_heap if "broker" in roles else controller_heap, start_timeout=start_timeout,
                env={"KAFKA_NODE_ID": str(node_id), "KAFKA_PROCESS_ROLES": roles, "KAFKA_QUORUM_VOTERS": voters,
                     "KAFKA_CLUSTER_ID": self.cluster_id, "KAFKA_REPLICATION": str(self.replication),
                     "KAFKA_MIN_ISR": str(self.min_isr)})
        self._started = False

    @property
    def bootstrap(self) -> str:
        """Every broker, e.g. "127.0.0.1:40123,127.0.0.1:40125,127.0.0.1:40127"."""
        return ",".join(self.nodes[i].bootstrap for i in self.broker_ids)

    def start(self) -> "LocalCluster":
        """Start every node and wait until each broker is registered with the quorum.
        Dedicated controllers first; the nodes of a group in parallel (a quorum of
        combined nodes forms only when a majority runs)."""
        if not self._started:
            self._started = True
            atexit.register(self.stop)
        dedicated = [i for i in self.controller_ids if i not in self.broker_ids]
        for group in (dedicated, self.broker_ids):
            self._each(group, lambda node: node.start())
        return self

    def start_node(self, *node_ids: int) -> None:
        """Start nodes again (after kill or stop_node), with their data, in parallel."""
        self._each(node_ids, lambda node: node.start())

    def kill(self, *node_ids: int) -> None:
        """kill -9 of nodes."""
        self._each(node_ids, lambda node: node.kill())

    def stop_node(self, node_id: int) -> None:
        """A clean shutdown of one node (SIGTERM)."""
        self.nodes[node_id].stop()

    def is_running(self, node_id: int) -> bool:
        return self.nodes[node_id].is_running()

    def stop(self) -> None:
        """Stop every node (brokers first); delete a temporary data dir."""
        dedicated = [i for i in self.controller_ids if i not in self.broker_ids]
        for group in (self.broker_ids, dedicated):
            self._each(group, lambda node: node.stop())
        if self._temp_dir:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        if self._started:
            self._started = False
            atexit.unregister(self.stop)

    def _each(self, node_ids, action) -> None:
        """`action` on the nodes in parallel; raises the first failure after every node
        was tried. One after the other at interpreter exit (no new threads then)."""
        if not node_ids:
            return
        try:
            pool = ThreadPoolExecutor(len(node_ids))
            futures = [pool.submit(action, self.nodes[i]) for i in node_ids]
        except RuntimeError:  # the interpreter is shutting down (atexit)
            for i in node_ids:
                action(self.nodes[i])
            return
        with pool:
            for future in futures:
                future.result()

    def __enter__(self) -> "LocalCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalCluster(bootstrap={self.bootstrap!r}, data_dir={str(self.data_dir)!r})"
