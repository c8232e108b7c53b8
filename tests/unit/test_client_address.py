"""Whose address a request is counted against (``api/clientip.py``), what a bucket key may
hold (``auth/ratelimit.py``), and the limits a deployment sets in its environment."""

from __future__ import annotations

from datetime import timedelta

import pytest

from civicvoucher.api.clientip import (
    ProxySettingsError,
    TrustedProxies,
    _forwarded_for,
    parse_address,
    resolve,
)
from civicvoucher.auth.ratelimit import (
    MAX_KEY,
    Limits,
    address_key,
    backoff_delay,
    bucket_key,
)
from civicvoucher.errors import ValidationError

PROXIES = TrustedProxies.from_env({"CIVICVOUCHER_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1 ::1"})


@pytest.mark.parametrize("peer, hops, client", [
    # no proxy in the way: the header is the client's say, ignored
    ("198.51.100.9", ["1.2.3.4"], "198.51.100.9"),
    # behind the proxy: the right-most address the proxy did not write for itself
    ("10.0.0.2", ["1.2.3.4"], "1.2.3.4"),
    ("10.0.0.2", ["6.6.6.6", "1.2.3.4"], "1.2.3.4"),  # 6.6.6.6 is the client's own claim
    ("10.0.0.2", ["1.2.3.4", "10.9.9.9"], "1.2.3.4"),  # two trusted hops
    ("10.0.0.2", ["10.1.1.1", "10.9.9.9"], "10.1.1.1"),  # all trusted: the left-most
    ("10.0.0.2", [], "10.0.0.2"),  # a proxy that said nothing stands for the client
    ("10.0.0.2", ["1.2.3.4", "unknown"], "10.0.0.2"),  # a hop that is not an address
    ("10.0.0.2", ["1.2.3.4", "garbage", "10.3.3.3"], "10.3.3.3"),
    ("10.0.0.2", [" 1.2.3.4:5678 "], "1.2.3.4"),
    ("::1", ["[2001:db8::7]:443"], "2001:db8::7"),
    ("::ffff:10.0.0.2", ["::ffff:1.2.3.4"], "1.2.3.4"),  # IPv4-mapped is IPv4
    ("testclient", ["1.2.3.4"], "testclient"),  # not an address: as it is
])
def test_the_client_is_the_right_most_untrusted_hop(peer, hops, client):
    assert resolve(peer, hops, PROXIES) == client


def test_without_trusted_proxies_no_header_is_believed():
    assert resolve("10.0.0.2", ["1.2.3.4"], TrustedProxies.from_env({})) == "10.0.0.2"


def test_forwarded_elements_give_their_for():
    value = 'for=192.0.2.60;proto=http;by=203.0.113.43, for="[2001:db8:cafe::17]:4711", proto=x'
    assert [parse_address(h) and str(parse_address(h)) for h in _forwarded_for(value)] == [
        "192.0.2.60", "2001:db8:cafe::17", None]


@pytest.mark.parametrize("env", [{"CIVICVOUCHER_TRUSTED_PROXIES": "10.0.0.0/33"},
                                 {"CIVICVOUCHER_TRUSTED_PROXIES": "proxy.local"},
                                 {"CIVICVOUCHER_PROXY_HEADER": "x-real-ip"}])
def test_bad_proxy_settings_are_refused(env):
    with pytest.raises(ProxySettingsError):
        TrustedProxies.from_env(env)


def test_an_ipv6_client_is_counted_by_its_64():
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("198.51.100.9") == "198.51.100.9"
    assert address_key("::ffff:198.51.100.9") == "198.51.100.9"


@pytest.mark.parametrize("parts", [("x" * 500,), ("工" * 199, "2001:db8::/64"),
                                   tuple("y" * 60 for _ in range(10))])
def test_a_bucket_key_is_bounded_whatever_its_parts(parts):
    key = bucket_key("login:name-ip", *parts)
    assert len(key) <= MAX_KEY and key.startswith("login:name-ip:")
    other = bucket_key("login:name-ip", *parts[:-1], parts[-1] + "z")
    assert other != key and len(other) <= MAX_KEY


def test_short_parts_stay_readable():
    assert bucket_key("code:terminal", 3, "T1") == "code:terminal:3:T1"


def test_the_backoff_doubles_up_to_its_cap():
    waits = [backoff_delay(n, after=10, base=timedelta(seconds=1), cap=timedelta(minutes=15))
             for n in (9, 10, 11, 12, 19, 20, 10**6)]
    assert [w.total_seconds() for w in waits] == [0, 1, 2, 4, 512, 900, 900]


def test_limits_come_from_the_environment_once():
    lim = Limits.from_env({"CIVICVOUCHER_LIMIT_CODE_PER_IP": "1_200",
                           "CIVICVOUCHER_LIMIT_LOCK_FOR": "600",
                           "CIVICVOUCHER_LIMIT_LOGIN_HASH_WAIT": "0.5",
                           "CIVICVOUCHER_TIMEZONE": "Asia/Shanghai"})
    assert lim.code_per_ip == 1200 and lim.lock_for == timedelta(minutes=10)
    assert lim.login_hash_wait == timedelta(seconds=0.5)
    assert lim.code_per_user == Limits().code_per_user  # the rest: the defaults
    assert Limits.from_env({}) == Limits()
    assert Limits.from_env({"CIVICVOUCHER_LIMIT_LOGIN_HASH_QUEUE": "0"}).login_hash_queue == 0


@pytest.mark.parametrize("env", [{"CIVICVOUCHER_LIMIT_CODE_PER_IP": "many"},
                                 {"CIVICVOUCHER_LIMIT_CODE_PER_IP": "0"},
                                 {"CIVICVOUCHER_LIMIT_LOGIN_HASH_SLOTS": "-1"},
                                 {"CIVICVOUCHER_LIMIT_CODE_PER_IP": "1.5"},
                                 {"CIVICVOUCHER_LIMIT_LOCK_FOR": "nan"},
                                 {"CIVICVOUCHER_LIMIT_CODE_PER_MINUTE": "5"}])
def test_a_bad_limit_is_refused_naming_its_variable(env):
    (var,) = env
    with pytest.raises(ValidationError) as exc:
        Limits.from_env(env)
    assert exc.value.field == var and var in exc.value.message
