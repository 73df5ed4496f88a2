"""The words and colours the UI and the report show for stored values: verdict classes,
finding kinds, criticality, coverage reasons (marked for translation, translated where
shown), and the segments of the share bars.

Colours of the classes follow the research's figures (from EU/green to US/red) and the
path pictures' fills (consumers/graph/draw.py: the US red, NL orange, EU blue); neighbouring
segments are separated by a white gap, and every bar has a text legend and a table beside
it, so colour is never the only carrier of meaning.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from grenswacht.web.data import NOT_MEASURED
from grenswacht.web.i18n import N_

CLASS_LABELS = {
    "eu_hosted_eu_operated": N_("EU-hosted & EU-operated"),
    "us_operated_in_eu": N_("US-operated in the EU"),
    "routed_via_us": N_("Routed via the US"),
    "hosted_in_us": N_("Hosted in the US"),
    "elsewhere": N_("Elsewhere"),
    "unknown": N_("Unknown"),
    "anycast": N_("Anycast"),
    NOT_MEASURED: N_("Not measured"),
}
CLASS_EXPLANATIONS = {
    "eu_hosted_eu_operated": N_("Physically in the EU/EEA and operated by a company under "
                                "EU/EEA law."),
    "us_operated_in_eu": N_("Physically in the EU/EEA, but operated by a company with a US "
                            "parent: US law (CLOUD Act) applies."),
    "routed_via_us": N_("The destination is outside the US, but at least one measured path "
                        "passes through the US."),
    "hosted_in_us": N_("The destination is physically in the United States."),
    "elsewhere": N_("Hosted or operated outside the EU/EEA and the US."),
    "unknown": N_("The measurements and sources cannot place it."),
    NOT_MEASURED: N_("No measured path towards it has been analysed yet."),
}
CLASS_COLOURS = {
    "eu_hosted_eu_operated": "#1b7837",
    "us_operated_in_eu": "#e08214",
    "routed_via_us": "#d6604d",
    "hosted_in_us": "#8b0000",
    "elsewhere": "#5e6b7a",
    "unknown": "#b8c2cc",
    "anycast": "#1f5fbf",
    NOT_MEASURED: "#ffffff",
}
BAR_ORDER = ("eu_hosted_eu_operated", "us_operated_in_eu", "routed_via_us", "hosted_in_us",
             "elsewhere", "unknown")
"""The research's order of the classes in its figures."""
AT_RISK = frozenset({"hosted_in_us", "routed_via_us", "us_operated_in_eu"})
"""Classes under US law or on US ground: listed first, pictured in the report."""
PICTURED = frozenset({"hosted_in_us", "routed_via_us"})

FINDING_LABELS = {
    "load_balancer": N_("Load balancer"),
    "anycast": N_("Anycast"),
    "us_transit": N_("US transit"),
    "route_change": N_("Route change"),
}
CRITICALITY_LABELS = {
    "critical": N_("critical"), "high": N_("high"), "normal": N_("normal"), "low": N_("low"),
}
COVERAGE_LABELS = {
    "no_results": N_("no measurement results for its hostnames yet (is a measurement "
                     "scheduled, is the RIPE Atlas key set?)"),
    "dns_only": N_("only DNS answers so far, no traceroute"),
    "not_analysed": N_("traceroutes stored, not analysed yet"),
    "not_home": N_("measured, but not from its home vantage points (the municipality's own "
                   "probes and the Dutch RIPE Atlas probes of its vantage sets)"),
}
CONFIDENCE_LABELS = {"high": N_("high"), "medium": N_("medium"), "low": N_("low"),
                     "none": N_("none")}


def class_label(verdict: str, gettext: Callable[[str], str]) -> str:
    return gettext(CLASS_LABELS.get(verdict, verdict))


@dataclass(frozen=True, slots=True)
class Segment:
    verdict: str
    share: float
    x: float
    """Left edge in percent of the bar."""
    colour: str


def class_segments(shares: Mapping[str, float]) -> list[Segment]:
    """The bar's segments in the classes' order (EU first, as the research draws them),
    positions in percent; empty classes left out."""
    order = [*BAR_ORDER, *sorted(set(shares) - set(BAR_ORDER))]
    total = sum(v for v in shares.values() if v > 0) or 1.0
    out: list[Segment] = []
    x = 0.0
    for verdict in order:
        share = shares.get(verdict, 0.0) / total
        if share <= 0:
            continue
        out.append(Segment(verdict, share, x * 100, CLASS_COLOURS.get(verdict, "#999999")))
        x += share
    return out
