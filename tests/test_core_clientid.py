"""Client order id codec: round-trips in each venue's form, foreign ids are not ours."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gridctl.core import clientid
from gridctl.core.clientid import ClientId, decode, encode, same_strategy, strategy_tag, tag_bits
from gridctl.core.orders import Intent

SETTINGS = settings(max_examples=150, deadline=None)
names = st.text(min_size=1, max_size=40)
levels = st.integers(0, clientid.MAX_LEVEL)
intents = st.sampled_from(list(Intent))
gens = st.integers(0, 10**9)  # far more orders than a level will ever place


@SETTINGS
@given(names)
def test_tag_is_six_stable_base36_chars(name):
    tag = strategy_tag(name)
    assert re.fullmatch(r"[0-9a-z]{6}", tag)
    assert strategy_tag(name) == tag


@SETTINGS
@given(names, levels, intents, gens)
def test_binance_round_trip(name, level, intent, gen):
    tag = strategy_tag(name)
    cid = encode("binance", tag, level, intent, gen)
    assert isinstance(cid, str) and len(cid) <= 36 and re.fullmatch(r"[a-z0-9-]+", cid)
    assert decode("binance", cid) == ClientId(tag, level, intent, gen)
    assert same_strategy("binance", decode("binance", cid), tag)


@SETTINGS
@given(names, levels, intents, gens)
def test_okx_round_trip(name, level, intent, gen):
    tag = strategy_tag(name)
    cid = encode("okx", tag, level, intent, gen)
    assert isinstance(cid, str) and len(cid) <= 32 and cid.isalnum() and cid.isascii()
    assert decode("okx", cid) == ClientId(tag, level, intent, gen)


@SETTINGS
@given(names, levels, intents, st.integers(0, 511))
def test_backpack_round_trip(name, level, intent, gen):
    tag = strategy_tag(name)
    cid = encode("backpack", tag, level, intent, gen)
    assert isinstance(cid, int) and 0 <= cid < 2**32
    got = decode("backpack", cid)
    assert (got.level, got.intent, got.gen) == (level, intent, gen)
    assert same_strategy("backpack", got, tag)


@SETTINGS
@given(names, levels, intents, st.integers(512, 10**6))
def test_backpack_generation_wraps_at_512(name, level, intent, gen):
    got = decode("backpack", encode("backpack", strategy_tag(name), level, intent, gen))
    assert got.gen == gen % 512 and got.level == level


@SETTINGS
@given(names, names, levels, intents, gens, st.sampled_from(clientid.FORMATS))
def test_other_strategys_ids_are_not_ours(a, b, level, intent, gen, fmt):
    ta, tb = strategy_tag(a), strategy_tag(b)
    same = ta == tb if fmt != "backpack" else tag_bits(ta) == tag_bits(tb)
    got = decode(fmt, encode(fmt, ta, level, intent, gen))
    assert same_strategy(fmt, got, tb) == same


@SETTINGS
@given(st.text(max_size=40))
def test_foreign_string_ids_decode_to_none(text):
    # anything not shaped like ours: manual orders, other bots, web UI ids
    for fmt, pattern in (("binance", r"gx-[0-9a-z]{6}-\d{3}[exc]\d{1,20}"), ("okx", r"gx[0-9a-z]{6}\d{3}[exc]\d{1,19}")):
        if not re.fullmatch(pattern, text, flags=re.ASCII):
            assert decode(fmt, text) is None


@pytest.mark.parametrize("fmt,value", [
    ("binance", "web_8f1c2a9d0e"), ("binance", "x-abc123"), ("binance", "gx-abcdef-01e1"),
    ("binance", "gx-abcdef-001q1"), ("binance", ""), ("binance", None),
    ("okx", "e847386590ce4dBC"), ("okx", "gxabcdef001e"), ("okx", None),
    ("backpack", None), ("backpack", "not-a-number"), ("backpack", -1), ("backpack", 2**32),
    ("backpack", 0), ("backpack", 12345),  # intent bits 00: not an id gridctl makes
])
def test_foreign_ids_by_hand(fmt, value):
    assert decode(fmt, value) is None


def test_encode_by_hand():
    assert encode("binance", "abc123", 7, Intent.EXIT, 42) == "gx-abc123-007x42"
    assert encode("okx", "abc123", 7, Intent.ENTRY, 0) == "gxabc123007e0"
    bits = tag_bits("abc123")
    assert encode("backpack", "abc123", 7, Intent.CLOSE, 3) == (bits << 20) | (7 << 11) | (3 << 9) | 3


def test_encode_refuses_what_it_cannot_express():
    for bad in ((-1, 0), (clientid.MAX_LEVEL + 1, 0), (0, -1)):
        with pytest.raises(ValueError):
            encode("binance", "abc123", bad[0], Intent.ENTRY, bad[1])
    with pytest.raises(ValueError):
        encode("bybit", "abc123", 0, Intent.ENTRY, 0)


@pytest.mark.parametrize("fmt,limit", [("binance", 36), ("okx", 32)])
def test_encode_never_makes_an_id_it_cannot_read(fmt, limit):
    # regression: okx gen >= 10**19 and binance gen >= 10**20 encoded to ids decode rejected
    assert decode(fmt, encode(fmt, "abc123", 5, Intent.EXIT, 10**19 - 1)).gen == 10**19 - 1
    for gen in (10**19, 10**20 - 1, 10**20, 10**21, 10**22):
        try:
            cid = encode(fmt, "abc123", 5, Intent.EXIT, gen)
        except ValueError:
            continue  # refusing is fine; making an unreadable id is not
        assert len(cid) <= limit and decode(fmt, cid) == ClientId("abc123", 5, Intent.EXIT, gen)
    with pytest.raises(ValueError):
        encode(fmt, "abc123", 5, Intent.EXIT, 10**22)


@SETTINGS
@given(names, levels, intents, gens, st.sampled_from(["binance", "okx"]), st.data())
def test_near_miss_ids_decode_to_none(name, level, intent, gen, fmt, data):
    # one of ours, truncated or with one character changed, stays readable only if still well formed
    cid = encode(fmt, strategy_tag(name), level, intent, gen)
    i = data.draw(st.integers(0, len(cid) - 1))
    variant = data.draw(st.sampled_from([cid[:i], cid[:i] + data.draw(st.characters()) + cid[i + 1:],
                                         cid.upper(), "x" + cid]))
    pattern = r"gx-[0-9a-z]{6}-\d{3}[exc]\d{1,20}" if fmt == "binance" else r"gx[0-9a-z]{6}\d{3}[exc]\d{1,19}"
    if not re.fullmatch(pattern, variant, flags=re.ASCII):
        assert decode(fmt, variant) is None


@pytest.mark.parametrize("fmt,value", [("binance", "gx-abc123-007x42\n"), ("okx", "gxabc123007x42\n"),
                                       ("binance", "gx-abc123-\u0660\u0660\u0667x42")])
def test_decode_is_strict(fmt, value):
    # regression: re.match with '$' and unicode \d accepted these
    assert decode(fmt, value) is None
