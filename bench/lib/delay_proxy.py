#!/usr/bin/env python3
"""A TCP proxy on loopback that holds what the server sends for a fixed delay: a far server, for a bench.

    python3 bench/lib/delay_proxy.py --target-port 6379 --delay-ms 2 --port-file /tmp/proxy.port

Listens on a free loopback port (written to --port-file once listening) and forwards every connection
to 127.0.0.1:--target-port. What the client sends goes on at once; what the server answers is handed to
the client --delay-ms later, in order. A request-and-answer protocol (Redis) thus sees every round trip
take --delay-ms more, as a server in another zone would make it, while the server's own work and CPU do
not change. Bounds: at most --max-connections at a time (later ones are closed), and at most
--max-buffered bytes held per connection (past it the server side stops being read until the client
side catches up). Stops on SIGTERM or SIGINT.
"""
import argparse
import asyncio
import os
import signal
import sys


async def pipe_now(reader, writer):
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        writer.close()


async def pipe_delayed(reader, writer, delay_s, max_buffered):
    """Reads the server and writes each chunk to the client delay_s after it came."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()

    client_gone = False

    async def deliver():
        nonlocal held, client_gone
        try:
            while True:
                due, data = await queue.get()
                if data is None:
                    break
                wait = due - loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                held -= len(data)
                if held <= max_buffered:
                    room.set()
                await writer.drain()
        except ConnectionError:
            client_gone = True
            room.set()  # the reader must not wait for room that will never come

    sender = asyncio.create_task(deliver())
    try:
        while not client_gone and (data := await reader.read(65536)):
            held += len(data)
            queue.put_nowait((loop.time() + delay_s, data))
            if held > max_buffered:
                room.clear()
                await room.wait()
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        queue.put_nowait((0, None))
        await sender
        writer.close()


async def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target-port", type=int, required=True, help="the server's loopback port")
    parser.add_argument("--delay-ms", type=float, required=True, help="added to each answer (0 to 10000)")
    parser.add_argument("--port-file", required=True, help="where the proxy's port is written")
    parser.add_argument("--max-connections", type=int, default=64)
    parser.add_argument("--max-buffered", type=int, default=16 << 20, help="bytes held per connection")
    args = parser.parse_args()
    if not 0 <= args.delay_ms <= 10000:
        parser.error("--delay-ms must be between 0 and 10000")
    delay_s = args.delay_ms / 1000.0
    active = 0

    async def serve(client_reader, client_writer):
        nonlocal active
        if active >= args.max_connections:
            client_writer.close()
            return
        active += 1
        try:
            server_reader, server_writer = await asyncio.open_connection("127.0.0.1", args.target_port)
        except OSError as e:
            print(f"delay_proxy: cannot reach 127.0.0.1:{args.target_port}: {e}", file=sys.stderr)
            client_writer.close()
            active -= 1
            return
        try:
            await asyncio.gather(pipe_now(client_reader, server_writer),
                                 pipe_delayed(server_reader, client_writer, delay_s, args.max_buffered))
        finally:
            active -= 1

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, args.port_file)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
