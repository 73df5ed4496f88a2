"""The ``[analysis]`` settings section (used by ``grenswacht/settings.py``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class AnalysisSettings(BaseModel):
    window_s: int = Field(3600, ge=60, description="Length of one analysis window (seconds).")
    settle_s: float = Field(
        2.0, gt=0, description="A window is analysed once no result arrived for it for this "
        "long (at least twice ingest.flush_interval_s, so its rows are stored).")
    max_delay_s: float = Field(
        60.0, gt=0, description="A window that keeps receiving results is analysed at least "
        "this often (seconds after its first unanalysed result).")
    retry_initial_s: float = Field(
        5.0, gt=0, description="First wait before a failed window is analysed again.")
    retry_max_s: float = Field(
        600.0, gt=0, description="Longest wait between retries of a failing window.")
    group: str = Field("grenswacht-analysis", description="Consumer group on the results topic.")
    claims_in_clickhouse: bool | None = Field(
        None, description="Take the geo claims of a window's addresses from ClickHouse "
        "ip_trie dictionaries (consumers/claim_tables.py). Unset: on for the embedded engine; "
        "off on a ClickHouse server or cluster, where the dictionaries' table source would "
        "need a password in its DDL and every node the tables (docs/performance.md).")
