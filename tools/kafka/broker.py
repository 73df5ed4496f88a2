"""A real single-node Apache Kafka broker (KRaft, broker + controller) on loopback.

One helper for the pytest session fixture, for ``.ci/run`` and for developers::

    python tools/kafka/broker.py fetch            # jars from Maven Central into the cache
    python tools/kafka/broker.py start [--dir D]  # format (first time), start, wait ready
    python tools/kafka/broker.py status [--dir D] # prints the state as JSON, exit 1 if down
    python tools/kafka/broker.py stop [--dir D]   # SIGTERM, wait, SIGKILL after a timeout

The Kafka version is pinned in ``tools/kafka/pom.xml``; ``fetch`` runs
``mvn dependency:copy-dependencies`` into ``$GRENSWACHT_CACHE/kafka-<version>/libs``
(default cache ``~/.cache/grenswacht``). ``start`` writes ``server.properties``, a quiet
log4j2 configuration and ``broker.json`` (pid, ports, bootstrap addresses) into the
working directory (default ``$GRENSWACHT_CACHE/broker``). A second ``start`` on a
directory that already holds a configuration reuses its ports and data (a restart).

Besides the PLAINTEXT listener the broker has a SASL_PLAINTEXT listener with SCRAM-SHA-256
and SCRAM-SHA-512 and one user (:data:`SCRAM_USERNAME`), so the SASL settings of the Kafka
bus can be exercised against the real thing. Standard library plus the kafka-python admin
client (readiness) only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
POM = HERE / "pom.xml"
STATE_FILE = "broker.json"
SCRAM_USERNAME = "grenswacht-test"
SCRAM_PASSWORD = "grenswacht-test-secret"  # noqa: S105 - a loopback test broker's user
DEFAULT_HEAP = "512m"

LOG4J2 = """\
Configuration:
  name: grenswacht-test-broker
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
    Logger:
      - name: kafka.server.KafkaServer
        level: INFO
      - name: org.apache.kafka.controller.QuorumController
        level: ERROR
"""


class BrokerError(RuntimeError):
    """The broker could not be fetched, started or stopped (message says why)."""


def kafka_version() -> str:
    """The Kafka version pinned in ``pom.xml``."""
    match = re.search(r"<kafka\.version>([^<]+)</kafka\.version>", POM.read_text())
    if match is None:
        raise BrokerError(f"no <kafka.version> in {POM}")
    return match.group(1).strip()


def cache_dir() -> Path:
    return Path(os.environ.get("GRENSWACHT_CACHE", Path.home() / ".cache" / "grenswacht"))


def libs_dir(version: str | None = None) -> Path:
    return cache_dir() / f"kafka-{version or kafka_version()}" / "libs"


def default_workdir() -> Path:
    return cache_dir() / "broker"


def fetch(*, force: bool = False) -> Path:
    """Download the pinned Kafka jars (once) and return the folder holding them."""
    version = kafka_version()
    libs = libs_dir(version)
    marker = libs / ".complete"
    if marker.exists() and not force:
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise BrokerError("Maven (mvn) is not on PATH: apt-get install maven")
    staging = libs.with_name("libs.partial")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = [
        mvn, "-B", "-q", "-f", str(POM), "dependency:copy-dependencies",
        f"-DoutputDirectory={staging}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0 or not (staging / f"kafka_2.13-{version}.jar").exists():
        raise BrokerError(f"mvn failed ({done.returncode}):\n{done.stdout[-3000:]}"
                          f"{done.stderr[-3000:]}")
    (staging / ".complete").write_text(version + "\n")
    shutil.rmtree(libs, ignore_errors=True)
    staging.rename(libs)
    return libs


@dataclass
class BrokerState:
    """What ``start`` wrote to ``broker.json``."""

    pid: int
    port: int
    controller_port: int
    sasl_port: int
    workdir: str
    version: str
    scram_username: str = SCRAM_USERNAME
    scram_password: str = SCRAM_PASSWORD

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def sasl_bootstrap(self) -> str:
        return f"127.0.0.1:{self.sasl_port}"

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "bootstrap": self.bootstrap, "sasl_bootstrap": self.sasl_bootstrap}


def _free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def _server_properties(workdir: Path, port: int, controller_port: int, sasl_port: int) -> str:
    scram_jaas = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
    lines = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port},"
        f"SASL_PLAINTEXT://127.0.0.1:{sasl_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,"
        "SASL_PLAINTEXT:SASL_PLAINTEXT",
        "sasl.enabled.mechanisms": "SCRAM-SHA-256,SCRAM-SHA-512",
        "listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config": scram_jaas,
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": scram_jaas,
        "log.dirs": str(workdir / "data"),
        "num.partitions": "3",
        "num.network.threads": "2",
        "num.io.threads": "2",
        "background.threads": "2",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "share.coordinator.state.topic.num.partitions": "1",
        "group.initial.rebalance.delay.ms": "0",
        "group.min.session.timeout.ms": "1000",
        "log.retention.hours": "24",
        "log.segment.bytes": str(64 * 1024 * 1024),
        "auto.create.topics.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in lines.items())


def _ports_of(properties: Path) -> tuple[int, int, int]:
    text = properties.read_text()
    port = re.search(r"PLAINTEXT://127\.0\.0\.1:(\d+),CONTROLLER", text)
    controller = re.search(r"CONTROLLER://127\.0\.0\.1:(\d+)", text)
    sasl = re.search(r"SASL_PLAINTEXT://127\.0\.0\.1:(\d+)", text)
    if not (port and controller and sasl):
        raise BrokerError(f"cannot read the listener ports from {properties}")
    return int(port.group(1)), int(controller.group(1)), int(sasl.group(1))


def _java_command(libs: Path, workdir: Path, heap: str) -> list[str]:
    java = shutil.which("java")
    if java is None:
        raise BrokerError("java is not on PATH: apt-get install openjdk-17-jre-headless")
    return [
        java, f"-Xmx{heap}", "-Xms64m", "-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20",
        "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={workdir / 'log4j2.yaml'}",
        f"-Dkafka.logs.dir={workdir / 'logs'}",
        "-cp", f"{libs}/*",
    ]


def read_state(workdir: Path | None = None) -> BrokerState | None:
    path = (workdir or default_workdir()) / STATE_FILE
    if not path.exists():
        return None
    data = json.loads(path.read_text())
    data.pop("bootstrap", None)
    data.pop("sasl_bootstrap", None)
    return BrokerState(**data)


_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}
"""Brokers started by this process, kept so that they are reaped (and not warned about)."""


def _alive(pid: int) -> bool:
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); reap it if it is ours
    try:
        reaped, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return _not_zombie(pid)
    return reaped == 0


def _not_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def is_ready(bootstrap: str, timeout: float = 5.0) -> bool:
    """True when the broker answers DescribeCluster with an unfenced broker."""
    from kafka.admin import KafkaAdminClient

    host, _, port = bootstrap.rpartition(":")
    try:  # a plain TCP probe first: kafka-python leaks the socket of a refused connect
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="grenswacht-broker-ready",
            request_timeout_ms=int(timeout * 1000),
            bootstrap_timeout_ms=int(timeout * 1000),
            reconnect_backoff_max_ms=500,
        )
    except Exception:  # noqa: BLE001 - not reachable yet is the answer
        return False
    try:
        cluster = admin.describe_cluster()
        brokers = cluster.get("brokers") or []
        return any(not b.get("is_fenced", False) for b in brokers)
    except Exception:  # noqa: BLE001
        return False
    finally:
        admin.close()


def start(
    workdir: Path | None = None, *, heap: str = DEFAULT_HEAP, timeout: float = 120.0
) -> BrokerState:
    """Start the broker in ``workdir`` (or return the running one) and wait until ready."""
    workdir = (workdir or default_workdir()).resolve()
    existing = read_state(workdir)
    if existing is not None and _alive(existing.pid) and is_ready(existing.bootstrap):
        return existing
    libs = fetch()
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    (workdir / "log4j2.yaml").write_text(LOG4J2)
    properties = workdir / "server.properties"
    if properties.exists() and (workdir / "data" / "meta.properties").exists():
        return _launch(libs, workdir, properties, heap, timeout, _ports_of(properties))
    # fresh ports are free when chosen, not when the JVM binds them (another process, e.g. a
    # second test suite on the machine, may take one in between): then choose again
    for attempt in range(3):
        ports = _free_ports(3)
        properties.write_text(_server_properties(workdir, *ports))
        _format(libs, workdir, properties, heap)
        try:
            return _launch(libs, workdir, properties, heap, timeout, ports)
        except BrokerError:
            log = workdir / "broker.log"
            if attempt == 2 or "Address already in use" not in log.read_text(errors="replace"):
                raise
            log.rename(workdir / f"broker.log.{attempt}")
            shutil.rmtree(workdir / "data", ignore_errors=True)
    raise AssertionError("unreachable")


def _launch(libs: Path, workdir: Path, properties: Path, heap: str, timeout: float,
            ports: tuple[int, int, int] | list[int]) -> BrokerState:
    port, controller_port, sasl_port = ports
    log = (workdir / "broker.log").open("ab")
    process = subprocess.Popen(  # noqa: S603
        [*_java_command(libs, workdir, heap), "kafka.Kafka", str(properties)],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, cwd=workdir,
    )
    log.close()
    _CHILDREN[process.pid] = process
    state = BrokerState(process.pid, port, controller_port, sasl_port, str(workdir),
                        kafka_version())
    (workdir / STATE_FILE).write_text(json.dumps(state.to_json(), indent=2) + "\n")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BrokerError(f"the broker exited with {process.returncode}; "
                              f"see {workdir / 'broker.log'}:\n{_tail(workdir / 'broker.log')}")
        if is_ready(state.bootstrap, timeout=2.0):
            return state
        time.sleep(0.2)
    stop(workdir)
    raise BrokerError(f"the broker was not ready after {timeout:.0f} s; see "
                      f"{workdir / 'broker.log'}:\n{_tail(workdir / 'broker.log')}")


def _format(libs: Path, workdir: Path, properties: Path, heap: str) -> None:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    scram = f"[name={SCRAM_USERNAME},password={SCRAM_PASSWORD}]"
    command = [
        *_java_command(libs, workdir, "256m"), "kafka.tools.StorageTool", "format",
        "--standalone", f"--cluster-id={cluster_id}", "--config", str(properties),
        "--add-scram", f"SCRAM-SHA-256={scram}", "--add-scram", f"SCRAM-SHA-512={scram}",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    if done.returncode != 0:
        raise BrokerError(f"formatting the KRaft storage failed:\n{done.stderr[-3000:]}")


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def stop(workdir: Path | None = None, *, timeout: float = 60.0, kill: bool = False) -> bool:
    """Stop the broker (SIGTERM, or SIGKILL with ``kill``). True if one was running."""
    workdir = (workdir or default_workdir()).resolve()
    state = read_state(workdir)
    if state is None or not _alive(state.pid):
        return False
    os.kill(state.pid, signal.SIGKILL if kill else signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(state.pid):
        if time.monotonic() > deadline:
            os.kill(state.pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)
    _CHILDREN.pop(state.pid, None)
    return True


def status(workdir: Path | None = None) -> dict[str, Any] | None:
    state = read_state(workdir)
    if state is None:
        return None
    alive = _alive(state.pid)
    return {**state.to_json(), "running": alive, "ready": alive and is_ready(state.bootstrap)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="broker.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["fetch", "start", "stop", "status"])
    parser.add_argument("--dir", type=Path, default=None, help="broker working directory")
    parser.add_argument("--heap", default=DEFAULT_HEAP)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args(argv)
    try:
        if args.action == "fetch":
            print(fetch())  # noqa: T201 - CLI output
        elif args.action == "start":
            state = start(args.dir, heap=args.heap, timeout=args.timeout)
            print(json.dumps(state.to_json(), indent=2))  # noqa: T201
        elif args.action == "stop":
            print("stopped" if stop(args.dir, timeout=args.timeout) else "not running")  # noqa: T201
        else:
            info = status(args.dir)
            print(json.dumps(info, indent=2))  # noqa: T201
            return 0 if info and info["ready"] else 1
    except BrokerError as exc:
        print(f"error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
