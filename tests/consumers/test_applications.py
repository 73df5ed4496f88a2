"""The application verdict's rules on their own (shares, outliers, load-balanced branches,
the period); the same rules on real data are in test_home_verdicts.py."""

from __future__ import annotations

import pytest

from consumers.applications import Branch, HomePath, classify_application, municipality_shares
from consumers.enrich.vantage import Vantage
from consumers.home import SELF_HOSTED_SET, VerdictSettings, home_set

DAY = 86400.0


def path(verdict: str, confidence: str = "medium", t: int = 1000, vp: str = "atlas:1",
         why: str = "", rtt: float | None = None) -> HomePath:
    return HomePath(verdict, confidence, vp, "nl", "192.0.2.1", t, why=why or verdict,
                    rtt_ms=rtt)


def test_shares_and_the_most_serious_established_class() -> None:
    paths = [path("eu_hosted_eu_operated", t=i) for i in range(1, 7)]
    paths += [path("routed_via_us", "high", t=7, vp="atlas:2", why="via hop 7")]
    paths += [path("unknown", "none", t=8)]
    app = classify_application("TOPdesk", paths, period_s=DAY)
    assert app.verdict == app.worst_branch == "routed_via_us"
    assert app.confidence == "high" and app.why.startswith("via hop 7")
    assert app.shares == {"routed_via_us": 0.125, "eu_hosted_eu_operated": 0.75,
                          "unknown": 0.125}
    assert app.paths == 8 and app.vantage_points == ("atlas:1", "atlas:2")
    assert app.period_end.timestamp() == 8 and app.home_sets == ("nl",)


def test_a_single_low_confidence_outlier_is_shown_but_not_the_verdict() -> None:
    paths = [path("us_operated_in_eu", t=i) for i in range(1, 10)]
    paths.append(path("hosted_in_us", "low", t=10))  # a US claim physics could not check
    app = classify_application("Wikipedia", paths, period_s=DAY)
    assert app.verdict == "us_operated_in_eu" and app.outliers == ("hosted_in_us",)
    assert app.worst_branch == "hosted_in_us" and app.shares["hosted_in_us"] == 0.1
    assert any("outlier, not the verdict" in r for r in app.reasons)
    # two such paths are not an outlier any more; neither is a medium-confidence one
    twice = paths + [path("hosted_in_us", "low", t=11)]
    assert classify_application("Wikipedia", twice, period_s=DAY).verdict == "hosted_in_us"
    assert classify_application("Wikipedia", paths, period_s=DAY,
                                outlier_max_paths=0).verdict == "hosted_in_us"
    # alone it is what is known (low confidence)
    alone = classify_application("x", [path("hosted_in_us", "low")], period_s=DAY)
    assert (alone.verdict, alone.confidence) == ("hosted_in_us", "low")


def test_a_load_balanced_branch_through_the_us_counts() -> None:
    paths = [path("eu_hosted_eu_operated", t=i) for i in range(1, 5)]
    branch = Branch("192.0.2.1", ("atlas:1",), "high", "per-flow load balancer at 198.51.100.1"
                    "; a branch crosses the US")
    app = classify_application("Zivver", paths, period_s=DAY, branches=[branch])
    assert app.verdict == app.worst_branch == "routed_via_us"
    assert app.shares == {"eu_hosted_eu_operated": 1.0}  # the shares are the paths'
    assert "load-balanced branch" in app.why and app.confidence == "high"
    weak = Branch("192.0.2.1", ("atlas:1",), "low", "one trace only")
    shown = classify_application("Zivver", paths, period_s=DAY, branches=[weak])
    assert shown.verdict == "eu_hosted_eu_operated" and shown.worst_branch == "routed_via_us"


def test_unknown_only_when_nothing_is_placed_and_the_period_ends_at_the_latest_path() -> None:
    app = classify_application("x", [path("unknown", "none", t=t) for t in (5, 9)],
                               period_s=DAY)
    assert (app.verdict, app.confidence) == ("unknown", "none")
    old = path("hosted_in_us", "high", t=1)
    recent = [path("eu_hosted_eu_operated", t=int(DAY) + 10)]
    assert classify_application("x", [old, *recent], period_s=DAY).verdict == (
        "eu_hosted_eu_operated")  # more than a period before the latest: not current
    with pytest.raises(ValueError):
        classify_application("x", [], period_s=DAY)


def test_municipality_shares_are_over_applications() -> None:
    rows = [(("Utrecht",), "us_operated_in_eu"), (("Utrecht", "Zwolle"), "hosted_in_us"),
            (("Utrecht",), "anycast")]  # a class of older stores reads as unknown
    assert municipality_shares(rows) == {
        "Utrecht": {"hosted_in_us": 0.3333, "us_operated_in_eu": 0.3333, "unknown": 0.3333},
        "Zwolle": {"hosted_in_us": 1.0}}


def test_home_sets() -> None:
    nl = Vantage("atlas:1", 52.0, 5.0, 10.0, "NL", "RIPE Atlas probe metadata", "high")
    us = Vantage("atlas:2", 40.0, -74.0, 10.0, "US", "RIPE Atlas probe metadata", "high")
    default = VerdictSettings()
    assert (home_set(nl, "", default), home_set(us, "", default)) == ("nl", "")
    assert home_set(None, "vp-zwolle-1", default) == SELF_HOSTED_SET
    assert home_set(None, "vp-zwolle-1", VerdictSettings(include_self_hosted=False)) == ""
    assert home_set(us, "", VerdictSettings(home_countries=["us"])) == "us"
    assert home_set(us, "", VerdictSettings(home_countries=["*"])) == "us"
    assert home_set(None, "", VerdictSettings(home_countries=["*"])) == ""
    with pytest.raises(ValueError):
        VerdictSettings(home_countries=["Netherlands"])
