"""ClickHouse's HTTP interface served by the real ClickHouse engine (chdb), for tests.

No ClickHouse server newer than 18.16 installs from the registries reachable here, and
leadflow's server code path (an `http://` DSN, a session per stage) must still be tested.
This helper runs the engine leadflow already uses (chdb, i.e. ClickHouse itself as a
library) behind the subset of ClickHouse's HTTP protocol that clickhouse-connect speaks,
in a process of its own, so tests can kill it, stop it and start it again on the same
data directory and port (the warehouse-down fault of tests/faults).

    python tests/chdb_http_server.py --path DIR --port 8123

What it does (as a ClickHouse server does):

* `GET /ping` and `GET /` answer `Ok.`;
* a statement is the `query` URL parameter, then the request body; `database=` selects
  the database (`USE`); `param_NAME=` are query parameters (`{NAME:Type}`, the same
  escaped text a server reads); other URL parameters that are not transport options are
  settings, applied for that request only;
* `INSERT ... FORMAT F` with the data in the body (Native, RowBinary or any input format
  chdb reads), the body compressed or not (`Content-Encoding`: lz4, zstd, gzip, deflate,
  br, as clickhouse-connect sends it) and chunked or not; the data goes to the engine
  with `INSERT ... FROM INFILE`, as clickhouse-connect's own chdb backend does;
* results in the statement's `FORMAT` (else `default_format`, else TabSeparated), with
  the headers clickhouse-connect reads: `X-ClickHouse-Format`, `X-ClickHouse-Timezone`
  (UTC), `X-ClickHouse-Query-Id`, `X-ClickHouse-Summary`,
  `X-ClickHouse-Server-Display-Name`;
* sessions (`session_id`): each session is a chdb connection handle of its own, so its
  temporary tables, `USE` and `SET` are its own, as on a server; requests of one session
  are served one at a time;
* errors: HTTP 500 (404 for an unknown table or database, 400 for a syntax error), the
  `X-ClickHouse-Exception-Code` header and a `Code: N. DB::Exception: ...` body.

What it does not emulate: users, passwords and quotas (any credentials are accepted),
HTTPS, compressed responses (it answers uncompressed; clickhouse-connect reads either),
progress headers (`send_progress_in_http_headers` is accepted and ignored), external
data (multipart requests), query cancellation and `KILL QUERY`, `session_timeout`
(sessions live until the process ends), the `SESSION_IS_LOCKED` error (concurrent
requests of one session wait instead), settings given in an `INSERT`'s own SETTINGS
clause, clusters and replication. A restart loses every session, as a server restart
does.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

# URL parameters that are transport options of the HTTP interface, not engine settings
TRANSPORT_PARAMS = frozenset({
    "query", "database", "default_format", "session_id", "session_timeout", "session_check", "query_id",
    "quota_key", "compress", "decompress", "wait_end_of_query", "client_protocol_version", "role",
    "send_progress_in_http_headers", "http_headers_progress_interval_ms", "enable_http_compression",
    "buffer_size", "user", "password", "add_http_cors_header",
})
_INSERT_FORMAT = re.compile(rb"^\s*(INSERT\s+INTO\s.*?)\s+FORMAT\s+(\w+)[ \t]*\r?\n?", re.IGNORECASE | re.DOTALL)
_INSERT = re.compile(rb"^\s*INSERT\s", re.IGNORECASE)
_TRAILING_FORMAT = re.compile(r"\bFORMAT\s+(\w+)\s*;?\s*$", re.IGNORECASE)
_CODE = re.compile(r"Code: (\d+)\.")
_STATUS_BY_CODE = {60: 404, 81: 404, 62: 400}


class _Handle:
    """A chdb connection handle and the lock that serializes its requests."""

    def __init__(self, path: str):
        import chdb

        self.conn = chdb.connect(path)
        self.lock = threading.Lock()
        self.database = "default"


class Engine:
    """The chdb engine of this process and its handles: one per session, a pool for the rest."""

    def __init__(self, path: str):
        self.path = path
        self._sessions: dict[str, _Handle] = {}
        self._free: list[_Handle] = []
        self._lock = threading.Lock()
        self._sessionless = _Handle(path)  # opens the engine (one path per process)
        self._free.append(self._sessionless)

    @contextlib.contextmanager
    def handle(self, session_id: str | None):
        if session_id:
            with self._lock:
                handle = self._sessions.get(session_id)
                if handle is None:
                    handle = self._sessions[session_id] = _Handle(self.path)
            with handle.lock:
                yield handle
            return
        with self._lock:
            handle = self._free.pop() if self._free else _Handle(self.path)
        try:
            with handle.lock:
                yield handle
        finally:
            with self._lock:
                self._free.append(handle)


def _decompress(data: bytes, encoding: str | None) -> bytes:
    if not encoding or encoding == "identity":
        return data
    if encoding in ("lz4", "zstd"):  # the codecs clickhouse-connect compresses with
        from clickhouse_connect.driver import compression

        if encoding == "lz4":
            return compression._require_lz4().decompress(data)
        return compression._zstd_decompress(data)
    if encoding == "gzip":
        import gzip

        return gzip.decompress(data)
    if encoding == "deflate":
        import zlib

        return zlib.decompress(data)
    if encoding == "br":
        import brotli

        return brotli.decompress(data)
    raise ValueError(f"Code: 1. DB::Exception: Unknown Content-Encoding {encoding!r}. (NOT_IMPLEMENTED)")


def _quote(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "chdb-http"
    engine: Engine  # set on the class by serve()

    def log_message(self, *args) -> None:  # quiet: tests read the warehouse, not this log
        pass

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        url = urlsplit(self.path)
        params = dict(parse_qsl(url.query, keep_blank_values=True))
        if url.path in ("/ping", "/") and "query" not in params:
            self._send(200, b"Ok.\n", {"Content-Type": "text/plain; charset=UTF-8"})
            return
        self._execute(params, b"")

    def do_POST(self) -> None:  # noqa: N802
        params = dict(parse_qsl(urlsplit(self.path).query, keep_blank_values=True))
        try:
            body = _decompress(self._read_body(), self.headers.get("Content-Encoding"))
        except Exception as exc:  # noqa: BLE001 - every failure becomes a ClickHouse error
            self._error(str(exc))
            return
        self._execute(params, body)

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _execute(self, params: dict[str, str], body: bytes) -> None:
        query = params.get("query", "").encode()
        text = query + (b"\n" if query and body else b"") + body
        query_id = params.get("query_id") or str(uuid.uuid4())
        bind = {k[len("param_"):]: v for k, v in params.items() if k.startswith("param_")}
        settings = {k: v for k, v in params.items() if k not in TRANSPORT_PARAMS and not k.startswith("param_")}
        try:
            with self.engine.handle(params.get("session_id")) as handle:
                database = params.get("database") or ("default" if not params.get("session_id") else None)
                if database and database != handle.database:
                    handle.conn.query(f"USE {database}")
                    handle.database = database
                result, fmt = self._run(handle, text, bind, settings, params.get("default_format"))
        except Exception as exc:  # noqa: BLE001
            self._error(str(exc), query_id)
            return
        summary = {"read_rows": str(result.rows_read()), "read_bytes": str(result.bytes_read()),
                   "written_rows": str(result.rows_written()), "written_bytes": str(result.bytes_written()),
                   "result_rows": "0", "result_bytes": "0", "elapsed_ns": str(int(result.elapsed() * 1e9))}
        headers = {"Content-Type": "application/octet-stream", "X-ClickHouse-Query-Id": query_id,
                   "X-ClickHouse-Timezone": "UTC", "X-ClickHouse-Server-Display-Name": "chdb-http",
                   "X-ClickHouse-Summary": json.dumps(summary)}
        if fmt:
            headers["X-ClickHouse-Format"] = fmt
        self._send(200, result.bytes() or b"", headers)

    def _run(self, handle: _Handle, text: bytes, bind: dict, settings: dict, default_format: str | None):
        for name, value in settings.items():  # for this request only
            handle.conn.query(f"SET {name} = {_quote(value)}")
        try:
            insert = _INSERT_FORMAT.match(text) if _INSERT.match(text) else None
            if insert is not None:
                data = text[insert.end():]
                with tempfile.NamedTemporaryFile(prefix="chdb-http-", suffix=".bin") as tmp:
                    tmp.write(data)
                    tmp.flush()
                    sql = (f"{insert.group(1).decode()} FROM INFILE {_quote(tmp.name)} "
                           f"FORMAT {insert.group(2).decode()}")
                    return handle.conn.query(sql, "TabSeparated", params=bind), None
            sql = text.decode()
            trailing = _TRAILING_FORMAT.search(sql)
            fmt = trailing.group(1) if trailing else (default_format or "TabSeparated")
            return handle.conn.query(sql, fmt, params=bind), fmt
        finally:
            for name in settings:
                with contextlib.suppress(Exception):
                    handle.conn.query(f"SET {name} = DEFAULT")

    def _error(self, message: str, query_id: str = "") -> None:
        idx = message.find("Code: ")
        message = message[idx:] if idx >= 0 else f"Code: 1000. DB::Exception: {message}. (POCO_EXCEPTION)"
        code = int(_CODE.match(message).group(1))
        self._send(_STATUS_BY_CODE.get(code, 500), (message.rstrip() + "\n").encode(),
                   {"Content-Type": "text/plain; charset=UTF-8", "X-ClickHouse-Exception-Code": str(code),
                    "X-ClickHouse-Query-Id": query_id, "X-ClickHouse-Timezone": "UTC"})

    def _send(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def serve(path: str, host: str, port: int) -> None:
    os.environ["TZ"] = "UTC"  # the server's timezone, as X-ClickHouse-Timezone says
    time.tzset()
    Handler.engine = Engine(path)
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"chdb-http listening on http://{host}:{server.server_address[1]} (data {path})", flush=True)
    server.serve_forever()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ChdbHttpServer:
    """This module as a child process on 127.0.0.1, for tests: `url` is the DSN to give leadflow.
    `stop()` kills it (a warehouse outage: every session is lost) and `start()` brings it back
    on the same port and data directory."""

    def __init__(self, path: Path, port: int | None = None, log: Path | None = None):
        self.path = Path(path)
        self.port = port or _free_port()
        self.url = f"http://default:@127.0.0.1:{self.port}"
        self.log = log
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60.0) -> "ChdbHttpServer":
        self.path.mkdir(parents=True, exist_ok=True)
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - owned by the child
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--path", str(self.path), "--port", str(self.port)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chdb HTTP server exited at start with code {self.proc.returncode}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"chdb HTTP server did not listen within {timeout:.0f}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)

    def __enter__(self) -> "ChdbHttpServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, help="chdb data directory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    args = parser.parse_args(argv)
    serve(args.path, args.host, args.port)


if __name__ == "__main__":
    main()
