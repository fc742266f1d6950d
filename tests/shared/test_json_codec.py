"""The JSON of the hot paths (orjson) writes what the standard library wrote: a record staged by this
version has the key it had under earlier ones, so a re-run still skips what an earlier one loaded."""

from __future__ import annotations

import json
import math

import pytest

from shared.envelope import content_digest, idempotency_key
from shared.json_codec import canonical_content, payload_of, payload_text

SURROGATES = range(0xD800, 0xE000)


def _stdlib(entity: str, fields: dict[str, str]) -> bytes:
    """How canonical content was written before orjson."""
    return json.dumps([entity, sorted(fields.items())], ensure_ascii=False, separators=(",", ":")).encode()


def test_canonical_content_is_the_standard_librarys_bytes_for_every_character() -> None:
    differ = []
    for code in range(0x110000):
        if code in SURROGATES:
            continue
        char = chr(code)
        fields = {char: char, f"k{char}\"\\\n": char * 3}
        if canonical_content(char, fields) != _stdlib(char, fields):
            differ.append(hex(code))
    assert differ == []


def test_a_digest_and_key_are_those_an_earlier_version_gave_the_same_record() -> None:
    # computed by the standard-library implementation this replaces
    digest = content_digest("Contact", {"ContactName": "Zoë & Søn", "User": 'ACME\t"1"', "Note": "\u2028\x7f\x00"})
    assert digest == "401d332f1fe5b3137a6ee58960a4d4437a6fbeee6c76329b97357790fde3fb6a"
    assert idempotency_key(digest, 2) == "6dbbfecf4ba99c4a6cf46ba388ed79bfae7aba27b8b6b977b97fe9cd0041b7df"


def test_a_lone_surrogate_fails_as_it_did_with_the_standard_library() -> None:
    with pytest.raises(UnicodeEncodeError):
        canonical_content("User", {"Name": "\ud800"})


@pytest.mark.parametrize("value", ["plain", "Zoë & Søn", "tab\tnew\nline\x00nul\x1f", "\u2028\u2029", "😀 ☃", ""])
def test_a_payload_reads_back_as_written(value: str) -> None:
    payload = {"Name": value, value or "empty": "x"}
    text = payload_text(payload)
    assert json.loads(text) == payload
    assert payload_of(text) == payload
    assert payload_of(text.encode()) == payload


def test_what_orjson_will_not_write_or_read_is_left_to_the_standard_library() -> None:
    assert json.loads(payload_text({"n": 2**70})) == {"n": 2**70}  # beyond 64 bits: orjson refuses
    assert math.isnan(payload_of('{"n": NaN}')["n"])  # not JSON, but what json.dumps writes for a NaN
    already = {"Name": "x"}
    assert payload_of(already) is already  # a driver that decoded it already
