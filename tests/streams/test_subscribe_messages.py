"""What `workerfile subscribe services` prints and deduplicates by (contract section 9:
one service event per status change, and notices)."""

from __future__ import annotations

from streams.subscribe import describe, message_id

SSN = "11010519491231002X"
GRANT = {"certificate_no": "S1", "occupation_code": "6-18-01-01", "level": "junior", "apply_by": "2024-05-20",
         "service_id": "sid-1", "amount_cny": 1000, "status": "claimed", "claim": None, "decision": None,
         "payments": []}


def service(**fields) -> dict:
    return {"service_id": "sid-1", "ssn": SSN, "service": "skill_upgrade_subsidy", "grant": GRANT, "notice": None,
            "status": "claimed", "status_before": "offered", "version": 3, **fields}


def test_each_status_change_is_its_own_message_and_an_old_grant_keeps_its_id():
    assert message_id("services", service()) == "sid-1|claimed|v3"
    assert message_id("services", service(status="paid", status_before="claimed", version=4)) == "sid-1|paid|v4"
    assert message_id("services", service(status=None, status_before=None, version=None)) == "sid-1"


def test_a_change_is_described_with_its_statuses_and_the_number_masked():
    line = describe("services", service())
    assert "offered -> claimed" in line and "1000 CNY" in line and SSN not in line and "110105********002X" in line
    notice = service(service="notice", grant=None, status="open", status_before=None,
                     notice={"code": "no_written_contract", "employer": "91440300708461136T", "since": "2023-01-01"})
    line = describe("services", notice)
    assert line.startswith("notice no_written_contract for 110105********002X") and "(open)" in line
