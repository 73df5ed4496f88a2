"""The words inside a path picture, in English and Dutch (the pictures are read by
municipal staff and councils; the UI passes its language)."""

from __future__ import annotations

from collections.abc import Mapping

from consumers.verdicts import FORWARD_ONLY_NOTE

LANGUAGES = ("en", "nl")

_EN = {
    "forward_only": FORWARD_ONLY_NOTE,
    "drawn": "Drawn: {drawn} nodes, condensed from {nodes} in the path graph (access hops, "
             "silent runs, chains and destination addresses folded).",
    "left_out": "Not drawn, to stay readable: {vantages} vantage points and {nodes} nodes "
                "on less-used links (the most-used paths are drawn first; see the hop "
                "table or the GraphML export for all).",
    "hidden_next": "+{n} more next hops ({traces})",
    "hidden_next_one": "+1 more next hop ({traces})",
    "balancer": "load balancer: {n} next hops",
    "branches_meet": "branches meet",
    "vantage": "vantage point · {country}",
    "access": "+{n} access hops",
    "access_one": "+1 access hop",
    "silent": "{n} silent hops",
    "silent_one": "1 silent hop",
    "after": "after {address}",
    "chain": "{n} hops, one operator",
    "chain_unknown": "{n} hops",
    "destinations": "{n} destination addresses",
    "destination": "destination",
    "cloud_act": "US law (CLOUD Act)",
    "legend_fill": "Physical country:",
    "eu": "other EU/EEA",
    "elsewhere": "elsewhere",
    "unknown": "unknown",
    "legend_marks": "Marks:",
    "mark_us": "thick dark-red border: physically in the US",
    "mark_law": "double border: US law (CLOUD Act)",
    "mark_balancer": "hexagon, blue links: load balancer",
    "mark_silent": "dashed: no reply",
    "mark_width": "line width: traces per link (max {n})",
    "traces": "{n} traces",
    "traces_one": "1 trace",
}

_NL = {
    "forward_only": "Alleen heenpaden: van het meetpunt naar de applicatie. Het terugpad "
                    "is niet gemeten en kan anders lopen.",
    "drawn": "Getekend: {drawn} knopen, samengevat uit {nodes} in de padgraaf "
             "(toegangshops, stille hops, ketens en bestemmingsadressen samengevoegd).",
    "left_out": "Niet getekend, voor de leesbaarheid: {vantages} meetpunten en {nodes} "
                "knopen op minder gebruikte verbindingen (de meest gebruikte paden eerst; "
                "de hoptabel of de GraphML-export toont alles).",
    "hidden_next": "+{n} volgende hops ({traces})",
    "hidden_next_one": "+1 volgende hop ({traces})",
    "balancer": "load balancer: {n} volgende hops",
    "branches_meet": "takken komen samen",
    "vantage": "meetpunt · {country}",
    "access": "+{n} toegangshops",
    "access_one": "+1 toegangshop",
    "silent": "{n} stille hops",
    "silent_one": "1 stille hop",
    "after": "na {address}",
    "chain": "{n} hops, één operator",
    "chain_unknown": "{n} hops",
    "destinations": "{n} bestemmingsadressen",
    "destination": "bestemming",
    "cloud_act": "Amerikaans recht (CLOUD Act)",
    "legend_fill": "Fysiek land:",
    "eu": "overig EU/EER",
    "elsewhere": "elders",
    "unknown": "onbekend",
    "legend_marks": "Markeringen:",
    "mark_us": "dikke donkerrode rand: fysiek in de VS",
    "mark_law": "dubbele rand: Amerikaans recht (CLOUD Act)",
    "mark_balancer": "zeshoek, blauwe lijnen: load balancer",
    "mark_silent": "gestreept: geen antwoord",
    "mark_width": "lijndikte: traceroutes per verbinding (max {n})",
    "traces": "{n} traceroutes",
    "traces_one": "1 traceroute",
}

_TEXTS = {"en": _EN, "nl": _NL}


def text(language: str) -> Mapping[str, str]:
    """The strings of ``language`` ('en' or 'nl'); anything else is English."""
    return _TEXTS.get(language, _EN)
