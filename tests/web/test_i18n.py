"""The Dutch catalog is complete and current: every string the templates and the web code
mark is in messages.pot and translated in nl (same placeholders), and it compiles."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from babel.messages.pofile import read_po

from grenswacht.web.i18n import LOCALE_DIR, catalog_path, translations

ROOT = Path(__file__).resolve().parent.parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _ids(path: Path) -> set[object]:
    with path.open("rb") as handle:
        return {m.id for m in read_po(handle) if m.id}


def test_the_template_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "messages.pot"
    subprocess.run([str(Path(sys.executable).parent / "pybabel"), "extract", "-F",
                    "grenswacht/web/babel.cfg", "-k", "N_", "--no-location", "--sort-output",
                    "--omit-header", "-w", "100", "-o", str(fresh), "."],
                   cwd=ROOT, check=True, capture_output=True, timeout=300)
    assert _ids(fresh) == _ids(LOCALE_DIR / "messages.pot"), "run `make translations`"


def test_dutch_is_complete_with_the_same_placeholders() -> None:
    with catalog_path("nl").open("rb") as handle:
        catalog = read_po(handle)
    assert {m.id for m in catalog if m.id} == _ids(LOCALE_DIR / "messages.pot")
    for message in catalog:
        if not message.id:
            continue
        assert not message.fuzzy, message.id
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        assert all(strings), f"untranslated: {ids[0]}"
        wanted = set(PLACEHOLDER.findall(" ".join(ids)))
        for string in strings:
            assert set(PLACEHOLDER.findall(string)) == wanted, ids[0]


def test_catalog_compiles_at_run_time() -> None:
    dutch = translations("nl")
    assert dutch.gettext("Overview") == "Overzicht"
    assert dutch.ngettext("%(num)s path passes through the United States on the way",
                          "%(num)s paths pass through the United States on the way", 2
                          ) % {"num": 2} == "2 paden lopen onderweg door de Verenigde Staten"
    assert translations("en").gettext("Overview") == "Overview"
