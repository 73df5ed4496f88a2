"""Dutch and English for the web UI and the council report: gettext catalogs through Babel.

Source strings are English; ``grenswacht/web/locale/<lang>/LC_MESSAGES/messages.po`` hold
the translations (Dutch; English needs none) and ``messages.pot`` the template that
``pybabel extract`` writes (docs/translating.md). The ``.po`` files are compiled when first
used, in memory (Babel's ``read_po`` + ``write_mo``): the repository holds only text a
translator edits and reviews, no binary that can silently fall behind its source, and an
editable install needs no build step.

Dutch is the default; the language comes from ``?lang=`` (remembered in the ``gw_lang``
cookie), else that cookie, else Dutch. Strings outside templates are marked with
:func:`N_` and translated where they are shown.
"""

from __future__ import annotations

import gettext
import io
from functools import lru_cache
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGUAGES = ("nl", "en")
DEFAULT_LANGUAGE = "nl"
LANGUAGE_COOKIE = "gw_lang"
LANGUAGE_NAMES = {"nl": "Nederlands", "en": "English"}
LOCALE_DIR = Path(__file__).resolve().parent / "locale"
DOMAIN = "messages"


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for "mark, translate later"
    """Mark ``message`` for extraction; it is translated where it is shown."""
    return message


def catalog_path(language: str) -> Path:
    return LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@lru_cache(maxsize=len(LANGUAGES))
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalog of ``language`` (English and unknown languages: the source
    strings themselves)."""
    path = catalog_path(language)
    if language not in LANGUAGES or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as po:
        catalog = read_po(po, locale=language, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


def negotiate(query_value: str | None, cookie_value: str | None) -> tuple[str, bool]:
    """The language of a request and whether the choice is new (to remember in the
    cookie): ``?lang=`` first, then the cookie, else Dutch."""
    if query_value in LANGUAGES:
        return str(query_value), query_value != cookie_value
    if cookie_value in LANGUAGES:
        return str(cookie_value), False
    return DEFAULT_LANGUAGE, False


def gettext_for(language: str) -> gettext.NullTranslations:
    return translations(language if language in LANGUAGES else DEFAULT_LANGUAGE)
