"""The same store over PostgreSQL: what the admin changes, registrations and
call records survive a restart (ARCHITECTURE.md principle 3)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.integration.peers import ADMIN_PASSWORD, postgres_url, running_pbx
from tests.integration.sipclient import SipClient

pytestmark = pytest.mark.integration


def test_a_pbx_on_postgresql_keeps_its_state_across_a_restart(
    tmp_path: Path,
) -> None:
    with postgres_url(tmp_path) as url, running_pbx(
        tmp_path, {"1001": "pw-1001-secret"}, database_url=url, admin_password=ADMIN_PASSWORD,
    ) as pbx:
        headers = pbx.admin_headers()
        made = httpx.post(f"{pbx.api}/extensions", headers=headers, json={"number": "2001"})
        assert made.status_code == 201
        secret = made.json()["secret"]
        with SipClient(pbx.host, pbx.sip_port) as phone, SipClient(pbx.host, pbx.sip_port) as caller:
            assert phone.register("2001", secret, expires=600).status == 200  # type: ignore[union-attr]
            _, missing = caller.invite("1001", "pw-1001-secret", "4040")
            assert missing is not None and missing.status == 404
        time.sleep(0.5)  # registrations are written back every 200 ms
        pbx.stop()
        pbx.start()
        assert pbx.health()["registrations"] == 1
        headers = pbx.admin_headers()
        assert httpx.get(f"{pbx.api}/extensions/2001", headers=headers).status_code == 200
        records = httpx.get(f"{pbx.api}/cdrs", headers=headers).json()["items"]
        assert [(r["callee"], r["status"]) for r in records] == [("4040", 404)]
        assert "sqlite" not in pbx.log() and "postgresql" in (pbx.config.read_text())
