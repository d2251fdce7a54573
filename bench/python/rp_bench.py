#!/usr/bin/env python3
"""The RedPepper 0.3.4 side of redpepper-bench: the baseline peers, run by the
Rust orchestrator (bench/src/workloads/) in the scratch world it prepared.

Everything here is RedPepper's own code: the Manager class (with its API server,
parked on 127.0.0.1:0, as it cannot be turned off), the Agent class, and their
Connection / RPC layer. The only additions are an ``echo`` RPC method on both
sides (RedPepper has none; it answers ``{"args": [...], "kwargs": {...}}``, the
shape our peers answer) and the timing loops.

Modes (each pins itself to ``--cpu`` before trio starts, and exits when stdin
closes):

  pair-server --work DIR [--drive TASKS]   a Manager; with --drive it calls
                                           ``echo`` on agent ``bench``
  pair-client --work DIR --port P [--drive TASKS]
                                           an Agent ``bench``; with --drive it
                                           calls ``echo`` on the manager
  manager --work DIR                       a Manager for the fleet workloads;
                                           stdin: ``count``, ``fanout``, ``quit``
  codec [--secs S]                         encode/decode timings per type

Output: one JSON object per line on stdout, ``{"ready": {"port": P, "pid": N}}``,
``{"result": {...}}`` (the TaskResult of bench/src/tasks.rs), ``{"done": true}``,
``{"agents": N}``, ``{"fanout": {...}}``, ``{"codec": [...]}``, ``{"error": S}``.
TASKS is the JSON list of bench/src/tasks.rs ``Task`` values; only ``calls``
tasks with payload 0 are supported (RedPepper validates ``args`` as strings).
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import resource
import sys
import threading
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

SECRET = "redpepper-bench-secret"
PAIR_AGENT = "bench"

_emit_lock = threading.Lock()


def emit(key: str, value: Any) -> None:
    with _emit_lock:
        sys.stdout.write(json.dumps({key: value}, default=str) + "\n")
        sys.stdout.flush()


def pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for want in (1 << 16, hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, max(want, hard)))
            return
        except (ValueError, OSError):
            continue


def watch_stdin(on_line: Callable[[str], None] | None = None) -> None:
    """Exit the process when stdin closes; hand other lines to ``on_line``."""

    def loop() -> None:
        for line in sys.stdin:
            line = line.strip()
            if line == "quit":
                break
            if on_line is not None:
                try:
                    on_line(line)
                except Exception as e:  # report, keep serving
                    emit("error", repr(e))
        sys.stdout.flush()
        os._exit(0)

    threading.Thread(target=loop, daemon=True).start()


def quantile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank quantile (as bench/src/stats.rs), seconds -> microseconds."""
    if not sorted_values:
        return None
    rank = min(max(math.ceil(q * len(sorted_values)), 1), len(sorted_values))
    return sorted_values[rank - 1] * 1e6


async def run_calls(call: Callable[[], Awaitable[Any]], task: dict) -> dict:
    """A closed loop of ``in_flight`` concurrent callers (bench/src/child/session.rs)."""
    import trio

    in_flight = max(1, int(task["in_flight"]))
    measure_from = time.perf_counter() + float(task["warmup"])
    stop = measure_from + float(task["secs"])
    samples: list[float] = []
    state = {"ok": 0, "errors": 0, "first_error": None, "last": measure_from}

    async def worker() -> None:
        while True:
            t0 = time.perf_counter()
            if t0 >= stop:
                return
            try:
                with trio.fail_after(30):
                    await call()
            except Exception as e:
                state["errors"] += 1
                state["first_error"] = state["first_error"] or repr(e)
                await trio.sleep(0.001)
                continue
            t1 = time.perf_counter()
            if t0 >= measure_from:
                samples.append(t1 - t0)
                state["ok"] += 1
                state["last"] = max(state["last"], t1)

    async with trio.open_nursery() as nursery:
        for _ in range(in_flight):
            nursery.start_soon(worker)
    samples.sort()
    return {
        "label": task["label"],
        "ops": state["ok"],
        "secs": max(0.0, state["last"] - measure_from),
        "payload": 0,
        "p50_us": quantile(samples, 0.5),
        "p99_us": quantile(samples, 0.99),
        "p999_us": quantile(samples, 0.999),
        "errors": state["errors"],
        "first_error": state["first_error"],
    }


async def drive(call: Callable[[], Awaitable[Any]], tasks: list[dict]) -> None:
    import trio

    # The peer may register its echo handler a moment after the handshake.
    deadline = time.monotonic() + 30
    while True:
        try:
            with trio.fail_after(10):
                await call()
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
            await trio.sleep(0.01)
    for task in tasks:
        if task.get("kind") != "calls" or task.get("payload", 0) != 0:
            emit("result", {"label": task.get("label", "?"), "ops": 0, "secs": 0.0,
                            "payload": 0, "errors": 1,
                            "first_error": "RedPepper 0.3.4 side: unsupported task"})
            continue
        emit("result", await run_calls(call, task))
    emit("done", True)


async def echo(*args: Any, **kwargs: Any) -> dict:
    return {"args": list(args), "kwargs": kwargs}


# --- the manager ------------------------------------------------------------


def make_manager(work: Path):
    from redpepper.manager import manager as manager_module
    from redpepper.manager.config import ManagerConfig
    from redpepper.manager.manager import AgentConnection, Manager

    import trio

    certs = work / "certs"
    scratch = work / "py"
    scratch.mkdir(parents=True, exist_ok=True)
    config = ManagerConfig(
        bind_host="127.0.0.1",
        bind_port=0,
        tls_cert_file=certs / "manager.pem",
        tls_key_file=certs / "manager-key.pem",
        tls_verify_mode="none",
        tls_check_hostname=False,
        data_base_dir=work / "data",
        command_log_file=scratch / f"commands-{os.getpid()}.sqlite",
        api_bind_host="127.0.0.1",
        api_bind_port=0,
        api_logins=[],
        api_tls_cert_file=certs / "manager.pem",
        api_tls_key_file=certs / "manager-key.pem",
        api_session_secret_key="redpepper-bench-session-secret",
    )

    class BenchManager(Manager):
        def __init__(self, config):
            super().__init__(config)
            self.ready: dict[str, trio.Event] = {}

        async def _serve(self, listeners, handler_nursery) -> None:
            port = listeners[0].transport_listener.socket.getsockname()[1]
            emit("ready", {"port": port, "pid": os.getpid()})
            await super()._serve(listeners, handler_nursery)

        def established(self) -> list:
            return [
                c for c in list(self.connections) if c.agent_id and hasattr(c.conn, "rpc")
            ]

        async def wait_agent(self, agent: str):
            event = self.ready.setdefault(agent, trio.Event())
            await event.wait()
            for c in self.established():
                if c.agent_id == agent:
                    return c
            raise RuntimeError(f"agent {agent} vanished")

        async def fanout(self) -> dict:
            conns = self.established()
            state = {"ok": 0, "failed": 0, "first_error": None}
            start = time.perf_counter()

            async def one(c) -> None:
                try:
                    with trio.fail_after(60):
                        await c.conn.rpc.call("echo", "x")
                    state["ok"] += 1
                except Exception as e:
                    state["failed"] += 1
                    state["first_error"] = state["first_error"] or repr(e)

            async with trio.open_nursery() as nursery:
                for c in conns:
                    nursery.start_soon(one, c)
            return {"agents": len(conns), "secs": time.perf_counter() - start, **state}

    manager = BenchManager(config)
    original_handshake = AgentConnection.handshake

    async def handshake(self) -> None:
        await original_handshake(self)
        if self.agent_id is not None and hasattr(self.conn, "rpc"):
            self.conn.rpc.set_handler("echo", echo)
            manager.ready.setdefault(self.agent_id, trio.Event()).set()

    manager_module.AgentConnection.handshake = handshake  # type: ignore[method-assign]
    # RedPepper's agents.yml cache compares timestamps relative to the working
    # directory: serve from the data directory.
    os.chdir(work / "data")
    # It parses agents.yml at the first hello (seconds for 10,000 entries, with the
    # agent's 3 s hello timeout running); ours parses it at start: do the same here.
    manager.data_manager.get_agent_entry(PAIR_AGENT)
    return manager


async def pair_server(args: argparse.Namespace) -> None:
    import trio

    manager = make_manager(Path(args.work))
    watch_stdin()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(manager.run)
        if args.drive:
            conn = await manager.wait_agent(PAIR_AGENT)
            await drive(lambda: conn.conn.rpc.call("echo", "x"), json.loads(args.drive))
            os._exit(0)


async def fleet_manager(args: argparse.Namespace) -> None:
    import trio

    manager = make_manager(Path(args.work))
    token = trio.lowlevel.current_trio_token()

    def on_line(line: str) -> None:
        if line == "count":
            emit("agents", len(manager.established()))
        elif line == "fanout":
            emit("fanout", trio.from_thread.run(manager.fanout, trio_token=token))
        else:
            emit("error", f"unknown command {line!r}")

    watch_stdin(on_line)
    await manager.run()


# --- the agent --------------------------------------------------------------


async def pair_client(args: argparse.Namespace) -> None:
    import trio
    from redpepper.agent.agent import Agent
    from redpepper.agent.config import AgentConfig

    work = Path(args.work)
    certs = work / "certs"
    ops = work / "py" / "operations"
    ops.mkdir(parents=True, exist_ok=True)
    config = AgentConfig(
        manager_host="127.0.0.1",
        manager_port=args.port,
        agent_id=PAIR_AGENT,
        agent_secret=SECRET,
        tls_ca_file=certs / "ca.pem",
        tls_cert_file=certs / "agent.pem",
        tls_key_file=certs / "agent-key.pem",
        tls_verify_mode="required",
        tls_check_hostname=True,
        operation_modules_cache_dir=ops,
    )
    agent = Agent(config)
    watch_stdin()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.connected.wait()
        agent.conn.rpc.set_handler("echo", echo)
        if args.drive:
            await drive(lambda: agent.conn.rpc.call("echo", "x"), json.loads(args.drive))
            os._exit(0)


# --- the codec --------------------------------------------------------------


def codec(args: argparse.Namespace) -> None:
    """What Connection.send_message / receive_message_direct do to a message:
    ``msgpack.packb(m.model_dump())`` and ``Message.validate_python(msgpack.unpackb(b))``."""
    import msgpack
    from redpepper.common import messages as m

    uuid = "0f3c5b8e6a2d4e1f9b7c3a5d8e2f1a4b"
    cases = [
        ("AgentHello", m.AgentHello(id="webserver1", version="0.3.4",
                                    credentials="Zk3q9TgW1xPbV7cLr2mYhN8sDe4uJa6Q")),
        ("ManagerHello", m.ManagerHello(version="0.3.4")),
        ("Ping", m.Ping(data=482913)),
        ("Pong", m.Pong(data=482913)),
        ("Bye", m.Bye(reason="shutting down")),
        ("Request", m.Request(id=uuid, method="command", args=[], kwargs={
            "id": "7d1e0c2b9a8f4e3d8c7b6a5f4e3d2c1b", "cmdtype": "echo.Echo", "args": [],
            "kwargs": {"message": "hello", "reverse": False}})),
        ("Response", m.Response(id=uuid, success=True,
                                data={"output": "hello\n", "changed": True, "rc": 0})),
        ("Notification", m.Notification(type="command_progress", data={
            "command_id": "7d1e0c2b9a8f4e3d8c7b6a5f4e3d2c1b", "current": 1, "total": 1,
            "message": "Finished"})),
        ("Response4KiB", m.Response(id=uuid, success=True,
                                    data="log line of command output\n" * 152)),
    ]

    def per_op(fn: Callable[[], Any]) -> float:
        for _ in range(64):
            fn()
        ops, start = 0, time.perf_counter()
        while time.perf_counter() - start < args.secs:
            for _ in range(64):
                fn()
            ops += 64
        return (time.perf_counter() - start) * 1e9 / max(ops, 1)

    out = []
    for name, msg in cases:
        data = msgpack.packb(msg.model_dump())
        out.append({
            "message": name,
            "bytes": len(data),
            "encode_ns": per_op(lambda: msgpack.packb(msg.model_dump())),
            "decode_ns": per_op(lambda: m.Message.validate_python(msgpack.unpackb(data))),
        })
    emit("codec", out)


def describe(e: BaseException) -> str:
    """The innermost exceptions of (nested) exception groups, as text."""
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(describe(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=["pair-server", "pair-client", "manager", "codec"])
    parser.add_argument("--work", default=".")
    parser.add_argument("--cpu", type=int)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--drive")
    parser.add_argument("--secs", type=float, default=0.2)
    args = parser.parse_args()
    pin(args.cpu)
    raise_nofile()
    logging.basicConfig(level=logging.CRITICAL, stream=sys.stderr)
    try:
        if args.mode == "codec":
            codec(args)
            return
        import trio

        run = {"pair-server": pair_server, "pair-client": pair_client,
               "manager": fleet_manager}[args.mode]
        trio.run(run, args)
    except BaseException as e:  # report anything, then exit non-zero
        if isinstance(e, SystemExit):
            raise
        emit("error", describe(e))
        sys.stdout.flush()
        os._exit(1)


if __name__ == "__main__":
    main()
