"""``kafka://host:port[,host:port]``: the Bus on Apache Kafka, with kafka-python.

The only module that imports kafka-python; every kafka-python exception becomes a
:class:`~schemas.errors.BusError` here (:func:`map_kafka_error`).

* Producer: ``acks=all``, idempotence on, bounded retries with backoff, ``delivery_timeout_ms``
  as the outer bound; :meth:`KafkaBus.flush` raises if any queued message failed.
* Consumer: one consumer group member, no auto-commit, ``auto_offset_reset=earliest``.
  kafka-python 3 runs its network loop (heartbeats, rebalances) on an IO thread and calls
  rebalance listeners there, where blocking client calls are not allowed. So the
  ``on_revoke`` callback runs on that thread, a :meth:`KafkaBus.commit` made from inside it
  is collected, and the listener awaits that commit before the partitions are given up.
  An exception raised by ``on_revoke`` comes out of the next :meth:`KafkaBus.poll`
  unchanged; the partitions may then come back to this member at their old positions, so
  the caller calls :meth:`KafkaBus.seek_to_committed`, as after any failed flush.
* Topics: :data:`schemas.topics.DEFAULT_TOPIC_SPECS` (plus any ``topics=`` given) are created
  when the bus is opened, with partitions and replication from :class:`KafkaSettings`.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import kafka.errors as kerrors
from kafka import KafkaConsumer, KafkaProducer
from kafka import TopicPartition as KafkaTopicPartition
from kafka.admin import KafkaAdminClient
from kafka.consumer.subscription_state import AsyncConsumerRebalanceListener
from kafka.coordinator.base import MemberState
from kafka.net.compat import KafkaNetClient
from kafka.structs import OffsetAndMetadata
from pydantic import ValidationError

from schemas.bus.base import Bus, Message, RevokeCallback, Subscription, TopicPartition
from schemas.bus.kafka_settings import KafkaSettings
from schemas.errors import BusBackpressure, BusClosed, BusError, ConfigError, GrenswachtError
from schemas.topics import DEFAULT_TOPIC_SPECS, MAX_MESSAGE_BYTES, TopicSpec

__all__ = [
    "BusAuthError", "BusUnavailable", "ClientStalled", "CommitFailed", "KafkaBus",
    "MessageTooLarge", "map_kafka_error", "open_kafka_bus", "parse_kafka_url",
]

DEFAULT_PORT = 9092
log = logging.getLogger(__name__)


class BusUnavailable(BusBackpressure):
    """The brokers cannot be reached or did not answer in time; retry later."""


class BusAuthError(BusError):
    """Authentication (TLS, SASL) or authorization failed."""


class MessageTooLarge(BusError):
    """A message is larger than :data:`schemas.topics.MAX_MESSAGE_BYTES` or the broker's limit."""


class CommitFailed(BusError):
    """The offsets could not be committed (usually: the group rebalanced meanwhile)."""


def map_kafka_error(exc: BaseException, what: str) -> GrenswachtError:
    """The one mapping of kafka-python exceptions onto our tree."""
    if isinstance(exc, GrenswachtError):
        return exc
    text = f"{what}: {type(exc).__name__}: {exc}"
    if isinstance(exc, kerrors.MessageSizeTooLargeError):
        return MessageTooLarge(text)
    if isinstance(exc, kerrors.SaslAuthenticationFailedError | kerrors.AuthorizationError):
        return BusAuthError(text)
    if isinstance(
        exc,
        kerrors.CommitFailedError | kerrors.RebalanceInProgressError
        | kerrors.IllegalGenerationError | kerrors.UnknownMemberIdError,
    ):
        return CommitFailed(text)
    if isinstance(exc, kerrors.RetriableError | OSError | TimeoutError):
        return BusUnavailable(text, retry_after=1.0)
    if isinstance(exc, kerrors.KafkaError):
        return BusError(text)
    return BusError(text)


def parse_kafka_url(url: str) -> list[str]:
    """``kafka://h1:p1,h2:p2`` -> ``["h1:p1", "h2:p2"]`` (port 9092 if left out)."""
    if not url.startswith("kafka://"):
        raise ConfigError(f"not a kafka:// URL: {url!r}")
    rest = url[len("kafka://"):].split("/", 1)[0].split("?", 1)[0]
    servers = []
    for part in filter(None, (p.strip() for p in rest.split(","))):
        host, sep, port = part.rpartition(":")
        if not sep or "]" in port:
            host, port = part, str(DEFAULT_PORT)
        if not host or not port.isdigit():
            raise ConfigError(f"bad broker address {part!r} in {url!r}: use host:port")
        servers.append(f"{host}:{port}")
    if not servers:
        raise ConfigError(f"no broker in {url!r}: use kafka://host:port[,host:port]")
    return servers


def open_kafka_bus(
    url: str,
    *,
    settings: KafkaSettings | None = None,
    topics: Sequence[TopicSpec] = (),
    **fields: Any,
) -> KafkaBus:
    """Open a Kafka bus: connect the producer and create missing topics.

    ``settings`` is the ``[kafka]`` settings table; keyword ``fields`` override single
    settings (``security_protocol="SASL_SSL"``, ...). ``topics`` are created besides the
    grenswacht topics.
    """
    servers = parse_kafka_url(url)
    try:
        base = (settings or KafkaSettings()).model_dump()
        merged = KafkaSettings.model_validate({**base, **fields}) if fields else (
            settings or KafkaSettings())
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise ConfigError(f"invalid kafka settings: {problems}") from exc
    bus = KafkaBus(servers, merged, topics=(*DEFAULT_TOPIC_SPECS, *topics))
    bus.open()
    return bus


class _RevokeListener(AsyncConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, bus: KafkaBus) -> None:
        self._bus = bus

    async def on_partitions_revoked(self, revoked: Any) -> None:
        await self._bus._on_revoked(revoked, lost=False)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None

    async def on_partitions_lost(self, lost: Any) -> None:
        await self._bus._on_revoked(lost, lost=True)


class _TrackedClients:
    """kafka-python's ``kafka_client`` factory, remembering what it built: a producer,
    consumer or admin client whose constructor fails (no broker, bad credentials) leaves
    its network client open, and only we can close it."""

    def __init__(self) -> None:
        self.clients: list[Any] = []

    def __call__(self, **config: Any) -> Any:
        client = KafkaNetClient(**config)
        self.clients.append(client)
        return client

    def close_all(self) -> None:
        for client in self.clients:
            try:
                client.close()
            except Exception:  # noqa: BLE001, S110 - best effort after a failed open
                pass
        self.clients.clear()


class ClientStalled(kerrors.KafkaTimeoutError):  # type: ignore[misc]
    """Put into a consumer call that waited too long on kafka-python's network thread."""


class _StallWatch:
    """Gives up a consumer call that hangs in kafka-python.

    kafka-python 3 runs a blocking call (poll, commit, position, close) as a task on its
    network thread and waits for it on a ``threading.Event`` without a timeout; upstream
    reports consumers that waited in ``commit()`` for hours that way (dpkp/kafka-python
    #3121; fixed after 3.0.12 by a timeout on the caller's side). A call that has waited
    ``limit_s`` (our rebalance listener's time not counted) gets :class:`ClientStalled`
    through the selector's own way of failing its waiters (what kafka-python does when its
    network loop dies); the caller treats it as a timeout.
    """

    def __init__(self, limit_s: float, selector: Callable[[], Any],
                 in_listener: Callable[[], bool]) -> None:
        self.limit_s = limit_s
        self._selector = selector
        self._in_listener = in_listener
        self._lock = threading.Lock()
        self._since: float | None = None
        self._what = ""
        self._stop = threading.Event()
        self.stalls = 0
        self._thread = threading.Thread(target=self._watch, name="kafka-stall-watch",
                                         daemon=True)
        self._thread.start()

    @contextlib.contextmanager
    def call(self, what: str) -> Iterator[None]:
        with self._lock:
            self._since, self._what = time.monotonic(), what
        try:
            yield
        finally:
            with self._lock:
                self._since = None

    def close(self) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._stop.wait(min(1.0, self.limit_s / 4)):
            now = time.monotonic()
            with self._lock:
                if self._since is None:
                    continue
                if self._in_listener():
                    self._since = now  # flushing before a rebalance is not a stall
                    continue
                waited, what = now - self._since, self._what
                if waited < self.limit_s:
                    continue
                self._since = now  # the rest of this call gets a fresh limit
            self.stalls += 1
            selector = self._selector()
            log.warning("kafka consumer %s waited %.0f s on kafka-python's network thread "
                        "(%s); giving that wait up", what, waited, selector)
            if selector is not None:
                selector._fail_pending_waiters(ClientStalled(
                    f"{what} waited {waited:.0f} s on kafka-python's network thread"))


def _construct(factory: Any, **config: Any) -> Any:
    """Build a kafka-python client; on failure close its half-open network client."""
    tracked = _TrackedClients()
    try:
        return factory(kafka_client=tracked, **config)
    except BaseException:
        tracked.close_all()
        raise


class KafkaBus(Bus):
    """A producer and (after :meth:`subscribe`) one consumer group member."""

    def __init__(
        self,
        servers: Sequence[str],
        settings: KafkaSettings,
        *,
        topics: Sequence[TopicSpec] = DEFAULT_TOPIC_SPECS,
    ) -> None:
        self.servers = list(servers)
        self.settings = settings
        self.topics = tuple(topics)
        self._producer: Any = None
        self._consumer: Any = None
        self._subscription: Subscription | None = None
        self._failures: list[BaseException] = []
        self._closed = False
        self._listener_thread: threading.Thread | None = None
        self._revoke_commits: dict[TopicPartition, int] = {}
        self._listener_error: BaseException | None = None
        self._watch: _StallWatch | None = None
        self.lost_joins = 0  # rebalances kafka-python left half done (_finish_lost_join)

    # -- setup ----------------------------------------------------------------------
    def open(self) -> None:
        """Connect the producer and create missing topics (the I/O of ``open_kafka_bus``)."""
        options = self.settings.client_options()
        self._check_reachable()
        try:
            self._producer = _construct(
                KafkaProducer,
                bootstrap_servers=self.servers,
                acks="all",
                enable_idempotence=True,
                retries=self.settings.retries,
                delivery_timeout_ms=self.settings.delivery_timeout_ms,
                linger_ms=self.settings.linger_ms,
                batch_size=256 * 1024,
                max_block_ms=self.settings.request_timeout_ms,
                **options,
            )
            if self.settings.create_topics:
                self.ensure_topics(self.topics)
        except Exception as exc:  # noqa: BLE001 - the seam maps everything kafka-python raises
            self._close_quietly()
            raise map_kafka_error(exc, f"cannot open kafka://{','.join(self.servers)}") from exc

    def _check_reachable(self) -> None:
        """Fail fast, with the reason, when no bootstrap server accepts a TCP connection
        (kafka-python would retry until its bootstrap timeout and leak the sockets)."""
        problems = []
        timeout = min(self.settings.connect_timeout_ms / 1000, 5.0)
        for server in self.servers:
            host, _, port = server.rpartition(":")
            try:
                with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
                    return
            except OSError as exc:
                problems.append(f"{server}: {exc.strerror or exc}")
        raise BusUnavailable(
            f"no Kafka broker reachable at kafka://{','.join(self.servers)} "
            f"({'; '.join(problems)})",
            retry_after=1.0,
        )

    def ensure_topics(self, specs: Sequence[TopicSpec]) -> list[str]:
        """Create the topics of ``specs`` that do not exist yet; return their names."""
        admin = _construct(
            KafkaAdminClient, bootstrap_servers=self.servers, **self.settings.client_options()
        )
        try:
            existing = set(admin.list_topics())
            wanted: dict[str, dict[str, Any]] = {}
            for spec in specs:
                if spec.name in existing or spec.name in wanted:
                    continue
                configs = {"retention.ms": str(spec.retention_ms)}
                if spec.compacted:
                    configs["cleanup.policy"] = "compact"
                wanted[spec.name] = {
                    "num_partitions": self.settings.partitions_for(spec.name, spec.partitions),
                    "replication_factor": self.settings.replication_factor,
                    "configs": configs,
                }
            if wanted:
                try:
                    admin.create_topics(wanted, wait_for_metadata=True)
                except kerrors.TopicAlreadyExistsError:
                    pass  # created by another process meanwhile
            return sorted(wanted)
        finally:
            admin.close()

    # -- producer -------------------------------------------------------------------
    def publish(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self._check_open("publish")
        if len(value) > MAX_MESSAGE_BYTES:
            raise MessageTooLarge(
                f"message of {len(value)} bytes exceeds {MAX_MESSAGE_BYTES} bytes"
            )
        try:
            future = self._producer.send(topic, value=value, key=key, headers=list(headers))
        except Exception as exc:  # noqa: BLE001
            raise map_kafka_error(exc, f"publish to {topic} failed") from exc
        future.add_errback(self._failures.append)

    def flush(self, timeout: float | None = None) -> None:
        self._check_open("flush")
        try:
            self._producer.flush(timeout=timeout)
        except Exception as exc:  # noqa: BLE001
            raise map_kafka_error(exc, "flush failed") from exc
        if self._failures:
            failures, self._failures = self._failures, []
            error = map_kafka_error(failures[0], f"{len(failures)} message(s) were not delivered")
            raise error from failures[0]

    # -- consumer -------------------------------------------------------------------
    def subscribe(
        self, topics: Sequence[str], group: str, *, on_revoke: RevokeCallback | None = None
    ) -> None:
        self._check_open("subscribe")
        if self._subscription is not None:
            raise BusError("this bus is already subscribed; open another bus for another group")
        self._watch = _StallWatch(
            self.settings.client_stall_timeout_ms / 1000,
            lambda: getattr(self._consumer, "_net", None),
            lambda: self._listener_thread is not None,
        )
        try:
            self._consumer = _construct(
                KafkaConsumer,
                bootstrap_servers=self.servers,
                group_id=group,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                session_timeout_ms=self.settings.session_timeout_ms,
                heartbeat_interval_ms=self.settings.heartbeat_interval_ms,
                max_poll_interval_ms=self.settings.max_poll_interval_ms,
                fetch_max_wait_ms=100,
                **self.settings.client_options(),
            )
            with self._waiting(f"join of group {group}"):
                for topic in topics:
                    # learn the partitions first: a leader without topic metadata assigns
                    # nothing and the group has to rebalance again
                    self._consumer.partitions_for_topic(topic)
                self._consumer.subscribe(list(topics), listener=_RevokeListener(self))
        except Exception as exc:  # noqa: BLE001
            raise map_kafka_error(exc, f"cannot join group {group}") from exc
        self._subscription = Subscription(tuple(topics), group, on_revoke)

    def _waiting(self, what: str) -> contextlib.AbstractContextManager[None]:
        """Watch one consumer call for a stall (see :class:`_StallWatch`)."""
        return self._watch.call(what) if self._watch is not None else contextlib.nullcontext()

    async def _on_revoked(self, partitions: Any, *, lost: bool) -> None:
        sub = self._subscription
        if sub is None or sub.on_revoke is None or not partitions or self._closed:
            return  # close() leaves the group without a last commit: commit before close
        revoked = sorted(TopicPartition(tp.topic, tp.partition) for tp in partitions)
        self._revoke_commits = {}
        self._listener_thread = threading.current_thread()
        try:
            sub.on_revoke(revoked)
        except BaseException as exc:
            self._listener_error = exc
            raise
        finally:
            self._listener_thread = None
        commits, self._revoke_commits = self._revoke_commits, {}
        if commits and not lost:
            # Still a member of the old generation here: commit before giving them up.
            coordinator = self._consumer._coordinator
            await coordinator._commit_offsets_sync_async(_kafka_offsets(commits))

    def poll(self, max_records: int = 500, timeout: float = 1.0) -> list[Message]:
        consumer = self._check_consumer("poll")
        try:
            with self._waiting("poll"):
                batches = consumer.poll(timeout_ms=int(timeout * 1000), max_records=max_records)
                self._finish_lost_join(consumer)
        except ClientStalled:
            return []  # a poll that timed out; the next one fetches again
        except Exception as exc:  # noqa: BLE001
            original, self._listener_error = self._listener_error, None
            if original is not None and isinstance(original, Exception):
                if isinstance(original, GrenswachtError):
                    raise original from exc
                raise map_kafka_error(original, "on_revoke failed") from original
            raise map_kafka_error(exc, "poll failed") from exc
        out: list[Message] = []
        for records in batches.values():
            for record in records:
                out.append(
                    Message(
                        record.topic,
                        record.partition,
                        record.offset,
                        record.key,
                        record.value if record.value is not None else b"",
                        tuple((name, value or b"") for name, value in record.headers or ()),
                        int(record.timestamp or 0),
                    )
                )
        return out

    # kafka-python 3.0.12 finishes a rebalance (takes the new assignment, turns the heartbeat
    # back on) only in the poll that is waiting when its join task completes, and only while
    # need_rejoin() still holds. A rejoin caused by new metadata or a new subscription stops
    # "needing" as soon as the join request is built or the leader has assigned, so a join
    # that outlives the poll waiting for it is never finished: the member keeps no new
    # partition and no heartbeat, and polls nothing for good. The fault tests met it under
    # load (the IO loop spent 14 s decoding one large fetch while the join was under way).
    def _finish_lost_join(self, consumer: Any) -> None:
        """After a poll: finish a join that completed with nobody waiting for it, the way
        kafka-python's join loop would have (on its IO thread, so never twice)."""
        coordinator = consumer._coordinator
        task = coordinator._join_task
        if task is None or not task.is_done or coordinator.state is not MemberState.REBALANCING:
            return  # the usual case, read without a round trip to the IO thread

        async def finish() -> bool:
            if not (coordinator._join_task is task and coordinator.rejoining
                    and coordinator.state is MemberState.REBALANCING
                    and not coordinator.need_rejoin()):
                return False  # finished meanwhile, or the next poll joins anyway
            coordinator._join_task = None
            if task.exception is not None:  # the join failed: its handlers reset what they must
                coordinator.request_rejoin()
                return True
            with coordinator._lock:
                coordinator.rejoining = False
                coordinator.rejoin_needed = False
                coordinator.state = MemberState.STABLE
                coordinator._enable_heartbeat()
            generation = coordinator._generation
            await coordinator._on_join_complete_async(
                generation.generation_id, generation.member_id, generation.protocol, task.value)
            return True

        if consumer._net.run(finish):
            self.lost_joins += 1
            log.warning("kafka-python left the rebalance of group %s half done (a join that "
                        "outlived the poll waiting for it); finished it", coordinator.group_id)

    def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        consumer = self._check_consumer("commit")
        if not offsets:
            return
        if self._listener_thread is threading.current_thread():
            for tp, offset in offsets.items():
                self._revoke_commits[tp] = max(offset, self._revoke_commits.get(tp, 0))
            return
        try:
            with self._waiting("commit"):
                consumer.commit(_kafka_offsets(offsets))
        except Exception as exc:  # noqa: BLE001
            raise map_kafka_error(exc, "commit failed") from exc

    def seek_to_committed(self) -> None:
        consumer = self._check_consumer("seek_to_committed")
        try:
            with self._waiting("seek to committed offsets"):
                for tp in consumer.assignment():
                    offset = consumer.committed(tp)
                    if offset is None:
                        consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, offset)
        except Exception as exc:  # noqa: BLE001
            raise map_kafka_error(exc, "seek to committed offsets failed") from exc

    def lag(self) -> dict[TopicPartition, int]:
        """Highwater (from the last fetch) minus position, per assigned partition."""
        consumer = self._consumer
        if consumer is None or self._closed:
            return {}
        out: dict[TopicPartition, int] = {}
        try:
            with self._waiting("lag"):
                for tp in consumer.assignment():
                    high = consumer.highwater(tp)
                    position = consumer.position(tp, timeout_ms=100) if high is not None else None
                    if high is not None and position is not None:
                        out[TopicPartition(tp.topic, tp.partition)] = max(0, high - position)
        except Exception:  # noqa: BLE001 - a metric must never break consumption
            return {}
        return out

    def assignment(self) -> list[TopicPartition]:
        """The partitions this member holds now."""
        consumer = self._check_consumer("assignment")
        return sorted(TopicPartition(tp.topic, tp.partition) for tp in consumer.assignment())

    # -- lifecycle ------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        error: BaseException | None = None
        if self._producer is not None:
            try:
                self._producer.flush(timeout=self.settings.delivery_timeout_ms / 1000)
            except Exception as exc:  # noqa: BLE001
                error = exc
            if self._failures and error is None:
                error = self._failures[0]
        self._close_quietly()
        if error is not None:
            raise map_kafka_error(error, "messages were not delivered before close") from error

    def _close_quietly(self) -> None:
        consumer, self._consumer = self._consumer, None
        producer, self._producer = self._producer, None
        if consumer is not None:
            try:
                with self._waiting("close"):
                    consumer.close(autocommit=False, timeout_ms=5000)
            except Exception:  # noqa: BLE001, S110 - leaving the group is best effort
                pass
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.close()
        if producer is not None:
            try:
                producer.close(timeout=5)
            except Exception:  # noqa: BLE001, S110
                pass

    def _check_open(self, what: str) -> None:
        if self._closed:
            raise BusClosed(f"{what} on a closed bus")

    def _check_consumer(self, what: str) -> Any:
        self._check_open(what)
        if self._consumer is None:
            raise BusError(f"{what} before subscribe")
        return self._consumer


def _kafka_offsets(offsets: Mapping[TopicPartition, int]) -> dict[Any, Any]:
    return {
        KafkaTopicPartition(tp.topic, tp.partition): OffsetAndMetadata(offset, "", -1)
        for tp, offset in offsets.items()
    }


def _ask(url: str, settings: KafkaSettings | None, factory: Any, what: str,
         question: Callable[[Any], Any], **config: Any) -> Any:
    """One question to the cluster through a short-lived kafka-python client (admin or
    consumer), closed afterwards; a failure is a BusError saying ``what`` failed."""
    servers = parse_kafka_url(url)
    bus = KafkaBus(servers, settings or KafkaSettings())
    bus._check_reachable()
    try:
        client = _construct(factory, bootstrap_servers=servers, **config,
                            **bus.settings.client_options())
        watch = _StallWatch(bus.settings.client_stall_timeout_ms / 1000,
                            lambda: getattr(client, "_net", None), lambda: False)
        try:
            with watch.call(what):
                return question(client)
        finally:
            with watch.call(f"{what} (closing)"):
                client.close()
            watch.close()
    except Exception as exc:  # noqa: BLE001
        raise map_kafka_error(exc, what) from exc


def committed_offsets(
    url: str, group: str, *, settings: KafkaSettings | None = None
) -> dict[TopicPartition, int]:
    """The offsets ``group`` has committed (for status displays, lag and tests)."""
    answer = _ask(url, settings, KafkaAdminClient, f"cannot read the offsets of group {group}",
                  lambda admin: admin.list_group_offsets({group: None}).get(group, {}))
    return {
        TopicPartition(tp.topic, tp.partition): int(meta.offset)
        for tp, meta in answer.items()
        if meta.offset is not None and meta.offset >= 0
    }


def end_offsets(
    url: str, topic: str, *, settings: KafkaSettings | None = None
) -> dict[TopicPartition, int]:
    """The log end offset of every partition of ``topic`` (what a drained group has
    committed: for lag displays and tests)."""

    def ask(consumer: Any) -> Any:
        partitions = [KafkaTopicPartition(topic, p)
                      for p in sorted(consumer.partitions_for_topic(topic) or ())]
        return consumer.end_offsets(partitions) if partitions else {}

    answer = _ask(url, settings, KafkaConsumer, f"cannot read the end offsets of {topic}",
                  ask, enable_auto_commit=False)
    return {TopicPartition(tp.topic, tp.partition): int(offset)
            for tp, offset in answer.items()}
