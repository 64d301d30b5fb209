"""A real SMTP server for the mail tests: it accepts every message and saves it.

Usage: python3 smtp_sink.py --dir DIR [--port PORT] [--lifetime SECONDS]

It listens on 127.0.0.1 (port 0 picks a free one) and prints "listening on 127.0.0.1:<port>" once
it accepts connections. Message N is saved as DIR/N.eml (the bytes received after DATA) and
DIR/N.json (the envelope: "mail_from" and "rcpt_tos"); the .json file appears last, so a reader
that sees it finds the .eml complete. The server stops when its standard input closes (the test
that started it ended) or after --lifetime seconds, whichever comes first.

Needs aiosmtpd (`python3 -m pip install aiosmtpd`; scripts/test installs it).
"""

import argparse
import asyncio
import itertools
import json
import os
import sys
import threading
from pathlib import Path

try:
    from aiosmtpd.smtp import SMTP
except ImportError:
    print(
        "smtp_sink: the Python package aiosmtpd is not installed; run scripts/test "
        "(it runs `python3 -m pip install aiosmtpd`)",
        file=sys.stderr,
        flush=True,
    )
    sys.exit(3)


class Saver:
    """An aiosmtpd handler that writes each message and its envelope to a directory."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        number = next(self.counter)
        content = envelope.original_content or envelope.content
        if isinstance(content, str):
            content = content.encode("utf-8")
        self._write(f"{number}.eml", content)
        meta = {"mail_from": envelope.mail_from, "rcpt_tos": list(envelope.rcpt_tos)}
        self._write(f"{number}.json", json.dumps(meta).encode("utf-8"))
        return "250 Message accepted for delivery"

    def _write(self, name: str, data: bytes):
        # Write then rename, so the file is complete whenever it exists.
        partial = self.directory / (name + ".part")
        partial.write_bytes(data)
        os.replace(partial, self.directory / name)


def exit_when_stdin_closes():
    sys.stdin.read()
    os._exit(0)


async def serve(directory: Path, port: int, lifetime: float):
    handler = Saver(directory)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="smtp-sink.test"), host="127.0.0.1", port=port
    )
    bound = server.sockets[0].getsockname()[1]
    print(f"listening on 127.0.0.1:{bound}", flush=True)
    async with server:
        await asyncio.sleep(lifetime)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", required=True, type=Path, help="where to save messages")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1; 0 picks one")
    parser.add_argument("--lifetime", type=float, default=120.0, help="seconds before exiting")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    threading.Thread(target=exit_when_stdin_closes, daemon=True).start()
    asyncio.run(serve(args.dir, args.port, args.lifetime))


if __name__ == "__main__":
    main()
