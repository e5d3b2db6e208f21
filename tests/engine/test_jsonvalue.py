"""The two parsers behind value validation agree: simdjson only ever accepts what orjson accepts."""

from __future__ import annotations

import random

import orjson
import pytest

from aep_provider.engine.jsonvalue import MAX_NESTING_DEPTH, check_object, decode_object

SEEDS = [
    b'{"a":[1,2,{"b":null}],"c":"x\\u00e9y","d":-1.5e10,"e":true,"f":false}',
    b'{"k":"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80","n":[[[[]]]],"o":{}}',
    b'{"header":{"schemaRef":{"id":"https://ns.adobe.com/t/schemas/1"}},"body":{"xdmEntity":{"_id":"1"}}}',
]
ALPHABET = b'{}[]",:\\0123456789.eE+-tfnaluNI \t\n\x00\xff\xc3\xa9\xed\xa0\x80\xef\xbb\xbf'


def _orjson_accepts(value: bytes) -> bool:
    try:
        return isinstance(orjson.loads(value), dict)
    except orjson.JSONDecodeError:
        return False


def _accepted(value: bytes) -> bool:
    try:
        check_object(value)
    except ValueError:
        return False
    return True


@pytest.mark.parametrize(
    "value",
    [
        b'{"a":"\xff"}',
        b'{"a":NaN}',
        b'{"a":-Infinity}',
        b"{} {}",
        b'{"a":1e400}',
        b'{"a":"\\ud800"}',
        b'{"a":"\x01"}',
        b"[1]",
        b"",
        b"\xef\xbb\xbf{}",  # simdjson alone would accept the byte order mark
        b"{}\x00",
        b'{"a":01}',
    ],
)
def test_values_both_parsers_refuse_are_refused_with_a_reason(value):
    with pytest.raises(ValueError, match=r"^value is"):
        check_object(value)


def test_an_integer_past_64_bits_is_accepted_as_orjson_accepts_it():
    value = b'{"a":%d}' % 2**70
    assert _orjson_accepts(value) and _accepted(value)


def test_nesting_is_bounded_on_the_fast_path_too():
    deep = b'{"a":' + b"[" * MAX_NESTING_DEPTH + b"]" * MAX_NESTING_DEPTH + b"}"
    with pytest.raises(ValueError, match="nested too deeply"):
        check_object(deep)
    check_object(b'{"a":' + b"[" * (MAX_NESTING_DEPTH - 1) + b"]" * (MAX_NESTING_DEPTH - 1) + b"}")


def test_fuzzed_values_are_judged_as_orjson_judges_them():
    rnd = random.Random(20261202)
    disagreements = []
    for _ in range(20_000):
        value = bytearray(rnd.choice(SEEDS))
        for _ in range(rnd.randint(1, 3)):
            pos = rnd.randrange(len(value) + 1)
            op = rnd.random()
            if op < 0.4 and pos < len(value):
                value[pos] = rnd.choice(ALPHABET)
            elif op < 0.7:
                value[pos:pos] = bytes([rnd.choice(ALPHABET)])
            elif pos < len(value):
                del value[pos]
        value = bytes(value)
        if _accepted(value) != _orjson_accepts(value):
            disagreements.append(value)
    assert disagreements == []


def test_decode_object_returns_the_object():
    assert decode_object(b'{"a":1}') == {"a": 1}
