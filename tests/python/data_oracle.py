#!/usr/bin/env python3
"""Answer agents' requests exactly as the real RedPepper 0.3.4 manager does.

The differential test of our manager's ``custom`` method
(tests/tests/it/states/differential.rs) asks this script and our manager the
same questions about the same data directory and compares the answers.

Usage: python data_oracle.py DATA_DIR < questions.json

stdin is a JSON list of questions, each
  {"agent": ID, "method": "custom" (default), "args": [...], "kwargs": {...}}
stdout is one JSON line per question, in order:
  {"ok": VALUE}       the Response had success=true and this data
  {"error": TEXT}     the Response had success=false (data is the error text)
  {"noanswer": TEXT}  the manager sent no Response (e.g. a value msgpack cannot
                      encode: the Python manager only logs the failure)

VALUE is in a canonical JSON form that keeps MessagePack distinctions: null,
booleans, integers and strings as themselves, lists as lists, a float as
{"float_bits": <IEEE-754 bits as an integer>}, bytes as {"bytes_hex": "..."},
a mapping as {"map": [[KEY, VALUE], ...]} in order.

Each question runs through the manager's real request path:
``Connection._rpc_handle_request`` -> ``AgentConnection.custom_request`` ->
``redpepper.requests.NAME.call`` -> ``DataManager``, with the manager's
``init_rpc()`` settings (error details hidden, as in production). The working
directory is / (not the data directory), as for a manager service, so the
DataManager's YAML cache behaves as in production (it never hits).
"""

from __future__ import annotations

import json
import logging
import os
import pathlib
import struct
import sys

import msgpack
import trio

from redpepper.common.connection import Connection
from redpepper.common.messages import Request
from redpepper.manager.data import DataManager
from redpepper.manager.manager import AgentConnection

logging.disable(logging.CRITICAL)


def canon(v):
    """The canonical JSON form of a value (see the module docs)."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return {"float_bits": struct.unpack("<Q", struct.pack("<d", v))[0]}
    if isinstance(v, (bytes, bytearray)):
        return {"bytes_hex": bytes(v).hex()}
    if isinstance(v, (list, tuple)):
        return [canon(x) for x in v]
    if isinstance(v, dict):
        return {"map": [[canon(k), canon(x)] for k, x in v.items()]}
    return {"python": repr(v)}


class FakeManager:
    pass


def connection(data_manager: DataManager, agent_id: str):
    manager = FakeManager()
    manager.data_manager = data_manager
    ac = AgentConnection.__new__(AgentConnection)
    ac.manager = manager
    ac.agent_id = agent_id
    conn = Connection.__new__(Connection)
    conn.message_handlers = {}
    sent = []

    async def send_message(message):
        # What Connection.send_message does first: encode; a failure there means
        # no Response reaches the agent.
        msgpack.packb(message.model_dump())
        sent.append(message)

    conn.send_message = send_message
    conn.init_rpc()  # as Manager does: expose_error_info=False
    conn.rpc.set_handler("custom", ac.custom_request)
    return conn, sent


async def answer(data_manager: DataManager, question: dict) -> dict:
    conn, sent = connection(data_manager, question["agent"])
    request = Request(
        id="q",
        method=question.get("method", "custom"),
        args=question.get("args", []),
        kwargs=question.get("kwargs", {}),
    )
    try:
        await conn._rpc_handle_request(request)
    except Exception as e:  # the receive loop would log this and go on
        return {"noanswer": f"{type(e).__name__}: {e}"}
    if not sent:
        return {"noanswer": "no Response sent"}
    response = sent[0]
    if response.success:
        return {"ok": canon(response.data)}
    return {"error": response.data}


async def main() -> None:
    base = pathlib.Path(sys.argv[1]).resolve()
    os.chdir("/")
    questions = json.load(sys.stdin)
    data_manager = DataManager(base)
    for question in questions:
        print(json.dumps(await answer(data_manager, question)), flush=True)


if __name__ == "__main__":
    trio.run(main)
