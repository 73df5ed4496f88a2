"""The application inventory: what to measure (``apps.toml``, or a CSV sheet) and from where.

``load_inventory(path)`` reads either format and returns a validated :class:`Inventory`.
Every problem is a :class:`~schemas.errors.ConfigError` naming the file, the line and the
field, e.g. ``apps.toml:14: application[2].hostnames[0]: 'topdesk..net' is not a valid
hostname``. The TOML layout is documented in ``docs/scheduler.md``; a CSV sheet holds only
applications (columns ``name, hostnames, municipalities, criticality, tags``; lists are
separated by ``;``) and uses the default vantage sets and measurement settings.
"""

from __future__ import annotations

import csv
import ipaddress
import re
import tomllib
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator

from schemas.errors import ConfigError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TAG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _hostname(value: str) -> str:
    name = value.strip().lower().rstrip(".")
    try:
        ipaddress.ip_address(name)
        return name
    except ValueError:
        pass
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid hostname")
    return name


def _tag(value: str) -> str:
    if not _TAG.match(value):
        raise ValueError(f"{value!r} is not a valid tag (lower-case letters, digits, - and _)")
    return value


Hostname = Annotated[str, AfterValidator(_hostname)]
Tag = Annotated[str, AfterValidator(_tag)]


class Criticality(StrEnum):
    low = "low"
    normal = "normal"
    high = "high"
    critical = "critical"

    @property
    def rank(self) -> int:
        return ("critical", "high", "normal", "low").index(self.value)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Application(_Strict):
    name: str = Field(min_length=1, max_length=200)
    hostnames: list[Hostname] = Field(min_length=1)
    municipalities: list[str] = Field(default_factory=list)
    criticality: Criticality = Criticality.normal
    tags: list[str] = Field(default_factory=list)
    vantage_sets: list[str] | None = Field(
        None, description="Vantage sets that measure this application (default: all)."
    )
    measure: bool = Field(
        True, description="False: the scheduler plans no measurement and no probe task for it; "
        "its verdicts come from results ingested otherwise (e.g. the bundled example results).")


class AtlasVantageSet(_Strict):
    """RIPE Atlas probes, chosen by the Atlas API's own source types."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["atlas"] = "atlas"
    purpose: Literal["measure", "reference"] = "measure"
    countries: list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]] = Field(default_factory=list)
    asns: list[Annotated[int, Field(ge=1, le=4_294_967_295)]] = Field(default_factory=list)
    prefixes: list[str] = Field(default_factory=list)
    areas: list[
        Literal["WW", "West", "North-Central", "South-Central", "North-East", "South-East"]
    ] = Field(default_factory=list)
    probe_ids: list[Annotated[int, Field(ge=1)]] = Field(default_factory=list)
    requested: int = Field(10, ge=1, le=1000, description="Probes per source.")
    anchors_only: bool = False
    tags_include: list[Tag] = Field(default_factory=list)
    tags_exclude: list[Tag] = Field(default_factory=list)

    @model_validator(mode="after")
    def _has_source(self) -> AtlasVantageSet:
        if not (self.countries or self.asns or self.prefixes or self.areas or self.probe_ids):
            raise ValueError("needs at least one of countries, asns, prefixes, areas, probe_ids")
        for prefix in self.prefixes:
            try:
                ipaddress.ip_network(prefix, strict=False)
            except ValueError:
                raise ValueError(f"prefix {prefix!r} is not an IP prefix") from None
        return self

    def sources(self, address_family: int) -> list[dict[str, Any]]:
        """Atlas ``probes`` entries (``AtlasSource`` arguments) for one address family."""
        include = [*self.tags_include, f"system-ipv{address_family}-works"]
        if self.anchors_only:
            include.append("system-anchor")
        tags: dict[str, list[str]] = {"include": sorted(set(include))}
        if self.tags_exclude:
            tags["exclude"] = sorted(set(self.tags_exclude))
        out: list[dict[str, Any]] = []
        pairs: list[tuple[str, Any, int]] = [
            *(("country", c, self.requested) for c in self.countries),
            *(("asn", a, self.requested) for a in self.asns),
            *(("prefix", p, self.requested) for p in self.prefixes),
            *(("area", a, self.requested) for a in self.areas),
        ]
        if self.probe_ids:
            ids = ",".join(str(i) for i in self.probe_ids)
            pairs.append(("probes", ids, len(self.probe_ids)))
        for kind, value, requested in pairs:
            out.append({"type": kind, "value": value, "requested": requested, "tags": tags})
        return out

    def probe_count(self) -> int:
        """Probes this set asks for (per address family): the basis of the credit figures."""
        sources = len(self.countries) + len(self.asns) + len(self.prefixes) + len(self.areas)
        return sources * self.requested + len(self.probe_ids)


class SelfHostedVantageSet(_Strict):
    """grenswacht's own probes, by name (measured through the probe-tasks topic)."""

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    kind: Literal["self"]
    probes: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]] = Field(
        min_length=1
    )


VantageSet = Annotated[AtlasVantageSet | SelfHostedVantageSet, Field(discriminator="kind")]


class SelfHostedMeasurements(_Strict):
    """How self-hosted vantage sets measure (``[measurements.self_hosted]``). Traceroutes and
    DNS follow ``interval_s`` per criticality; MDA runs at its own, slower cadence."""

    traceroute_protocols: list[Literal["udp", "icmp", "tcp"]] = Field(
        default=["udp"],
        description="Paris traceroute protocols (udp: rootless; icmp/tcp: scamper).",
    )
    mda: bool = Field(True, description="Run MDA (load-balancer discovery) per target.")
    mda_interval_s: int = Field(21600, ge=300, description="Seconds between MDA runs.")
    mda_confidence: float = Field(0.95, description="MDA confidence: 0.95 or 0.99.")
    dns: bool = Field(True, description="Resolve hostnames (A/AAAA, dns_query_types).")

    @model_validator(mode="after")
    def _confidence(self) -> SelfHostedMeasurements:
        if self.mda_confidence not in (0.95, 0.99):
            raise ValueError("mda_confidence must be 0.95 or 0.99")
        return self


class MeasurementSettings(_Strict):
    traceroute_protocols: list[Literal["ICMP", "TCP", "UDP"]] = Field(default=["ICMP", "TCP"])
    tcp_port: int = Field(443, ge=1, le=65535)
    address_families: list[Literal[4, 6]] = Field(default=[4, 6])
    dns_query_types: list[Literal["A", "AAAA"]] = Field(default=["A", "AAAA"])
    paris: int = Field(16, ge=0, le=64, description="Paris variations (rotating paris_id).")
    oneoff: bool = False
    interval_s: dict[Criticality, int] = Field(
        default_factory=lambda: {
            Criticality.critical: 1800,
            Criticality.high: 3600,
            Criticality.normal: 7200,
            Criticality.low: 21600,
        }
    )
    reference_interval_s: int = Field(21600, ge=60)
    self_hosted: SelfHostedMeasurements = Field(default_factory=SelfHostedMeasurements)

    @model_validator(mode="after")
    def _intervals(self) -> MeasurementSettings:
        for crit in Criticality:
            if crit not in self.interval_s:
                raise ValueError(f"interval_s.{crit.value} is missing")
            if self.interval_s[crit] < 60:
                raise ValueError(f"interval_s.{crit.value} must be at least 60 seconds")
        return self


def default_vantage_sets() -> list[AtlasVantageSet | SelfHostedVantageSet]:
    return [
        AtlasVantageSet(name="nl", countries=["NL"], requested=10),
        AtlasVantageSet(
            name="reference",
            purpose="reference",
            areas=["West", "North-Central", "South-Central", "North-East", "South-East"],
            requested=2,
        ),
    ]


class Inventory(_Strict):
    applications: list[Application] = Field(min_length=1)
    vantage_sets: list[VantageSet] = Field(default_factory=default_vantage_sets)
    measurements: MeasurementSettings = Field(
        default_factory=lambda: MeasurementSettings()
    )

    @model_validator(mode="after")
    def _consistent(self) -> Inventory:
        names = [a.name for a in self.applications]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"application names must be unique: {', '.join(dupes)}")
        sets = {v.name for v in self.vantage_sets}
        if len(sets) != len(self.vantage_sets):
            raise ValueError("vantage set names must be unique")
        for app in self.applications:
            for name in app.vantage_sets or ():
                if name not in sets:
                    raise ValueError(f"application {app.name!r}: unknown vantage set {name!r}")
        return self

    def vantage_set(self, name: str) -> AtlasVantageSet | SelfHostedVantageSet:
        return next(v for v in self.vantage_sets if v.name == name)


# -- loading -------------------------------------------------------------------------------

_TOML_TABLES = {"applications": "application", "vantage_sets": "vantage_set"}


def load_inventory(path: Path) -> Inventory:
    """Read and validate ``path`` (``.toml`` or ``.csv``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read inventory ({exc})") from None
    if path.suffix.lower() == ".csv":
        return _load_csv(path, text)
    return _load_toml(path, text)


def _load_toml(path: Path, text: str) -> Inventory:
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    data = {
        "applications": raw.pop("application", []),
        "vantage_sets": raw.pop("vantage_set", None),
        "measurements": raw.pop("measurements", None),
    }
    if raw:
        unknown = ", ".join(sorted(raw))
        raise ConfigError(
            f"{path}: unknown top-level key(s) {unknown}: "
            "use [[application]], [[vantage_set]] and [measurements]"
        )
    data = {k: v for k, v in data.items() if v is not None}
    try:
        return Inventory.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(path, text, exc)) from None


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    problems = []
    for error in exc.errors():
        loc = list(error["loc"])
        # drop the discriminator tag pydantic adds for tagged unions
        loc = [p for p in loc if p not in ("atlas", "self")]
        line = _toml_line(text, loc)
        field = _field_name(loc)
        message = error["msg"].removeprefix("Value error, ")
        where = f"{path}:{line}" if line else f"{path}"
        problems.append(f"{where}: {field}: {message}")
    return "invalid inventory:\n  " + "\n  ".join(problems)


def _field_name(loc: list[Any]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            name = _TOML_TABLES.get(str(part), str(part))
            out += f".{name}" if out else name
    return out or "inventory"


def _toml_line(text: str, loc: list[Any]) -> int | None:
    """Best effort: the line of the table (and key) that ``loc`` points into."""
    lines = text.splitlines()
    if len(loc) < 1:
        return None
    table = _TOML_TABLES.get(str(loc[0]), str(loc[0]))
    start = 0
    if len(loc) >= 2 and isinstance(loc[1], int):
        header = re.compile(rf"^\s*\[\[\s*{re.escape(table)}\s*\]\]")
        seen = -1
        for number, line in enumerate(lines):
            if header.match(line):
                seen += 1
                if seen == loc[1]:
                    start = number
                    break
        else:
            return None
        keys = loc[2:]
    else:
        header = re.compile(rf"^\s*\[\s*{re.escape(table)}\s*\]")
        found = next((n for n, line in enumerate(lines) if header.match(line)), None)
        if found is None:
            return None
        start, keys = found, loc[1:]
    key = next((str(k) for k in keys if isinstance(k, str)), None)
    if key is not None:
        pattern = re.compile(rf"^\s*{re.escape(key)}\s*=")
        for number in range(start + 1, len(lines)):
            if lines[number].lstrip().startswith("["):
                break
            if pattern.match(lines[number]):
                return number + 1
    return start + 1


CSV_COLUMNS = ("name", "hostnames", "municipalities", "criticality", "tags")


def _split(cell: str | None) -> list[str]:
    return [part.strip() for part in re.split(r"[;\n]", cell or "") if part.strip()]


def _load_csv(path: Path, text: str) -> Inventory:
    sample = text[:4096]
    try:
        dialect: Any = csv.Sniffer().sniff(sample, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.DictReader(text.splitlines(keepends=True), dialect=dialect)
    fields = [f.strip().lower() for f in reader.fieldnames or []]
    missing = [c for c in ("name", "hostnames") if c not in fields]
    if missing:
        raise ConfigError(
            f"{path}:1: missing column(s) {', '.join(missing)} (expected {', '.join(CSV_COLUMNS)})"
        )
    unknown = [c for c in fields if c not in CSV_COLUMNS]
    if unknown:
        raise ConfigError(f"{path}:1: unknown column(s) {', '.join(unknown)}")
    applications: list[Application] = []
    problems: list[str] = []
    for row in reader:
        line = reader.line_num
        cells = {k.strip().lower(): (v or "") for k, v in row.items() if k is not None}
        if not any(cells.values()):
            continue
        data: dict[str, Any] = {
            "name": cells.get("name", "").strip(),
            "hostnames": _split(cells.get("hostnames")),
            "municipalities": _split(cells.get("municipalities")),
            "tags": _split(cells.get("tags")),
        }
        if cells.get("criticality", "").strip():
            data["criticality"] = cells["criticality"].strip().lower()
        try:
            applications.append(Application.model_validate(data))
        except ValidationError as exc:
            for error in exc.errors():
                column = str(error["loc"][0]) if error["loc"] else "row"
                message = error["msg"].removeprefix("Value error, ")
                problems.append(f"{path}:{line}: {column}: {message}")
    if problems:
        raise ConfigError("invalid inventory:\n  " + "\n  ".join(problems))
    try:
        return Inventory(applications=applications)
    except ValidationError as exc:
        raise ConfigError(_describe(path, "", exc)) from None
