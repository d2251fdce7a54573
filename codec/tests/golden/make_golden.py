#!/usr/bin/env python3
"""Golden MessagePack vectors for redpepper-codec, produced by Python msgpack.

Run with the Python that has RedPepper 0.3.4 (and so pydantic and msgpack)
installed, from this directory:

    /tmp/rpvenv/bin/python make_golden.py > vectors.txt

Each line of the output is `name kind hex`:

- kind `encode`: the bytes RedPepper writes for the message, i.e.
  `msgpack.packb(Model(**fields).model_dump())`. The Rust test builds the same
  message (by name, in tests/golden.rs), checks `encode()` byte for byte and
  that `decode()` gives the message back.
- kind `decode`: a payload no RedPepper encoder writes (keys reordered, `t` last,
  unknown keys), packed from a plain dict. The Rust test checks that `decode()`
  gives the expected message.

Where RedPepper's pydantic model rejects a message our codec accepts (Request
args that are not strings), the payload is packed from the equivalent dict and
the line is marked `# not valid for RedPepper` in a comment above it.
"""

import math
import sys

import msgpack

try:
    from redpepper.common import messages as rp
except ImportError:  # pragma: no cover - keeps the script usable without RedPepper
    rp = None

CODES = {
    "AgentHello": 10,
    "ManagerHello": 11,
    "Ping": 12,
    "Pong": 13,
    "Bye": 14,
    "Request": 20,
    "Response": 21,
    "Notification": 22,
}

UUID = "0f3c5b8e6a2d4e1f9b7c3a5d8e2f1a4b"
LONG_ASCII = "x" * 40  # str8 (32..255 bytes)
LONGER = "y" * 300  # str16
UNICODE = "héllo wörld ☕ 日本語 🌶"

TYPED_KWARGS = {
    "zero": 0,
    "fixint": 127,
    "u8": 200,
    "u16": 65535,
    "u32": 4294967295,
    "u64": 2**64 - 1,
    "i64max": 2**63 - 1,
    "neg1": -1,
    "negfix": -32,
    "i8": -33,
    "i16": -129,
    "i32": -32769,
    "i64": -(2**63),
    "float": 1.2345678,
    "negfloat": -0.5,
    "negzero": -0.0,
    "inf": math.inf,
    "true": True,
    "false": False,
    "nil": None,
    "bin": b"\x00\xff\x10",
    "bin16": bytes(range(256)) * 2,
    "unicode": UNICODE,
    "long": LONG_ASCII,
    "longer": LONGER,
    "empty_list": [],
    "empty_map": {},
    "list": [1, "two", 3.0, None, [], [True]],
    "nested": {"a": {"b": {"c": [1, {"d": "e"}]}}},
}

COMMAND_KWARGS = {
    "id": UUID,
    "cmdtype": "echo.Echo",
    "args": [],
    "kwargs": {"message": "hello", "reverse": False},
}

# (name, type, fields) in protocol field order.
ENCODE = [
    ("agent_hello_basic", "AgentHello", {"id": "webserver1", "version": "0.3.4", "credentials": "s3cret"}),
    ("agent_hello_unicode", "AgentHello", {"id": "agent_01-x", "version": "0.4.0", "credentials": UNICODE}),
    ("agent_hello_long", "AgentHello", {"id": "a" * 31, "version": "0.3.4+" + "b" * 40, "credentials": LONGER}),
    ("agent_hello_empty", "AgentHello", {"id": "", "version": "", "credentials": ""}),
    ("manager_hello_basic", "ManagerHello", {"version": "0.3.4"}),
    ("manager_hello_long", "ManagerHello", {"version": "0.4.0-" + "rc." * 20}),
    ("ping_zero", "Ping", {"data": 0}),
    ("ping_typical", "Ping", {"data": 482913}),
    ("ping_fixint_max", "Ping", {"data": 127}),
    ("ping_u8", "Ping", {"data": 200}),
    ("ping_u16", "Ping", {"data": 65535}),
    ("ping_u32", "Ping", {"data": 4294967295}),
    ("ping_i64_max", "Ping", {"data": 2**63 - 1}),
    ("ping_negfix", "Ping", {"data": -32}),
    ("ping_i8", "Ping", {"data": -33}),
    ("ping_i16", "Ping", {"data": -129}),
    ("ping_i32", "Ping", {"data": -32769}),
    ("ping_i64_min", "Ping", {"data": -(2**63)}),
    ("pong_typical", "Pong", {"data": 1000000}),
    ("pong_negative", "Pong", {"data": -1}),
    ("pong_big", "Pong", {"data": 2**40}),
    ("bye_basic", "Bye", {"reason": "shutting down"}),
    ("bye_auth", "Bye", {"reason": "authentication failed"}),
    ("bye_empty", "Bye", {"reason": ""}),
    ("bye_unicode_long", "Bye", {"reason": "au revoir ☕ " * 5}),
    ("request_command", "Request", {"id": UUID, "method": "command", "args": [], "kwargs": COMMAND_KWARGS}),
    ("request_empty", "Request", {"id": "1", "method": "ping", "args": [], "kwargs": {}}),
    ("request_string_args", "Request", {"id": UUID, "method": "echo", "args": ["a", "", "ü" * 40], "kwargs": {}}),
    ("request_typed_kwargs", "Request", {"id": UUID, "method": "typed", "args": [], "kwargs": TYPED_KWARGS}),
    ("request_many", "Request", {
        "id": UUID,
        "method": "m" * 32,
        "args": [str(i) for i in range(17)],
        "kwargs": {f"k{i:02}": i * 1000 for i in range(20)},
    }),
    ("request_nonstring_args", "Request", {
        "id": UUID,
        "method": "typed_args",
        "args": [1, -2, 3.5, None, True, b"\x01", ["x"], {"k": "v"}],
        "kwargs": {},
    }),
    ("response_nil", "Response", {"id": UUID, "success": True, "data": None}),
    ("response_error", "Response", {"id": UUID, "success": False, "data": "Method foo not found"}),
    ("response_map", "Response", {"id": UUID, "success": True, "data": {"output": "hello\n", "changed": True, "rc": 0}}),
    ("response_int", "Response", {"id": "r", "success": True, "data": -123456789}),
    ("response_float", "Response", {"id": "r", "success": True, "data": 1e300}),
    ("response_bin", "Response", {"id": "r", "success": True, "data": b"\x89PNG\r\n\x1a\n" * 40}),
    ("response_list", "Response", {"id": "r", "success": True, "data": ["a", 1, [2, [3, [4, []]]], {}]}),
    ("response_typed", "Response", {"id": "r", "success": True, "data": TYPED_KWARGS}),
    ("response_4k", "Response", {"id": UUID, "success": True, "data": "z" * 4096}),
    ("notification_progress", "Notification", {
        "type": "command_progress",
        "data": {"command_id": UUID, "current": 0, "total": 1, "message": "Starting"},
    }),
    ("notification_result", "Notification", {
        "type": "command_result",
        "data": {"id": UUID, "success": True, "changed": False, "output": "hello"},
    }),
    ("notification_nil", "Notification", {"type": "tick", "data": None}),
    ("notification_list", "Notification", {"type": "t" * 33, "data": [1, 2.5, "three", b"4"]}),
]

# Our extension, a Request `timeout` (seconds, float, after `kwargs`): RedPepper's
# model ignores the key, so these are packed from the dict (what our encoder must write).
EXTENSION = [
    ("request_timeout", "Request", {"id": UUID, "method": "command", "args": [], "kwargs": {}, "timeout": 300.0}),
    ("request_timeout_fraction", "Request", {
        "id": "1", "method": "ping", "args": ["x"], "kwargs": {"a": 1}, "timeout": 0.25,
    }),
]

# (name, dict to pack as is). Expected messages are in tests/golden.rs.
DECODE = [
    ("request_reordered", {"kwargs": {"b": 2, "a": 1}, "args": ["x"], "method": "ping", "id": "abc", "t": 20}),
    ("response_extra_keys", {
        "t": 21,
        "id": "r1",
        "extra": [1, {"deep": [None, 1.5, b"\x00"]}],
        "success": True,
        "zzz": b"\x00" * 40,
        "data": 5,
        "more": {"x": {"y": ["z" * 300]}},
    }),
    ("ping_t_last", {"data": 7, "foo": "bar", "t": 12}),
    ("agent_hello_shuffled", {"credentials": "c", "unknown": None, "t": 10, "version": "0.3.4", "id": "a1"}),
    ("notification_t_middle", {"data": {"k": [1]}, "t": 22, "ignored": 1, "type": "evt"}),
    ("bye_extra_containers", {"t": 14, "reason": "bye", "noise": [[], {}]}),
    ("manager_hello_only_unknown_then_fields", {"a": 1, "b": 2, "c": 3, "version": "1.0", "t": 11}),
    ("request_timeout_int", {"t": 20, "id": "a", "method": "m", "args": [], "kwargs": {}, "timeout": 30}),
    ("request_timeout_first", {"timeout": 1.5, "kwargs": {}, "args": [], "method": "m", "id": "a", "t": 20}),
]


def model_dump(type_name, fields):
    """The dict RedPepper would pack, and whether its model accepted the message."""
    plain = {"t": CODES[type_name], **fields}
    if rp is None:
        return plain, False
    try:
        dumped = getattr(rp, type_name)(**fields).model_dump()
    except ValueError:
        return plain, False
    assert list(dumped) == list(plain), (dumped.keys(), plain.keys())
    assert msgpack.packb(dumped) == msgpack.packb(plain), type_name
    return dumped, True


def main():
    out = sys.stdout
    out.write("# Generated by make_golden.py with msgpack %s; do not edit.\n" % (msgpack.version,))
    out.write("# name kind hex\n")
    for name, type_name, fields in ENCODE:
        data, validated = model_dump(type_name, fields)
        if not validated:
            out.write("# not valid for RedPepper: %s\n" % name)
        out.write("%s encode %s\n" % (name, msgpack.packb(data).hex()))
    for name, type_name, fields in EXTENSION:
        out.write("# our extension, ignored by RedPepper: %s\n" % name)
        data = {"t": CODES[type_name], **fields}
        out.write("%s encode %s\n" % (name, msgpack.packb(data).hex()))
    for name, data in DECODE:
        out.write("%s decode %s\n" % (name, msgpack.packb(data).hex()))


if __name__ == "__main__":
    main()
