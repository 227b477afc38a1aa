"""Contract section 9 on the real broker: a subsidy handled from grant to payment by the
stream worker, two bureaus racing to claim it (the later claim arriving first), a crash
in the middle; every status change on `worker-services` once, the file equal to the
offline fold. And POST /events takes service events from social-insurance bureaus only."""

from __future__ import annotations

from streams.reader import decoded, latest_files
from streams.runner import wait_for
from streams.topics import WORKER_SERVICES
from tests.conftest import BUREAU, BUREAU_2, SCHOOL, SSN_A
from tests.integration.api_access import Access, api_worker, call
from tests.integration.conftest import expected_files, publish
from tests.processors.test_services import ELIGIBLE, SID, claim, decide, pay
from tests.processors.test_fold_rules import cert


def changes_of(bootstrap: str, sid: str) -> list[tuple[str | None, str]]:
    return [(s["status_before"], s["status"]) for s in decoded(bootstrap, WORKER_SERVICES) if s["service_id"] == sid]


def grant_on_file(bootstrap: str) -> dict | None:
    f = latest_files(bootstrap, versions=False).get(SSN_A)
    grants = f["services"]["skill_upgrade_subsidy"] if f else []
    return grants[0] if grants else None


def test_a_grant_claimed_by_two_bureaus_is_handled_once_and_paid(kafka, workers):
    bootstrap = kafka.bootstrap
    base = ELIGIBLE + [cert(issued_on="2023-05-20")]
    later = claim("2023-07-01", source=BUREAU)  # filed later, arrives first
    earlier = claim("2023-06-01", source=BUREAU_2, region="310115")
    by_other = decide("refused", "2023-06-10", source=BUREAU)  # not the winning claim's bureau: no effect
    approval, payment = decide("approved", "2023-06-20", source=BUREAU_2), pay(1000, "2023-07-15", source=BUREAU_2)
    again = pay(1000, "2023-08-15", source=BUREAU_2)  # paid a second time: service_paid_twice
    worker = workers(name="w")
    publish(bootstrap, base)
    wait_for(lambda: changes_of(bootstrap, SID) == [(None, "offered")], 180, interval=2, what="the grant offered")
    publish(bootstrap, [later])
    wait_for(lambda: (grant_on_file(bootstrap) or {}).get("status") == "claimed", 120, interval=2, what="the claim")
    assert grant_on_file(bootstrap)["claim"]["source"] == BUREAU
    worker.kill()  # a crash between two steps of the service
    publish(bootstrap, [earlier, by_other])
    workers(name="w")
    wait_for(lambda: (grant_on_file(bootstrap) or {}).get("claim", {}).get("source") == BUREAU_2, 180, interval=2,
             what="the earlier claim winning")
    publish(bootstrap, [approval, payment, again])
    everything = base + [later, earlier, by_other, approval, payment, again]
    expected = expected_files(everything)
    wait_for(lambda: latest_files(bootstrap, versions=False) == expected, 180, interval=2, what="the file of the offline fold")
    grant = expected[SSN_A]["services"]["skill_upgrade_subsidy"][0]
    assert (grant["status"], grant["claim"]["region"], grant["amount_cny"]) == ("paid", "310115", 1000)
    issues = {(i["code"], i["event_id"]) for i in expected[SSN_A]["issues"]}
    assert issues == {("service_claimed_twice", later["event_id"]), ("service_handled_by_other", by_other["event_id"]),
                      ("service_paid_twice", again["event_id"])}
    wait_for(lambda: changes_of(bootstrap, SID)[-1:] == [("approved", "paid")] or
             changes_of(bootstrap, SID)[-1:] == [("claimed", "paid")], 120, interval=2, what="the payment announced")
    changes = changes_of(bootstrap, SID)
    assert changes[0] == (None, "offered") and changes[1] == ("offered", "claimed")
    assert all(before != after for before, after in changes)  # no event repeats the status before it
    assert len(set(changes)) == len(changes), changes  # and none is published twice
    assert [after for _, after in changes][-1] == "paid"


def test_post_events_takes_service_events_from_bureaus_only(kafka, tmp_path):
    access = Access(tmp_path / "access")
    bureau = access.add("bureau", "social_insurance", org=BUREAU_2)
    school = access.add("school", "training_institution", org=SCHOOL)
    proc = api_worker(kafka, tmp_path, access)
    try:
        status, body = call("POST", proc.base_url + "/events", [claim(source=SCHOOL)], token=school)
        assert status == 403 and body["error"] == "forbidden" and "social-insurance" in body["message"]
        assert body["indexes"] == [0]
        status, body = call("POST", proc.base_url + "/events", [claim(source=BUREAU_2)], token=bureau)
        assert status == 202, body
        status, body = call("POST", proc.base_url + "/events",
                            [claim(source=BUREAU_2, sid="not-a-uuid")], token=bureau)
        assert status == 422 and body["errors"][0]["field"] == "payload.service_id", body
    finally:
        proc.kill()


def test_the_annual_limit_unknown_and_late_claims_and_notices_on_the_stream(kafka, workers):
    from tests.conftest import EMPLOYER_A, make_event
    from tests.processors.test_services import annual, job
    bootstrap = kafka.bootstrap
    unknown = claim(sid="00000000-0000-5000-8000-00000000000f")
    late = claim("2024-06-01")  # the grant of S0 (OCC junior, issued 2023-05-20) is due by 2024-05-20
    first = ELIGIBLE + annual(5) + [unknown, late, job(written=False)]
    workers()
    publish(bootstrap, first)
    wait_for(lambda: latest_files(bootstrap, versions=False) == expected_files(first), 180, interval=2, what="the first file")
    f = expected_files(first)[SSN_A]
    statuses = sorted(g["status"] for g in f["services"]["skill_upgrade_subsidy"])
    assert statuses == ["claimed", "offered", "offered", "over_annual_limit", "over_annual_limit"]
    assert {i["code"] for i in f["issues"]} == {"claim_without_grant", "claimed_after_deadline"}
    ended = make_event("employment.ended", source=EMPLOYER_A,
                       payload={"employer": EMPLOYER_A, "end_date": "2023-06-30", "reason": "resigned"})
    publish(bootstrap, [ended])
    everything = first + [ended]
    wait_for(lambda: latest_files(bootstrap, versions=False) == expected_files(everything), 180, interval=2, what="the job ended")

    def notices():
        return [(s["status_before"], s["status"], s["notice"]["code"]) for s in decoded(bootstrap, WORKER_SERVICES)
                if s["service"] == "notice"]
    wait_for(lambda: len(notices()) == 2, 60, interval=2, what="the notice resolved")
    assert notices() == [(None, "open", "no_written_contract"), ("open", "resolved", "no_written_contract")]
    last: dict[str, str] = {}
    for s in decoded(bootstrap, WORKER_SERVICES):
        if s["service"] == "skill_upgrade_subsidy":
            last[s["service_id"]] = s["status"]
    grants = {g["service_id"]: g["status"] for g in f["services"]["skill_upgrade_subsidy"]}
    assert last == grants  # the last event of each grant carries its status on the file
