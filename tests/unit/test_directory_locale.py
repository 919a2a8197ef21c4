"""Which language and tones an organisation's callers get: its own, else the node's."""

from __future__ import annotations

from sqlmodel import Session

from pbx.directory import Directory
from pbx.models import Organisation
from pbx.store import Store


def test_organisations_speak_their_language_with_their_countrys_tones() -> None:
    store = Store("sqlite://")
    with Session(store.engine) as db:
        db.add_all([
            Organisation(slug="default", name="Default"),  # follows [general] language
            Organisation(slug="london", name="London Ltd", domain="london.test", language="en"),
            Organisation(slug="oslo", name="Oslo AS", domain="oslo.test", language="nb"),
            Organisation(slug="hki", name="Helsinki Oy", domain="hki.test", language="fi",
                         tone_country="se"),  # Finnish prompts, Swedish tones: its own choice
        ])
        db.commit()
    directory = Directory(store, "pbx.test", language="sv", tone_country="us")
    locales = {t.slug: (t.language, t.tone_country) for t in directory.tenants.values()}
    assert locales == {"default": ("sv", "se"), "london": ("en", "us"), "oslo": ("nb", "no"),
                       "hki": ("fi", "se")}
    assert directory.languages == ("en", "sv", "nb", "fi")  # what the node renders, English always
    assert directory.tenant_for("oslo.test").language == "nb"  # type: ignore[union-attr]
    store.close()
