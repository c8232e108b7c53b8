"""Properties of the pure voucher rules: the transition table and check_redeemable."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from civicvoucher.errors import InvalidTransition, VoucherNotRedeemable
from civicvoucher.merchants.rules import Category, Channel
from civicvoucher.vouchers.rules import (
    VOUCHER_TRANSITIONS,
    SpendCheck,
    VoucherStatus,
    check_redeemable,
    status_error,
    transition,
)

ISS, H, R, X = (VoucherStatus.ISSUED, VoucherStatus.HELD, VoucherStatus.REDEEMED,
              VoucherStatus.EXPIRED)
# The lifecycle, written out independently of the table it checks.
LIFECYCLE = {
    (ISS, "redeem"): R, (ISS, "hold"): H, (ISS, "expire"): X,
    (H, "capture"): R, (H, "void"): ISS,
    (R, "refund"): ISS, (R, "refund_after_expiry"): X,
}
EVENTS = sorted({e for _, e in LIFECYCLE})
US = timedelta(microseconds=1)

# --- transition ----------------------------------------------------------------------------


def test_the_table_is_the_lifecycle():
    assert VOUCHER_TRANSITIONS == LIFECYCLE


def test_the_table_is_closed():
    """Every state it names is a voucher state; every state is reachable from issued; expired
    is terminal; every state but expired has a way out."""
    named = {s for s, _ in VOUCHER_TRANSITIONS} | set(VOUCHER_TRANSITIONS.values())
    assert named == set(VoucherStatus)
    reach, todo = {ISS}, [ISS]
    while todo:
        s = todo.pop()
        for (frm, _), to in VOUCHER_TRANSITIONS.items():
            if frm == s and to not in reach:
                reach.add(to)
                todo.append(to)
    assert reach == set(VoucherStatus)
    assert not [k for k in VOUCHER_TRANSITIONS if k[0] == X]
    assert {s for s, _ in VOUCHER_TRANSITIONS} == set(VoucherStatus) - {X}


@given(status=st.sampled_from(list(VoucherStatus)),
       event=st.sampled_from(EVENTS) | st.text(max_size=12))
def test_transition_maps_per_the_table_or_raises(status, event):
    if (status, event) in LIFECYCLE:
        assert transition(str(status), event) == (status, LIFECYCLE[(status, event)])
    else:
        with pytest.raises(InvalidTransition) as e:
            transition(str(status), event)
        assert e.value.code == "invalid_transition"


@given(status=st.text(max_size=10).filter(lambda s: s not in set(VoucherStatus)),
       event=st.sampled_from(EVENTS))
def test_an_unknown_state_never_transitions(status, event):
    with pytest.raises((InvalidTransition, ValueError)):
        transition(status, event)


@pytest.mark.parametrize(("status", "code"), [
    (R, "voucher_already_redeemed"), (H, "voucher_already_redeemed"), (X, "voucher_expired")])
def test_a_spent_or_expired_voucher_says_why(status, code):
    assert status_error(status).code == code


# --- check_redeemable ----------------------------------------------------------------------

T0 = datetime(2020, 4, 26)
CATEGORIES, CHANNELS = list(Category), list(Channel)


@st.composite
def allowed_spend(draw):
    """A voucher and a spend that every rule allows, with the voucher's own boundaries."""
    valid_from = T0 + timedelta(minutes=draw(st.integers(0, 10_000)))
    expires_at = valid_from + timedelta(minutes=draw(st.integers(1, 100_000)))
    amount = draw(st.integers(1, 100_000))
    threshold = draw(st.integers(0, 200_000))
    cats = frozenset(draw(st.sets(st.sampled_from(CATEGORIES), min_size=1)))
    chans = frozenset(draw(st.sets(st.sampled_from(CHANNELS), min_size=1)))
    region = draw(st.sampled_from(["14", "1401", "140105"]))
    v = SpendCheck(status=ISS, amount_fen=amount, threshold_fen=threshold, valid_from=valid_from,
                   expires_at=expires_at, categories=cats, channels=chans, region_prefix=region)
    channel = draw(st.sampled_from(sorted(chans)))
    ctx = dict(
        merchant_status="active",
        merchant_category=draw(st.sampled_from(sorted(cats))),
        merchant_county=region + "140105"[len(region):],
        merchant_channels=frozenset({channel}) | draw(st.frozensets(st.sampled_from(CHANNELS))),
        channel=channel,
        order_amount_fen=max(amount, threshold) + draw(st.integers(0, 50_000)),
        now=draw(st.sampled_from([valid_from, expires_at - US,
                                  valid_from + (expires_at - valid_from) / 2])),
    )
    return v, ctx


def code_of(v, ctx) -> str | None:
    try:
        check_redeemable(v, **ctx)
    except VoucherNotRedeemable as e:
        return e.code
    return None


@given(allowed_spend())
def test_inside_every_boundary_is_allowed(case):
    """valid_from is inclusive, expires_at exclusive (the last instant before it spends), an
    order of exactly max(value, threshold) is enough."""
    v, ctx = case
    assert code_of(v, ctx) is None
    assert code_of(v, {**ctx, "now": v.valid_from}) is None
    assert code_of(v, {**ctx, "now": v.expires_at - US}) is None
    assert code_of(v, {**ctx, "order_amount_fen": max(v.amount_fen, v.threshold_fen)}) is None


@given(allowed_spend(), st.integers(0, 10**9))
def test_before_valid_from_is_not_yet_valid(case, early_us):
    v, ctx = case
    assert code_of(v, {**ctx, "now": v.valid_from - US * (1 + early_us)}) == "voucher_not_yet_valid"


@given(allowed_spend(), st.integers(0, 10**9))
def test_at_or_after_expires_at_is_expired(case, late_us):
    v, ctx = case
    assert code_of(v, {**ctx, "now": v.expires_at + US * late_us}) == "voucher_expired"


@given(allowed_spend(), st.sampled_from([R, H, X]))
def test_only_an_issued_voucher_spends(case, status):
    v, ctx = case
    assert code_of(dataclasses.replace(v, status=status), ctx) == status_error(status).code


@given(allowed_spend(), st.sampled_from(["pending", "suspended", "closed"]))
def test_only_an_active_merchant_takes_vouchers(case, merchant_status):
    v, ctx = case
    assert code_of(v, {**ctx, "merchant_status": merchant_status}) == "merchant_not_active"


@given(allowed_spend(), st.data())
def test_a_category_outside_the_voucher_is_refused(case, data):
    v, ctx = case
    others = [c for c in CATEGORIES if c not in v.categories]
    if not others:
        return
    cat = data.draw(st.sampled_from(others))
    assert code_of(v, {**ctx, "merchant_category": cat}) == "category_not_allowed"


@given(allowed_spend(), st.data())
def test_the_channel_must_be_the_voucher_s_and_the_merchant_s(case, data):
    v, ctx = case
    outside_voucher = [c for c in CHANNELS if c not in v.channels]
    if outside_voucher:
        ch = data.draw(st.sampled_from(outside_voucher))
        got = code_of(v, {**ctx, "channel": ch, "merchant_channels": frozenset(CHANNELS)})
        assert got == "channel_not_allowed"
    ch = ctx["channel"]
    assert code_of(v, {**ctx, "merchant_channels": frozenset(CHANNELS) - {ch}}) == \
        "channel_not_allowed"


@given(allowed_spend(), st.sampled_from(["130105", "140205", "1401", "14", "150105"]))
def test_a_merchant_outside_the_region_is_refused(case, county):
    v, ctx = case
    want = None if county.startswith(v.region_prefix) else "region_not_allowed"
    assert code_of(v, {**ctx, "merchant_county": county}) == want


@given(allowed_spend(), st.integers(1, 10**6))
def test_an_order_below_value_or_threshold_is_refused(case, short):
    v, ctx = case
    need = max(v.amount_fen, v.threshold_fen)
    order = max(need - short, 0)
    with pytest.raises(VoucherNotRedeemable) as e:
        check_redeemable(v, **{**ctx, "order_amount_fen": order})
    assert e.value.code == "order_below_threshold"
    assert v.min_order_fen == need
