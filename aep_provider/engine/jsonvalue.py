"""
Strict validation of a record's value as one JSON object, with a reason for every refusal.

Two parsers, one set of rules. simdjson validates without building Python objects (about 0.4 µs
for a 1 KB event, against 2 µs for orjson, which builds them); it only ever *accepts*. Whatever it
refuses goes to orjson, which decides and says why: so orjson's rules hold, and a value simdjson
alone refuses (an integer past 64 bits) is still accepted. The one input simdjson accepts and
orjson refuses, a leading UTF-8 byte order mark, never reaches simdjson
(``tests/engine/test_jsonvalue.py`` checks the two agree on a fuzzed corpus).
"""

from __future__ import annotations

import threading
from typing import Any

import orjson
import simdjson

#: Deepest nesting of objects and arrays a value may have. orjson and simdjson stop at 1,024 levels
#: without crashing, but a message is parsed again downstream: the envelope adds up to 5 levels
#: (``messages`` array, body, ``xdmEntity``), Jackson's default limit is 1,000 and Python's decoder
#: recurses once per level within a 1,000-frame limit, so 800 leaves room. No XDM schema comes
#: near it, and a value shorter than 1,600 bytes cannot reach it (each level takes two brackets):
#: a 1 KB event is never counted.
MAX_NESTING_DEPTH = 800

#: Tokens a strict parser refuses where a JSON value is expected; named in the rejection reason.
_NON_FINITE = (b"NaN", b"Infinity", b"-Infinity")


def _depth_over(obj: Any, limit: int) -> bool:
    """Whether ``obj`` nests objects/arrays more than ``limit`` levels deep (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(obj, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            return True
        children = node.values() if isinstance(node, dict) else node
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return False


def _parse_error(value: bytes, err: orjson.JSONDecodeError) -> ValueError:
    """The rejection for a value orjson refused, in the wording ``summary.reason_class`` counts."""
    if "depth limit" in err.msg:
        return ValueError(f"value is JSON nested too deeply (more than {MAX_NESTING_DEPTH} levels)")
    if "UTF-8" in err.msg:
        # orjson does not say where: the stdlib decoder does (only on this failure path).
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as uerr:
            return ValueError(f"value is not valid UTF-8 (byte {uerr.start})")
    token = next((t for t in _NON_FINITE if value.startswith(t, err.pos)), None)
    if token == b"Infinity" and value[err.pos - 1 : err.pos] == b"-":
        token = b"-Infinity"  # orjson points past the sign
    what = f"{token.decode()} (JSON has no NaN or Infinity)" if token else err.msg
    return ValueError(f"value is not valid JSON: {what} at line {err.lineno} column {err.colno}")


_BOM = b"\xef\xbb\xbf"
#: simdjson parsers are not thread-safe; one per thread that validates.
_parsers = threading.local()


def check_object(value: bytes) -> None:
    """Raise ValueError saying what is wrong unless ``value`` is one UTF-8 JSON object within the rules."""
    # A value that may nest too deeply (see decode_object) and a byte order mark take the slow path.
    if not value.startswith(_BOM) and (
        len(value) <= 2 * MAX_NESTING_DEPTH or value.count(b"{") + value.count(b"[") <= MAX_NESTING_DEPTH
    ):
        parser = getattr(_parsers, "parser", None)
        if parser is None:
            parser = _parsers.parser = simdjson.Parser()
        try:
            # The document is dropped at once: the parser refuses to parse again while one lives.
            is_object = isinstance(parser.parse(value), simdjson.Object)
        except Exception:  # noqa: S110 - refused: orjson decides below, with the reason
            pass
        else:
            if is_object:
                return
    decode_object(value)


def decode_object(value: bytes) -> dict[str, Any]:
    """
    Parse ``value`` as one UTF-8 JSON object; raise ValueError saying what is wrong.

    orjson is strict where the rules need it: invalid UTF-8, NaN/Infinity (and numbers that
    overflow to infinity), lone surrogates and trailing data are errors, and it stops at 1,024
    levels without recursing on the C stack. It parses the bytes as they are (no decoded copy).
    """
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as err:
        raise _parse_error(value, err) from None
    if not isinstance(obj, dict):
        raise ValueError(f"value is JSON {type(obj).__name__}, not an object")
    # Each level takes an opening and a closing bracket, so a short value cannot be too deep;
    # counting brackets (C speed, ~0.7 µs per KB) clears almost every longer one without a walk.
    if (
        len(value) > 2 * MAX_NESTING_DEPTH
        and value.count(b"{") + value.count(b"[") > MAX_NESTING_DEPTH
        and _depth_over(obj, MAX_NESTING_DEPTH)
    ):
        raise ValueError(f"value is JSON nested too deeply (more than {MAX_NESTING_DEPTH} levels)")
    return obj
