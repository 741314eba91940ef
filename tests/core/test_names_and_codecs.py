"""Job type names, priorities, retry delays and payload codecs (no server needed)."""

from __future__ import annotations

import json
import math
import pkgutil

import pytest

import kqueue
from kqueue import InvalidJobTypeError, PayloadError, RetryPolicy, ValidationError
from kqueue.job import check_delay, check_u32, tube_for, validate_tube_prefix
from kqueue.serialization import CodecRegistry, JsonCodec, decode_body, encode_body


def test_public_api_is_exactly_all() -> None:
    submodules = {info.name for info in pkgutil.iter_modules(kqueue.__path__)}
    # "@py_builtins" and the like appear when pytest rewrites the installed package.
    public = {name for name in dir(kqueue) if not name.startswith(("_", "@"))} - submodules
    assert public == set(kqueue.__all__) - {"__version__"}


def test_priorities_keep_the_original_values_on_module_and_class() -> None:
    expected = {"URGENT": 8000, "HIGH": 9000, "NORMAL": 10000, "LOW": 11000, "BULK": 12000}
    for name, value in expected.items():
        assert getattr(kqueue, f"PRIO_{name}") == value
        assert getattr(kqueue.KQueue, f"PRIO_{name}") == value


@pytest.mark.parametrize("name", ["a", "email.send", "x_y-z", "A+b/c;d$e(f)", "9" * 197])
def test_valid_job_type_becomes_prefixed_tube(name: str) -> None:
    assert tube_for(name, "kq-") == "kq-" + name


@pytest.mark.parametrize(
    "name",
    ["", "has space", "tab\t", "jöb", "emoji😀", "new\nline", "x" * 198, "star*", "back\\slash"],
)
def test_invalid_job_type_is_refused(name: str) -> None:
    with pytest.raises(InvalidJobTypeError):
        tube_for(name, "kq-")


def test_job_type_length_counts_bytes_after_the_prefix() -> None:
    assert len(tube_for("x" * 200, "")) == 200
    with pytest.raises(InvalidJobTypeError, match="at most 197"):
        tube_for("x" * 198, "kq-")


def test_job_type_may_not_make_a_tube_starting_with_dash() -> None:
    with pytest.raises(InvalidJobTypeError):
        tube_for("-x", "")
    assert tube_for("-x", "kq") == "kq-x"


def test_job_type_must_be_str() -> None:
    with pytest.raises(InvalidJobTypeError):
        tube_for(b"bytes", "kq-")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["-kq", "k q", "ü-", "x" * 200])
def test_invalid_prefix_is_refused(prefix: str) -> None:
    with pytest.raises(InvalidJobTypeError):
        validate_tube_prefix(prefix)


@pytest.mark.parametrize("value", [-1, 2**32, 1.5, "1", True, None])
def test_priority_outside_u32_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        check_u32("priority", value)


def test_u32_bounds_are_accepted() -> None:
    assert check_u32("priority", 0) == 0
    assert check_u32("priority", 2**32 - 1) == 2**32 - 1


@pytest.mark.parametrize("value", [-1, -0.5, math.nan, math.inf, "3", True])
def test_bad_delay_is_refused(value: object) -> None:
    with pytest.raises(ValidationError):
        check_delay(value)


def test_fractional_delay_rounds_up_to_whole_seconds() -> None:
    assert check_delay(0) == 0
    assert check_delay(0.2) == 1
    assert check_delay(2.0) == 2


def test_retry_delays_grow_exponentially_up_to_the_cap() -> None:
    policy = RetryPolicy(base_delay=2, max_delay=10, jitter=False)
    assert [policy.delay_for(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]


def test_retry_jitter_stays_within_upper_half() -> None:
    policy = RetryPolicy(base_delay=8, max_delay=8)
    delays = {policy.delay_for(1) for _ in range(200)}
    assert min(delays) >= 4
    assert max(delays) <= 8
    assert len(delays) > 1


def test_retry_budget_buries_at_max_attempts() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert not policy.should_bury(2)
    assert policy.should_bury(3)


@pytest.mark.parametrize("kwargs", [{"max_attempts": 0}, {"base_delay": 5, "max_delay": 1}])
def test_invalid_retry_policy_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_json_payload_round_trips_and_bytes_pass_raw() -> None:
    codecs = CodecRegistry(JsonCodec())
    name, data = codecs.encode({"a": [1, "é", None]})
    assert name == "json"
    assert codecs.decode(name, data) == {"a": [1, "é", None]}
    assert codecs.encode(b"\x00\xff") == ("raw", b"\x00\xff")


@pytest.mark.parametrize(
    "payload",
    [{"a": [1, 2.5, -0.0, None, True, 'é\n\u2028"\\']}, "x", 10**30, 1e-7, {1: 2}, [], {}],
)
def test_json_bytes_and_values_are_those_of_the_json_module(payload: object) -> None:
    # The codec calls the json module's C encoder and scanner directly: what it writes and
    # reads stays exactly what json.dumps / json.loads give with its options.
    expected = json.dumps(payload, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    data = JsonCodec().encode(payload)
    assert data == expected.encode()
    assert JsonCodec().decode(data) == json.loads(expected)
    assert JsonCodec().decode(b" \n" + data + b"\t") == json.loads(expected)


def _cyclic() -> list[object]:
    cycle: list[object] = []
    cycle.append(cycle)
    return cycle


@pytest.mark.parametrize(
    "payload",
    [object(), {1, 2}, math.nan, {"x": b"bytes"}, {"x": -math.inf}, {(1, 2): 3}, _cyclic()],
)
def test_payload_the_codec_cannot_encode_is_a_payload_error(payload: object) -> None:
    with pytest.raises(PayloadError):
        CodecRegistry(JsonCodec()).encode(payload)


def test_unknown_codec_or_corrupt_data_is_a_payload_error() -> None:
    codecs = CodecRegistry(JsonCodec())
    with pytest.raises(PayloadError):
        codecs.decode("pickle", b"x")
    for corrupt in (b"{not json", b"", b"[1,", b"1 x", b"\xff"):
        with pytest.raises(PayloadError):
            codecs.decode("json", corrupt)


def test_body_round_trips_and_foreign_bodies_are_recognised() -> None:
    key = "0" * 32
    body = encode_body(
        "i", key=key, codec="json", priority=7, ttr=9, job_type="t.x", payload=b"[1]\n"
    )
    parsed = decode_body(body)
    assert parsed is not None
    assert (parsed.mode, parsed.key, parsed.priority, parsed.ttr) == ("i", key, 7, 9)
    assert (parsed.job_type, parsed.payload) == ("t.x", b"[1]\n")
    for foreign in [b"", b"hello", b"kq1 i short json 1 1 t\n", body.replace(b"kq1", b"kq2")]:
        assert decode_body(foreign) is None
    reference = encode_body("r", key=key, codec="json", priority=1, ttr=1, job_type="t")
    assert decode_body(reference + b"junk") is None
