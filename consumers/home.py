"""Home vantage points and the ``[verdicts]`` settings section (``docs/verdicts.md``).

An application's verdict is computed from the municipality's **own** vantage points: the
self-hosted ones (``include_self_hosted``) and the RIPE Atlas probes located in one of
``home_countries`` (probe metadata, else a geo lookup of the probe's public address:
:class:`consumers.enrich.vantage.VantageRegistry`). Every other vantage point is a
*reference*: its RTTs prove anycast and bound where hops are, but its paths do not make the
verdict. Each path verdict row records its home set (``''`` = reference):

* ``self`` for a self-hosted vantage point (``vp:<name>``);
* the lower-case country code (``nl``) for a RIPE Atlas probe in a home country.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, field_validator

if TYPE_CHECKING:  # the settings module stays light: grenswacht/settings.py imports it
    from consumers.enrich.vantage import Vantage

SELF_HOSTED_SET = "self"
EVERY_COUNTRY = "*"


class VerdictSettings(BaseModel):
    home_countries: list[str] = Field(
        default_factory=lambda: ["NL"],
        description="RIPE Atlas probes located in these countries (ISO codes; \"*\" = every "
        "located probe) are home vantage points: their paths make the application verdict.",
    )
    include_self_hosted: bool = Field(
        True, description="Self-hosted vantage points are home vantage points.")
    period_s: float = Field(
        24 * 3600.0, gt=0,
        description="The current state of an application covers its home paths of this long, "
        "ending at its latest home measurement (not at the wall clock).",
    )
    outlier_max_paths: int = Field(
        1, ge=0,
        description="A class seen on at most this many home paths, all of low confidence, is "
        "an outlier: counted in the shares, shown, but it does not set the verdict while "
        "better-supported classes exist (0 = every path counts).",
    )

    @field_validator("home_countries")
    @classmethod
    def _upper(cls, value: list[str]) -> list[str]:
        out = []
        for code in value:
            code = code.strip().upper()
            if code != EVERY_COUNTRY and (len(code) != 2 or not code.isalpha()):
                raise ValueError(f"{code!r} is not an ISO country code (or \"*\")")
            out.append(code)
        return out


def home_set(vantage: Vantage | None, vantage_point: str, settings: VerdictSettings) -> str:
    """The home set of a path's vantage point, ``''`` for a reference vantage point.

    ``vantage_point`` is the self-hosted name (``gw_vp``), ``''`` for RIPE Atlas probes."""
    if vantage_point:
        return SELF_HOSTED_SET if settings.include_self_hosted else ""
    if vantage is None or not vantage.country:
        return ""
    if EVERY_COUNTRY in settings.home_countries or vantage.country in settings.home_countries:
        return vantage.country.lower()
    return ""
