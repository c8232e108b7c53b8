"""Issue 8 item 10: times are read and shown in the deployment's zone (default Beijing time),
stored as naive UTC; a DST-ambiguous local time is refused, naming the field."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import duckdb
import pytest
from pydantic import ValidationError as PydanticError

from civicvoucher.core import clock
from civicvoucher.errors import ValidationError
from civicvoucher.programs.spec import parse_program_spec
from tests.world import program_spec

BEIJING = timezone(timedelta(hours=8))

ZONE_ENV = "CIVICVOUCHER_TIMEZONE"


@pytest.fixture(autouse=True)
def _default_zone(monkeypatch):
    monkeypatch.delenv(ZONE_ENV, raising=False)


# --- core/clock ------------------------------------------------------------------------------

def test_the_default_zone_is_beijing_and_naive_input_is_local():
    assert clock.zone().key == "Asia/Shanghai"
    assert clock.to_utc(datetime(2026, 12, 2, 1)) == datetime(2026, 12, 1, 17)
    assert clock.to_utc(datetime(2026, 12, 2, 1, tzinfo=UTC)) == datetime(2026, 12, 2, 1)
    assert clock.local_date(datetime(2020, 7, 10, 17)) == date(2020, 7, 11)
    assert clock.local_date(datetime(2020, 7, 10, 15, 59)) == date(2020, 7, 10)
    assert clock.end_of_day(date(2020, 7, 10)) == datetime(2020, 7, 10, 16)
    assert clock.start_of_day(date(2020, 4, 26)) == datetime(2020, 4, 25, 16)
    assert clock.format_local(datetime(2020, 7, 10, 16)) == "2020-07-11 00:00 +08:00"
    assert clock.now().tzinfo is None
    assert clock.format_local(datetime(9999, 12, 31, 23)) == "9999-12-31 23:00 UTC"


def test_an_unknown_zone_is_a_clear_error(monkeypatch):
    monkeypatch.setenv(ZONE_ENV, "Asia/Beijing")  # not an IANA name
    with pytest.raises(clock.UnknownZone, match="CIVICVOUCHER_TIMEZONE='Asia/Beijing'"):
        clock.zone()


@pytest.mark.parametrize("name, wall, why", [
    ("America/New_York", datetime(2026, 3, 8, 2, 30), "does not exist"),
    ("America/New_York", datetime(2026, 11, 1, 1, 30), "happens twice"),
    ("Europe/Berlin", datetime(2026, 3, 29, 2, 30), "does not exist"),
    ("Europe/Berlin", datetime(2026, 10, 25, 2, 30), "happens twice"),
])
def test_a_local_time_daylight_saving_skips_or_repeats_is_refused(monkeypatch, name, wall, why):
    monkeypatch.setenv(ZONE_ENV, name)
    with pytest.raises(clock.ZoneError, match=why) as exc:
        clock.to_utc(wall, field="expires_at")
    assert exc.value.field == "expires_at" and str(exc.value).startswith("expires_at: ")
    # an explicit offset says which one is meant
    assert clock.to_utc(wall.replace(tzinfo=timezone(timedelta(hours=-4)))) == wall + timedelta(hours=4)
    # an hour away is fine, and day edges never need a guess
    assert clock.to_utc(wall + timedelta(hours=2)) is not None
    assert clock.start_of_day(wall.date()) < clock.end_of_day(wall.date())


# --- program files ---------------------------------------------------------------------------

def _spec(**product):
    data = program_spec()
    data["products"][0].update(product)
    return parse_program_spec(data).products[0]


def test_a_naive_program_time_is_beijing_time():
    p = _spec(valid_from=datetime(2026, 11, 1), expires_at=datetime(2026, 12, 2, 1))
    assert p.valid_from == datetime(2026, 10, 31, 16)
    assert p.expires_at == datetime(2026, 12, 1, 17)


def test_an_explicit_offset_in_a_program_is_honoured():
    p = _spec(expires_at=datetime(2020, 7, 10, 16, tzinfo=UTC))
    assert p.expires_at == datetime(2020, 7, 10, 16)
    p = _spec(expires_at="2020-07-11T00:00:00+08:00")
    assert p.expires_at == datetime(2020, 7, 10, 16)


def test_a_bare_date_names_a_whole_local_day_inside_the_window():
    p = _spec(valid_from=date(2020, 4, 26), expires_at=date(2020, 7, 10))
    assert p.valid_from == datetime(2020, 4, 25, 16)  # 2020-04-26 00:00 Beijing
    assert p.expires_at == datetime(2020, 7, 10, 16)  # 2020-07-10 24:00 Beijing, exclusive
    same = _spec(valid_from="2020-04-26", expires_at="2020-07-10")  # as JSON sends them
    assert (same.valid_from, same.expires_at) == (p.valid_from, p.expires_at)
    assert _spec(expires_at=datetime(2020, 7, 11)).expires_at == p.expires_at


def test_a_dst_ambiguous_program_time_is_refused_naming_the_field(monkeypatch):
    monkeypatch.setenv(ZONE_ENV, "Europe/Berlin")
    data = program_spec()
    data["products"][0]["expires_at"] = datetime(2020, 10, 25, 2, 30)
    with pytest.raises(ValidationError, match="happens twice in Europe/Berlin") as exc:
        parse_program_spec(data)
    assert exc.value.field == "products.0.expires_at"


def test_the_shanxi_deadline_is_beijing_midnight():
    from civicvoucher.scenarios.model import load_scenario
    from civicvoucher.scenarios.simulate import scenario_zone

    scn = load_scenario("shanxi-2020")
    spec = parse_program_spec(scn["program"])
    voucher = next(p for p in spec.products if p.key == "voucher")
    assert voucher.expires_at == datetime(2020, 7, 10, 16)  # 7月10日24:00 Beijing
    assert voucher.valid_from == datetime(2020, 4, 25, 16)
    assert scenario_zone(scn).key == "Asia/Shanghai"
    assert clock.to_utc(scn["extension"]["new_expires_at"]) == datetime(2020, 7, 31, 16)


def test_the_shanxi_deadline_stays_beijing_time_in_another_deployment(monkeypatch):
    from civicvoucher.scenarios.model import load_scenario

    monkeypatch.setenv(ZONE_ENV, "Europe/Berlin")
    spec = parse_program_spec(load_scenario("shanxi-2020")["program"])
    assert spec.products[0].expires_at == datetime(2020, 7, 10, 16)


# --- the CLI ---------------------------------------------------------------------------------

def test_cli_times_are_local_unless_an_offset_is_given():
    from civicvoucher.cli.common import parse_when

    assert parse_when(None, "cutoff") is None
    assert parse_when("2026-12-02T01:00", "cutoff") == datetime(2026, 12, 1, 17)
    assert parse_when("2020-08-01", "until") == datetime(2020, 7, 31, 16)  # 00:00 Beijing
    assert parse_when("2020-08-01T00:00+08:00", "until") == datetime(2020, 7, 31, 16)
    assert parse_when("2020-07-31T16:00Z", "until") == datetime(2020, 7, 31, 16)
    with pytest.raises(ValidationError, match="local time in Asia/Shanghai") as exc:
        parse_when("next monday", "as_of")
    assert exc.value.field == "as_of"


def test_cli_refuses_a_dst_ambiguous_time_naming_the_option(monkeypatch):
    from civicvoucher.cli.common import parse_when

    monkeypatch.setenv(ZONE_ENV, "America/New_York")
    with pytest.raises(ValidationError, match="happens twice") as exc:
        parse_when("2026-11-01T01:30", "cutoff")
    assert exc.value.field == "cutoff" and "column cutoff: 2026-11-01 01:30" in str(exc.value)
    with pytest.raises(ValidationError, match="does not exist"):
        parse_when("2026-03-08T02:30", "as_of")
    assert parse_when("2026-11-01T01:30-05:00", "cutoff") == datetime(2026, 11, 1, 6, 30)


def test_cli_names_an_unknown_zone(monkeypatch):
    from civicvoucher.cli.common import parse_when

    monkeypatch.setenv(ZONE_ENV, "Mars/Olympus")
    with pytest.raises(ValidationError, match="not a known IANA time zone") as exc:
        parse_when("2020-08-01", "until")
    assert exc.value.field == ZONE_ENV


# --- the API ---------------------------------------------------------------------------------

def test_api_request_times_are_local_and_responses_carry_the_offset(monkeypatch):
    from civicvoucher.api.schemas import ExpiryIn, ExpiryOut, SettlementIn

    assert ExpiryIn.model_validate({"as_of": "2026-12-02T01:00:00"}).as_of == datetime(2026, 12, 1, 17)
    assert ExpiryIn.model_validate({"as_of": "2026-12-01T17:00:00Z"}).as_of == datetime(2026, 12, 1, 17)
    assert SettlementIn.model_validate({"cutoff": "2020-07-11T00:00:00+08:00"}).cutoff == \
        datetime(2020, 7, 10, 16)
    out = ExpiryOut(id=1, as_of=datetime(2020, 7, 10, 16), vouchers_expired=0, amount_fen=0,
                    holds_voided=0)
    assert out.model_dump(mode="json")["as_of"] == "2020-07-11T00:00:00+08:00"
    assert out.as_of == datetime(2020, 7, 10, 16)  # in Python it stays naive UTC
    monkeypatch.setenv(ZONE_ENV, "Europe/Berlin")
    with pytest.raises(PydanticError) as exc:
        ExpiryIn.model_validate({"as_of": "2026-10-25T02:30:00"})
    err = exc.value.errors()[0]
    assert err["loc"] == ("as_of",) and "happens twice" in err["msg"]
    assert out.model_dump(mode="json")["as_of"] == "2020-07-10T18:00:00+02:00"


def test_api_times_at_the_edge_of_the_calendar_are_refused_or_said_in_utc():
    from civicvoucher.api.schemas import ExpiryIn, ExpiryOut

    with pytest.raises(PydanticError, match="date out of range"):
        ExpiryIn.model_validate({"as_of": "0001-01-01T00:00:00"})  # 8 hours before year 1
    out = ExpiryOut(id=1, as_of=datetime(9999, 12, 31, 23), vouchers_expired=0, amount_fen=0,
                    holds_voided=0)
    assert out.model_dump(mode="json")["as_of"] == "9999-12-31T23:00:00Z"


def _redemption(created_at: datetime):
    from civicvoucher.vouchers.models import Redemption

    return Redemption(id=42, merchant_id=1, union_id=2, program_id=3, channel="offline",
                      order_amount_fen=30000, amount_fen=30000, status="posted",
                      hold_expires_at=None, created_at=created_at, posted_at=created_at,
                      settlement_batch_id=None)


def test_a_receipt_id_carries_the_local_date(monkeypatch):
    from civicvoucher.api.routers.redemptions import receipt

    r = receipt(_redemption(datetime(2020, 7, 10, 17)))  # 01:00 on 7月11日 in Beijing
    assert r.receipt_id == "R20200711-00000042"
    assert r.model_dump(mode="json")["created_at"] == "2020-07-11T01:00:00+08:00"
    assert receipt(_redemption(datetime(2020, 7, 10, 15, 59))).receipt_id == "R20200710-00000042"
    monkeypatch.setenv(ZONE_ENV, "America/New_York")
    assert receipt(_redemption(datetime(2020, 7, 11, 3))).receipt_id == "R20200710-00000042"


# --- reports ---------------------------------------------------------------------------------

def _daily(spent: list[datetime]) -> list[tuple[str, int]]:
    from civicvoucher.analytics import spending

    con = duckdb.connect()
    con.execute("CREATE TEMP TABLE products AS SELECT 1::BIGINT AS id, 'consumption' AS kind")
    con.execute("CREATE TEMP TABLE unions AS SELECT 1::BIGINT AS id, 'county' AS level")
    con.execute("CREATE TEMP TABLE merchants AS SELECT 1::BIGINT AS id, 'other' AS category")
    con.execute("CREATE TEMP TABLE vouchers (id BIGINT, product_id BIGINT, union_id BIGINT, "
                "form VARCHAR)")
    con.execute("CREATE TEMP TABLE redemptions (id BIGINT, voucher_id BIGINT, merchant_id "
                "BIGINT, channel VARCHAR, order_amount_fen BIGINT, amount_fen BIGINT, status "
                "VARCHAR, spent_at TIMESTAMP)")
    for i, t in enumerate(spent, 1):
        con.execute("INSERT INTO vouchers VALUES (?, 1, 1, 'digital')", [i])
        con.execute("INSERT INTO redemptions VALUES (?, ?, 1, 'offline', 30000, 30000, "
                    "'posted', ?)", [i, i, t])
    spending.prepare(con)
    return [(r["day"], r["redemptions"]) for r in spending.daily_table(con).rows]


def test_redemptions_are_counted_on_their_local_day():
    assert _daily([datetime(2020, 7, 10, 15, 59), datetime(2020, 7, 10, 16),
                   datetime(2020, 7, 10, 17)]) == [("2020-07-10", 1), ("2020-07-11", 2)]


def test_report_days_follow_the_deployment_zone_across_daylight_saving(monkeypatch):
    monkeypatch.setenv(ZONE_ENV, "Europe/Berlin")
    # 2020-03-29: CET→CEST. 22:59Z on the 28th is 23:59 CET; 22:00Z on the 29th is 00:00 CEST
    assert _daily([datetime(2020, 3, 28, 22, 59), datetime(2020, 3, 28, 23),
                   datetime(2020, 3, 29, 21, 59), datetime(2020, 3, 29, 22)]) == [
        ("2020-03-28", 1), ("2020-03-29", 2), ("2020-03-30", 1)]


def test_a_scenario_override_of_a_deadline_is_a_time_in_the_scenarios_zone():
    from civicvoucher.scenarios.model import apply_overrides, load_scenario
    from civicvoucher.scenarios.simulate import scenario_zone

    scn = apply_overrides(load_scenario(), {"extension.new_expires_at": "2020-08-16"})
    at = clock.to_utc(scn["extension"]["new_expires_at"], tz=scenario_zone(scn))
    assert at == datetime(2020, 8, 15, 16)
    with pytest.raises(ValidationError, match="is not a datetime"):
        apply_overrides(load_scenario(), {"extension.new_expires_at": "soon"})


def test_a_bare_date_as_a_deadline_means_through_that_local_day():
    from civicvoucher.api.schemas import ExtensionIn
    from civicvoucher.cli.common import parse_deadline

    body = ExtensionIn.model_validate({"program": "p2020", "new_expires_at": "2020-07-31",
                                       "reason": "延期"})
    assert body.new_expires_at == datetime(2020, 7, 31, 16)  # 2020-08-01 00:00 Beijing, in UTC
    assert parse_deadline("2020-07-31", "until") == datetime(2020, 7, 31, 16)
    assert parse_deadline("2020-08-01T00:00", "until") == datetime(2020, 7, 31, 16)
