"""Customer state in a changelog-backed Faust table, written a batch at a time.

Batch agents have no "current event", so they cannot use ``table[key] = v``.
They read and write ``table.data`` and send one changelog record per changed
customer per batch, which is what Faust replays into ``table.data`` when a
worker restarts or a partition moves.
"""

from __future__ import annotations

import asyncio
import zlib
from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Any, Protocol

import orjson
import zstandard

from alerts.customer import CustomerState
from alerts.windows import Dim, PartitionWindows, WindowSpec
from stream.kafka.partitioning import partition_for
from stream.worker.pacing import Pacer


def compact(value: bytes) -> bytes:
    """An exact-size copy of ``value`` for long-lived storage.

    orjson 3.13 returns bytes backed by a 4 KiB allocation however short the
    document; kept in a table that costs ~4 KiB per customer (measured: 945 MB
    for 200k customers, against 171 MB for the same state read back from Kafka).
    """
    return memoryview(value).tobytes()


class Outbox(Protocol):
    """Where a delivery stage collects its records (``stream.worker.delivery.Records``)."""

    def add(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None: ...

    async def wait(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Wait until the broker has acknowledged every one of ``futures``."""

    async def send(self) -> list[asyncio.Future[Any]]: ...

    async def deliver(self) -> int: ...


class MemoryTable:
    """What the stores use of a Faust table, in this process only: its data and its changelog's name.

    For the bench's in-process measurements and for tests of the stores and agents.
    """

    def __init__(self, changelog: str = "customers-changelog") -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog_topic = _NamedTopic(changelog)


class _NamedTopic:
    def __init__(self, name: str) -> None:
        self.name = name

    def get_topic_name(self) -> str:
        return self.name


class Changelog:
    """Writes a table's records in memory and queues them for its changelog (one per changed key).

    Faust's ``send_changelog`` goes through its buffered per-message path, which
    costs more than the rest of a batch; the memory store needs nothing else from it.
    """

    def __init__(self, table: Any, topic: str | None = None) -> None:
        self.table = table
        self._topic = topic

    @property
    def topic(self) -> str:
        """The table's changelog topic."""
        if self._topic is None:
            self._topic = str(self.table.changelog_topic.get_topic_name())
        return self._topic

    def put(self, out: Outbox, partition: int, key: bytes, value: bytes | None) -> None:
        """Set (or with None delete) ``key`` in the table and queue its changelog record."""
        if value is None:
            self.table.data.pop(key, None)
        else:
            value = compact(value)
            self.table.data[key] = value
        out.add(self.topic, partition, key, value)


# Preset dictionary for customer documents: the structure and the words most documents
# repeat. Part of the stored format (format bytes 1 to 4): never change it; add a new
# format byte with a new dictionary instead. Most common text last (cheapest to refer to).
_ZDICT_V1 = (
    b'"in_person","social","sms","web","phone","email","chat","platinum","gold","silver",'
    b'"detractor","high_effort","low_csat",[null,null,null],"la":{"detractor":,"h":[["{\\"'
    b'"response_id\\":\\"",,"a":[["r-",false,[],[["overall","all"],["team","],["channel","'
    b'],["agent","],["category","]],7,"tk-",[null,null,null]],[]]],0,false,0,null]]'
    b',null,null,null,1795341600.0,1795341600.0,0,false,0,null]],"e":["ev-","se-'
    b'{"v":1,"tier":"standard","av":1200.0,"pa":1795341600.0,"t":[["t-","open","billing",null,"chat",'
)


class StateCodec:
    """Customer documents as stored: zstd with a preset dictionary, about a third of their JSON.

    A million customers live in memory as these values (and in the changelog). The
    first byte names the format: 3 (no held surveys) or 4 (holds surveys: found
    without decoding after a restart), a magic-less zstd frame compressed with
    ``_ZDICT_V1`` as a raw-content dictionary. Values written earlier are still read:
    1 and 2 (raw deflate with the same dictionary) and plain JSON (``{``).

    zstd replaced deflate because a customer is encoded on every batch that touches
    it: ~2 µs instead of ~10 (zlib sets up and tears down its state per document), and
    a quarter fewer bytes (deflate's small window reached only part of the dictionary).
    """

    PLAIN = 3
    HELD = 4
    _DEFLATE = (1, 2)  # the earlier format: raw deflate, window 2**9, the same dictionary

    def __init__(self) -> None:
        zdict = zstandard.ZstdCompressionDict(_ZDICT_V1, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
        params = zstandard.ZstdCompressionParameters.from_level(
            1,
            format=zstandard.FORMAT_ZSTD1_MAGICLESS,
            write_content_size=True,  # decompress() sizes its output from the frame
            write_checksum=False,  # Kafka's record batches carry a CRC already
            write_dict_id=False,  # the format byte names the dictionary
        )
        self._compress = zstandard.ZstdCompressor(compression_params=params, dict_data=zdict).compress
        self._decompress = zstandard.ZstdDecompressor(
            dict_data=zdict, format=zstandard.FORMAT_ZSTD1_MAGICLESS
        ).decompress
        self._inflate = zlib.decompressobj(-9, _ZDICT_V1)

    def encode(self, doc: bytes, held: bool) -> bytes:
        """The stored value of an orjson document."""
        return (b"\x04" if held else b"\x03") + self._compress(doc)

    def decode(self, value: bytes) -> bytes:
        """The orjson document of a stored value."""
        head = value[0]
        try:
            if head == self.PLAIN or head == self.HELD:
                return self._decompress(memoryview(value)[1:])
            if head == 0x7B:  # "{": a plain document
                return value
            if head in self._DEFLATE:
                d = self._inflate.copy()
                doc = d.decompress(memoryview(value)[1:])
                if not d.eof:
                    raise zlib.error("the deflate stream is cut short")
                return doc
        except (zstandard.ZstdError, zlib.error) as exc:
            raise ValueError(f"customer state in format {head} does not decode: {exc}") from None
        raise ValueError(f"customer state in an unknown format (first byte {head:#04x})")

    def holds_surveys(self, value: bytes) -> bool:
        """Whether a stored value has held surveys, without decoding it."""
        head = value[0]
        return head == self.HELD or head == 2 or (head == 0x7B and b'"h":[[' in value)


class CustomerStore:
    """Load and save ``CustomerState`` in a Faust table keyed by customer id (see ``StateCodec``)."""

    def __init__(self, table: Any, changelog: Changelog | None = None) -> None:
        self.table = table
        self.changelog = changelog or Changelog(table)
        self.codec = StateCodec()

    def load(self, customer_id: str) -> CustomerState | None:
        """The stored state of a customer, or None for a customer never seen."""
        raw = self.table.data.get(customer_id.encode("utf-8"))
        if raw is None:
            return None
        return CustomerState.from_doc(orjson.loads(self.codec.decode(raw)))

    def save(self, dirty: dict[str, tuple[int, CustomerState]], out: Outbox) -> None:
        """Write changed customers to the table and queue their changelog records in ``out``."""
        put = self.changelog.put
        dumps, encode = orjson.dumps, self.codec.encode
        for customer_id, (partition, state) in dirty.items():
            put(out, partition, customer_id.encode("utf-8"), encode(dumps(state.to_doc()), bool(state.held)))

    def __len__(self) -> int:
        return len(self.table.data)

    def with_held(self, owner: Callable[[str], int]) -> dict[str, int]:
        """Customers holding surveys that wait for a ticket (a scan, once after a start)."""
        found = {}
        for key, raw in list(self.table.data.items()):
            if self.codec.holds_surveys(raw):
                cid = key.decode("utf-8")
                found[cid] = owner(cid)
        return found


_NONE: dict[Any, Any] = {}
SEP = "\x1f"  # unit separator: cannot clash with team or channel names
Bucket = tuple[Dim, str, int]
_SEP = SEP.encode()


def by_key(partitions: int) -> Callable[[bytes], int]:
    """The changelog partition of a table keyed like the inputs (customer ids, alert ids)."""
    return lambda key: partition_for(key, partitions)


def window_key_partition(key: bytes) -> int:
    """The changelog partition of a ``WindowStore`` key: ``<partition>`` or ``<partition>␟...``."""
    return int(key.split(_SEP, 1)[0])


def merged_key_partition(partitions: int) -> Callable[[bytes], int]:
    """The changelog partition of a merged-window key ``dimension␟key␟partition[␟window␟start]``.

    The merge writes each key on the partition of the partial it came from, which
    the partials' key ``dimension␟key`` placed with Kafka's default partitioner.
    """

    def partition_of(key: bytes) -> int:
        dimension, name, _ = key.split(_SEP, 2)
        return partition_for(dimension + _SEP + name, partitions)

    return partition_of


def bucket_key(prefix: str, b: Bucket) -> bytes:
    """``<prefix>␟<dimension>␟<key>␟<window>␟<bucket start>``."""
    (dim, key), window, start = b
    return f"{prefix}{SEP}{dim}{SEP}{key}{SEP}{window}{SEP}{start}".encode()


def parse_bucket_key(rest: str) -> Bucket:
    """Inverse of ``bucket_key`` without its prefix."""
    dim, key, window, start = rest.split(SEP)
    return (dim, key), window, int(start)


def _load_record(pw: PartitionWindows, bucket: bytes | None, raw: bytes) -> None:
    """One ``WindowStore`` record into ``pw``: its watermark document (``bucket`` None) or a bucket."""
    if bucket is None:
        doc = orjson.loads(raw)
        pw.watermark = float(doc["wm"])
        pw.applied = {k: int(v) for k, v in doc.get("applied", {}).items()}
    else:
        dim, window, start = parse_bucket_key(bucket.decode())
        pw.load_bucket(dim, window, start, orjson.loads(raw))


class WindowStore:
    """Each partition's window buckets in a Faust table, cached as ``PartitionWindows``.

    One record per bucket (``<partition>␟<dimension>␟<key>␟<window>␟<start>``, a
    tombstone when it expires) and one per partition for its watermark and the input
    offsets its buckets hold (``<partition>``); the changelog partition is the input
    partition, so buckets move and recover together with the customers they came from.
    """

    def __init__(
        self, table: Any, specs: list[WindowSpec], grace: float, changelog: Changelog | None = None
    ) -> None:
        self.table = table
        self.specs = specs
        self.grace = grace
        self.changelog = changelog or Changelog(table)
        self.cache: dict[int, PartitionWindows] = {}
        # partition -> (dimension, key) -> buckets changed since they were last published
        self.unpublished: dict[int, dict[Dim, set[tuple[str, int]]]] = {}

    def get(self, partition: int) -> PartitionWindows:
        """The partition's windows, read from the table on first use after an assignment."""
        pw = self.cache.get(partition)
        if pw is None:
            pw = self._install(partition, self._load(partition))
        return pw

    def _install(self, partition: int, pw: PartitionWindows) -> PartitionWindows:
        self.cache[partition] = pw
        # republish everything once
        self.unpublished[partition] = {
            dim: {(name, b) for name, bs in ws.items() for b in bs} for dim, ws in pw.partials.items()
        }
        return pw

    def _load(self, partition: int) -> PartitionWindows:
        pw = PartitionWindows(self.specs, self.grace)
        mark = f"{partition}".encode()
        prefix = mark + _SEP
        for key, raw in list(self.table.data.items()):
            if key == mark:
                _load_record(pw, None, raw)
            elif key.startswith(prefix):
                _load_record(pw, key[len(prefix) :], raw)
        return pw

    async def warm(
        self, partitions: Collection[int], current: Callable[[], bool], pacer: Pacer | None = None
    ) -> list[int]:
        """Load the windows of ``partitions`` not cached yet, in one pass a slice at a time.

        Otherwise the first batch of each partition a worker gets (after a start or a
        rebalance) loads it, a scan of the whole table, while that batch's alerts wait:
        a batch of 26 surveys took 193 ms in a trace after a takeover. A partition that a
        batch loaded meanwhile keeps that load (only a loaded partition is written). Stops
        at the first pause after ``current()`` turned false, installing nothing. Returns
        the partitions it installed.
        """
        pacer = pacer or Pacer()
        loading = {p: PartitionWindows(self.specs, self.grace) for p in partitions if p not in self.cache}
        if not loading or not current():
            return []
        data = self.table.data
        for key in list(data):
            head, sep, rest = key.partition(_SEP)
            pw = loading.get(int(head))
            raw = data.get(key) if pw is not None else None
            if pw is not None and raw is not None:
                _load_record(pw, rest if sep else None, raw)
            if await pacer.pause() and not current():
                return []
        installed = [p for p in loading if p not in self.cache]
        for p in installed:
            self._install(p, loading[p])
        return installed

    def save(self, partitions: set[int], out: Outbox) -> None:
        """Expire the changed buckets of ``partitions``, write them and queue their records in ``out``."""
        put, dumps = self.changelog.put, orjson.dumps
        for p in partitions:
            pw = self.cache[p]
            pw.expire()  # also applies what the batch summed: ``partials`` is current below
            prefix = str(p)
            partials = pw.partials
            unpublished = self.unpublished.setdefault(p, {})
            for b in pw.dirty:
                dim, window, start = b
                stats = partials.get(dim, _NONE).get(window, _NONE).get(start)
                put(out, p, bucket_key(prefix, b), dumps(stats) if stats is not None else None)
                changed = unpublished.get(dim)
                if changed is None:
                    changed = unpublished[dim] = set()
                changed.add((window, start))
            pw.dirty.clear()
            put(out, p, prefix.encode(), orjson.dumps({"wm": pw.watermark, "applied": pw.applied}))

    def take_unpublished(self) -> Iterator[tuple[int, float, Dim, list[tuple[str, int, Any]]]]:
        """Buckets changed since the last call: ``(partition, watermark, dimension, buckets)``.

        Lazy, so the caller can pause between partials while batches go on: each
        partition's changes are taken when the iteration reaches it, and each partial
        is read when it is yielded (a bucket changed meanwhile is marked again and
        published next time too; partials replace, so that is harmless). A partition
        revoked meanwhile is not published.
        """
        for p in list(self.unpublished):
            pw = self.cache.get(p)
            changed = self.unpublished.pop(p, None)  # None: forgotten while an earlier one was read
            if pw is None or changed is None:
                continue
            for dim, buckets in changed.items():
                if self.cache.get(p) is not pw:
                    break
                yield (
                    p,
                    pw.watermark,
                    dim,
                    [(window, start, pw.bucket(dim, window, start)) for window, start in buckets],
                )

    def forget(self, partitions: set[int]) -> None:
        """Drop cached partitions (revoked: another worker may change them meanwhile)."""
        for p in partitions:
            self.cache.pop(p, None)
            self.unpublished.pop(p, None)
