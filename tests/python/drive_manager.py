#!/usr/bin/env python3
"""Run a real RedPepper 0.3.4 manager in-process and drive it for tests.

The Python manager only sends commands to agents through its web API or
in-process, so the end-to-end tests use this driver: it builds
``redpepper.manager.manager.Manager`` from a config file (exactly as the
``redpepper-manager`` command does), runs it under trio, and reports what
happens as one JSON object per line on stdout. Logging goes to stderr in the
format of the ``redpepper-manager`` command.

Events written to stdout (every line is a JSON object with key "event"):

  {"event": "listening", "host": H, "port": P}   agent server bound (real port,
                                                  also when bind_port is 0)
  {"event": "connected", "agent": ID, "ip": IP}  handshake done, commands can go
  {"event": "bus", "type": T, ...}               every manager event-bus event
                                                  (auth_success, auth_failure,
                                                  disconnected, command_progress,
                                                  command_result, ...)
  {"event": "command_sent", "agent": ID, "id": CID, "tag": TAG}
  {"event": "result", "agent": ID, "id": CID, "success": B, "changed": B,
   "output": S, "tag": TAG}
  {"event": "rpc_result", "agent": ID, "ok": B, "data": X, "tag": TAG}
  {"event": "agents", "agents": [ID, ...], "tag": TAG}
  {"event": "error", "message": S, "tag": TAG}
  {"event": "shutdown"}                          manager.shutdown() done (Bye sent)
  {"event": "exit", "code": N}

One-shot use (wait for an agent, run a command, print the result, keep serving):

  python drive_manager.py --config-file manager.yml \
      --agent a1 --command echo.Echo --kwargs '{"message": "hi"}' [--repeat N] [--exit]

Interactive use (--stdin): one JSON object per line on stdin, each with "op":

  {"op": "wait_agent", "agent": ID}                    -> connected (again) when ready
  {"op": "command", "agent": ID, "cmdtype": "echo.Echo", "args": [], "kwargs": {..}}
                                                       -> command_sent, then result
  {"op": "rpc", "agent": ID, "method": M, "args": [], "kwargs": {}}
                                                       -> rpc_result (raw Request)
  {"op": "agents"}                                     -> agents
  {"op": "shutdown"}                                   -> shutdown, exit
Every op may carry a "tag" that is copied into its answers. End of stdin shuts
the manager down as "shutdown" does.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Any

import trio

from redpepper.manager import manager as manager_module
from redpepper.manager.config import ManagerConfig
from redpepper.manager.manager import AgentConnection, Manager

logger = logging.getLogger("drive_manager")


def emit(event: str, **fields: Any) -> None:
    """Write one event line to stdout and flush it."""
    fields = {"event": event, **fields}
    sys.stdout.write(json.dumps(fields, default=str) + "\n")
    sys.stdout.flush()


class DrivenManager(Manager):
    """A Manager that reports its listening address and its connected agents."""

    def __init__(self, config: ManagerConfig):
        super().__init__(config)
        # command id -> result data, recorded before the manager's own handlers run
        self.results: dict[str, dict[str, Any]] = {}
        self.agent_ready: dict[str, trio.Event] = {}

    async def _serve(self, listeners, handler_nursery) -> None:
        for listener in listeners:
            host, port = listener.transport_listener.socket.getsockname()[:2]
            emit("listening", host=host, port=port)
        await super()._serve(listeners, handler_nursery)

    def ready_event(self, agent: str) -> trio.Event:
        event = self.agent_ready.get(agent)
        if event is None or (event.is_set() and not self.is_connected(agent)):
            event = self.agent_ready[agent] = trio.Event()
            if self.is_connected(agent):
                event.set()
        return event

    def is_connected(self, agent: str) -> bool:
        return any(
            conn.agent_id == agent and hasattr(conn.conn, "rpc")
            for conn in self.connections
        )

    def connection(self, agent: str) -> AgentConnection | None:
        for conn in self.connections:
            if conn.agent_id == agent and hasattr(conn.conn, "rpc"):
                return conn
        return None


def install_hooks(manager: DrivenManager) -> None:
    """Wrap AgentConnection methods to observe handshakes and results."""
    original_handshake = AgentConnection.handshake
    original_result = AgentConnection.handle_command_result

    async def handshake(self: AgentConnection) -> None:
        await original_handshake(self)
        if self.agent_id is not None and hasattr(self.conn, "rpc"):
            emit("connected", agent=self.agent_id, ip=self.conn.remote_address[0])
            manager.ready_event(self.agent_id).set()

    async def handle_command_result(self: AgentConnection, message) -> None:
        data = message.data
        manager.results[data["id"]] = {
            "success": data["success"],
            "changed": data["changed"],
            "output": data["output"],
        }
        await original_result(self, message)

    manager_module.AgentConnection.handshake = handshake  # type: ignore[method-assign]
    manager_module.AgentConnection.handle_command_result = handle_command_result  # type: ignore[method-assign]


async def watch_event_bus(manager: Manager) -> None:
    channel = manager.event_bus.add_consumer()
    async for event in channel:
        fields = {k: v for k, v in event.items() if k != "type"}
        emit("bus", type=event.get("type"), **fields)


async def wait_agent(manager: DrivenManager, agent: str, timeout: float, tag: Any) -> bool:
    with trio.move_on_after(timeout):
        await manager.ready_event(agent).wait()
        return True
    emit("error", message=f"agent {agent} did not connect within {timeout} s", tag=tag)
    return False


async def run_command(
    manager: DrivenManager,
    agent: str,
    cmdtype: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float,
    tag: Any,
) -> bool:
    if not await wait_agent(manager, agent, timeout, tag):
        return False
    try:
        command_id = await manager.send_command(agent, cmdtype, args, kwargs)
    except Exception as e:  # the agent refused the command request
        emit("error", message=f"send_command failed: {e!r}", tag=tag)
        return False
    if command_id is None:
        emit("error", message=f"agent {agent} not connected", tag=tag)
        return False
    emit("command_sent", agent=agent, id=command_id, tag=tag)
    recorded = manager.results.get(command_id)
    if recorded is None:
        try:
            result = await manager.await_command_result(command_id, timeout=timeout)
        except trio.TooSlowError:
            emit("error", message=f"no result for {command_id} within {timeout} s", tag=tag)
            return False
        recorded = {
            "success": result.succeeded,
            "changed": result.changed,
            "output": result.output,
        }
    emit("result", agent=agent, id=command_id, tag=tag, **recorded)
    return True


async def run_rpc(
    manager: DrivenManager,
    agent: str,
    method: str,
    args: list[Any],
    kwargs: dict[str, Any],
    timeout: float,
    tag: Any,
) -> None:
    if not await wait_agent(manager, agent, timeout, tag):
        return
    conn = manager.connection(agent)
    if conn is None:
        emit("error", message=f"agent {agent} not connected", tag=tag)
        return
    ok, data = False, None
    with trio.move_on_after(timeout) as scope:
        try:
            data = await conn.conn.rpc.call(method, *args, **kwargs)
            ok = True
        except Exception as e:
            data = str(e)
    if scope.cancelled_caught:
        emit("error", message=f"no response to {method} within {timeout} s", tag=tag)
        return
    emit("rpc_result", agent=agent, ok=ok, data=data, tag=tag)


async def shutdown(manager: Manager) -> None:
    await manager.shutdown()
    emit("shutdown")


async def read_stdin_ops(manager: DrivenManager, timeout: float, nursery) -> None:
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buffer = b""
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            break
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            if not line.strip():
                continue
            try:
                op = json.loads(line)
            except ValueError as e:
                emit("error", message=f"bad op line: {e}", tag=None)
                continue
            if op.get("op") == "shutdown":
                await shutdown(manager)
                return
            nursery.start_soon(do_op, manager, op, timeout)
    await shutdown(manager)


async def do_op(manager: DrivenManager, op: dict[str, Any], timeout: float) -> None:
    tag = op.get("tag")
    timeout = float(op.get("timeout", timeout))
    kind = op.get("op")
    if kind == "wait_agent":
        if await wait_agent(manager, op["agent"], timeout, tag):
            emit("connected", agent=op["agent"], tag=tag)
    elif kind == "command":
        await run_command(
            manager,
            op["agent"],
            op["cmdtype"],
            op.get("args", []),
            op.get("kwargs", {}),
            timeout,
            tag,
        )
    elif kind == "rpc":
        await run_rpc(
            manager,
            op["agent"],
            op["method"],
            op.get("args", []),
            op.get("kwargs", {}),
            timeout,
            tag,
        )
    elif kind == "agents":
        emit("agents", agents=manager.connected_agents(), tag=tag)
    else:
        emit("error", message=f"unknown op {kind!r}", tag=tag)


async def main_async(args: argparse.Namespace, manager: DrivenManager) -> int:
    code = 0
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch_event_bus, manager)
        nursery.start_soon(manager.run)
        await manager.running.wait()
        if args.agent and args.command:
            kwargs = json.loads(args.kwargs)
            cmd_args = json.loads(args.args)
            for i in range(args.repeat):
                ok = await run_command(
                    manager, args.agent, args.command, cmd_args, kwargs, args.timeout, i
                )
                if not ok:
                    code = 1
                    break
            if args.exit:
                await shutdown(manager)
                nursery.cancel_scope.cancel()
        elif args.agent:
            if not await wait_agent(manager, args.agent, args.timeout, None):
                code = 1
        if args.stdin:
            await read_stdin_ops(manager, args.timeout, nursery)
            nursery.cancel_scope.cancel()
    return code


def main() -> None:
    parser = argparse.ArgumentParser("drive_manager", description=__doc__.split("\n")[0])
    parser.add_argument("--config-file", required=True, help="manager.yml")
    parser.add_argument("-c", "--config", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument(
        "-l",
        "--log-level",
        default="INFO",
        choices=["TRACE", "DEBUG", "INFO", "WARN", "ERROR"],
    )
    parser.add_argument("--agent", help="agent id to wait for (and to command)")
    parser.add_argument("--command", help="operation to run, e.g. echo.Echo")
    parser.add_argument("--args", default="[]", help="JSON list of positional args")
    parser.add_argument("--kwargs", default="{}", help="JSON map of keyword args")
    parser.add_argument("--repeat", type=int, default=1, help="run the command N times")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per wait")
    parser.add_argument("--exit", action="store_true", help="shut down after the command")
    parser.add_argument("--stdin", action="store_true", help="read JSON ops from stdin")
    args = parser.parse_args()

    fmt = "{levelname:<8} {name:<32} {message}"
    logging.addLevelName(5, "TRACE")
    logging.basicConfig(level=args.log_level, style="{", format=fmt, stream=sys.stderr)

    overrides = dict(kv.split("=", 1) for kv in args.config)
    config = ManagerConfig.from_file(args.config_file, overrides)
    manager = DrivenManager(config)
    install_hooks(manager)
    code = 1
    try:
        code = trio.run(main_async, args, manager)
    except KeyboardInterrupt:
        code = 130
    emit("exit", code=code)
    sys.exit(code)


if __name__ == "__main__":
    main()
