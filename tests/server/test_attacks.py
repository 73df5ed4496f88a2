"""Each attack of issue 13 against the running endpoint, with a real HTTP client: refused
with a clear error, and nothing changed (tables still there, no file read or written, no
connection made)."""

from __future__ import annotations

import base64
import os
import socket
import stat
import threading
import time
from pathlib import Path

import pytest

from consumers.storage import Storage
from grenswacht.embedded import Embedded
from schemas.errors import ConfigError
from tests.server.conftest import Running, settings_for

TABLES_SQL = "SELECT count() FROM system.tables WHERE database = currentDatabase()"


def _tables(storage: Storage) -> int:
    return int(storage.query(TABLES_SQL).rows[0][0])


def _refused(reply_status: int, body: bytes, *words: str) -> str:
    assert reply_status == 400, (reply_status, body)
    text = body.decode()
    for word in words:
        assert word in text, text
    return text


def test_multi_statement_drop_is_refused_and_the_table_stays(endpoint: Running) -> None:
    before = _tables(endpoint.storage)
    reply = endpoint.sql("SELECT 1; DROP TABLE raw_results")
    _refused(reply.status, reply.body, "Multi-statements are not allowed")
    assert reply.json()["kind"] == "BadRequest"
    assert _tables(endpoint.storage) == before
    assert endpoint.storage.query("EXISTS TABLE raw_results").rows == [(1,)]


@pytest.mark.parametrize("query", [
    "SELECT * FROM file('/etc/passwd', 'LineAsString')",
    "SELECT file('/etc/passwd')",
    "SELECT line FROM (SELECT * FROM file('/etc/passwd', 'LineAsString') AS line)",
    "SELECT 1 WHERE 'root' IN file('/etc/passwd', 'LineAsString')",
    "DESCRIBE TABLE file('/etc/passwd', 'LineAsString')",
])
def test_reading_host_files_is_refused(endpoint: Running, query: str) -> None:
    reply = endpoint.sql(query)
    assert reply.status == 400 and b"root:" not in reply.body, reply.body
    assert b"allowed" in reply.body


def test_reading_the_process_environment_is_refused(endpoint: Running) -> None:
    # /proc/<pid>/environ holds the process's start environment (PATH at least; in
    # production the RIPE Atlas key): the scalar file() reads it even under readonly=1
    for path in (f"/proc/{os.getpid()}/environ", "/proc/self/environ"):
        for query in (f"SELECT file('{path}')",
                      f"SELECT * FROM file('{path}', 'RawBLOB')"):
            reply = endpoint.sql(query)
            assert reply.status == 400 and b"PATH=" not in reply.body, reply.body


def test_writing_a_file_after_a_select_is_refused(endpoint: Running, tmp_path: Path) -> None:
    target = tmp_path / "written.txt"
    for query in (
        f"SELECT 1; INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'x'",
        f"INSERT INTO FUNCTION file('{target}', 'LineAsString') SELECT 'x'",
        f"SELECT 'x' INTO OUTFILE '{target}'",
        f"SELECT 'x' INTO OUTFILE '{target}' FORMAT TSV",
    ):
        reply = endpoint.sql(query)
        assert reply.status == 400, (query, reply.body)
    assert not target.exists()


def test_url_and_remote_table_functions_make_no_connection(endpoint: Running) -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    port = listener.getsockname()[1]
    try:
        for query in (f"SELECT * FROM url('http://127.0.0.1:{port}/', 'LineAsString')",
                      f"SELECT * FROM remote('127.0.0.1:{port}', system.one)",
                      f"SELECT * FROM s3('http://127.0.0.1:{port}/b/k', 'CSV', 'a String')",
                      f"SELECT * FROM mysql('127.0.0.1:{port}', 'd', 't', 'u', 'p')",
                      "SELECT * FROM executable('id', 'TSV', 'a String')",
                      "SELECT * FROM python(os)"):
            reply = endpoint.sql(query)
            assert reply.status == 400 and b"is not allowed" in reply.body, (query, reply.body)
        with pytest.raises(TimeoutError):
            listener.accept()
    finally:
        listener.close()


def test_settings_cannot_lift_readonly(endpoint: Running) -> None:
    for query in ("SELECT 1 SETTINGS readonly = 0", "SELECT 1 SETTINGS max_threads = 1"):
        _refused(*_status_body(endpoint.sql(query)), "SETTINGS are not allowed")


def _status_body(reply: object) -> tuple[int, bytes]:
    return reply.status, reply.body  # type: ignore[attr-defined]


def test_read_only_statements_and_parameters_still_work(endpoint: Running) -> None:
    endpoint.storage.insert("applications", {"application": ["a'pp"], "hostnames": [["x"]]})
    reply = endpoint.request("POST", "/sql", {
        "sql": "SELECT application, hostnames FROM applications FINAL "
               "WHERE application = {name:String}", "params": {"name": "a'pp"}})
    assert reply.status == 200, reply.body
    assert reply.json()["rows"] == [["a'pp", ["x"]]]
    for query in ("SHOW TABLES", "DESCRIBE TABLE raw_results", "EXISTS TABLE raw_results",
                  "EXPLAIN SELECT 1", "WITH 2 AS x SELECT x", "SELECT * FROM numbers(3)"):
        assert endpoint.sql(query).status == 200, query
    capped = endpoint.request("POST", "/sql", {"sql": "SELECT * FROM numbers(10)",
                                               "max_rows": 4})
    assert capped.json()["rows"] == [[0], [1], [2], [3]] and capped.json()["truncated"]


def test_the_engine_refuses_writes_even_without_the_statement_check(
        storage: Storage, tmp_path: Path) -> None:
    """The second line of defence: the read-only session itself (readonly=1), with the
    parser check bypassed (``run_read_only`` runs the text as it is)."""
    before = _tables(storage)
    target = tmp_path / "engine.txt"
    for query in ("DROP TABLE raw_results", "INSERT INTO applications (application) "
                  "VALUES ('x')", f"INSERT INTO FUNCTION file('{target}', 'LineAsString') "
                  "SELECT 'x'", "SELECT * FROM file('/etc/passwd', 'LineAsString')",
                  "SELECT * FROM url('http://127.0.0.1:9/', 'LineAsString')",
                  "SELECT 1 SETTINGS readonly = 0", "SET readonly = 0",
                  "CREATE TABLE evil (a Int8) ENGINE = Memory"):
        with pytest.raises(Exception, match="(?i)readonly"):
            storage.run_read_only(query, stream=False)
    assert _tables(storage) == before and not target.exists()
    assert storage.query("SELECT count() FROM applications").rows == [(0,)]
    storage.insert("applications", {"application": ["still-writable"]})  # the other session


def test_cross_site_text_plain_post_is_refused(endpoint: Running) -> None:
    body = b'{"sql": "SELECT 1"}'
    foreign = endpoint.request("POST", "/sql", raw=body, headers={
        "Content-Type": "text/plain", "Origin": "http://evil.example"})
    assert foreign.status == 403 and b"cross-site" in foreign.body
    same_origin_plain = endpoint.request("POST", "/sql", raw=body, headers={
        "Content-Type": "text/plain", "Origin": f"http://127.0.0.1:{endpoint.port}"})
    assert same_origin_plain.status == 415 and b"application/json" in same_origin_plain.body
    fetch = endpoint.request("POST", "/sql", {"sql": "SELECT 1"},
                             headers={"Sec-Fetch-Site": "cross-site"})
    assert fetch.status == 403
    assert endpoint.request("GET", "/status", headers={"Origin": "null"}).status == 403


def test_dns_rebinding_host_is_refused(endpoint: Running) -> None:
    for path, method, body in (("/status", "GET", None), ("/sql", "POST", {"sql": "SELECT 1"}),
                               ("/", "GET", None)):
        reply = endpoint.request(method, path, body, host=f"evil.example:{endpoint.port}")
        assert reply.status == 403 and b"DNS rebinding" in reply.body, reply.body
    assert endpoint.request("GET", "/status", host=f"localhost:{endpoint.port}").status == 200
    assert endpoint.request("GET", "/status", host="").status == 403


def test_write_routes_need_the_token(endpoint: Running) -> None:
    record = {"records": [{"value": base64.b64encode(b'{"type": "ping"}').decode()}]}
    for token in (None, "wrong-token-of-enough-length", endpoint.token[:-1]):
        for path, body in (("/ingest", record),
                           ("/alerts/ack", {"alert_id": "x", "by": "mallory"})):
            reply = endpoint.request("POST", path, body, token=token)
            assert reply.status == 401 and reply.headers["www-authenticate"] == "Bearer"
            assert b"Authorization: Bearer" in reply.body
    assert endpoint.app.status()["components"]["ingest"]["results"] == 0
    assert endpoint.storage.query("SELECT count() FROM alert_acks").rows == [(0,)]
    ok = endpoint.request("POST", "/alerts/ack", {"alert_id": "0123456789abcdef", "by": "officer"},
                          token=endpoint.token)
    assert ok.status == 400 and b"no single alert matches" in ok.body  # authorised, no alert
    short = endpoint.request("POST", "/alerts/ack", {"alert_id": "x", "by": "officer"},
                             token=endpoint.token)
    assert short.status == 400 and b"at least 8 characters" in short.body


def test_a_forged_source_header_is_not_believed(endpoint: Running) -> None:
    result = (Path(__file__).resolve().parent.parent / "fixtures" / "atlas" / "ping" /
              "sagan_tests.jsonl").read_text().splitlines()[0].encode()
    reply = endpoint.request("POST", "/ingest", {"records": [{
        "value": base64.b64encode(result).decode(),
        "headers": [["gw-source", base64.b64encode(b"atlas").decode()],
                    ["gw-origin", base64.b64encode(b"my-file.jsonl:1").decode()]],
    }]}, token=endpoint.token)
    assert reply.status == 200 and reply.json() == {"accepted": 1}
    deadline = time.monotonic() + 300  # a hang guard: returns once the row is stored
    while endpoint.storage.query("SELECT count() FROM raw_results").rows[0][0] == 0:
        assert time.monotonic() < deadline, endpoint.app.status()
        threading.Event().wait(0.1)
    assert endpoint.storage.query("SELECT DISTINCT source FROM raw_results").rows == [("file",)]


def test_malformed_bodies_get_a_json_answer(endpoint: Running) -> None:
    cases = [
        (b"[]", "not a list"), (b"null", "not null"), (b'"x"', "not a string"),
        (b"{", "not valid JSON"), (b'{"sql": 5}', "'sql' must be a string"),
        (b'{"sql": "SELECT 1", "max_rows": "7"}', "'max_rows' must be an integer"),
        (b'{"sql": "SELECT 1", "max_rows": true}', "not a boolean"),
        (b'{"sql": "SELECT 1", "params": []}', "'params' must be an object"),
        (b"{}", "needs a 'sql' field"), (b'{"sql": "  "}', "'sql' is empty"),
    ]
    for raw, message in cases:
        reply = endpoint.request("POST", "/sql", raw=raw,
                                 headers={"Content-Type": "application/json"})
        assert reply.status == 400 and message in reply.json()["error"], (raw, reply.body)
    bad_records = [
        ({"records": {}}, "'records' must be a list"),
        ({"records": [None]}, "records[0] must be an object"),
        ({"records": [{"value": "%%%"}]}, "records[0].value is not valid base64"),
        ({"records": [{"value": "eA==", "headers": [["a"]]}]}, "headers[0] must be"),
        ({"records": [{}]}, "records[0].value is missing"),
    ]
    for body, message in bad_records:
        reply = endpoint.request("POST", "/ingest", body, token=endpoint.token)
        assert reply.status == 400 and message in reply.json()["error"], (body, reply.body)
    assert endpoint.request("GET", "/nope").status == 404
    assert endpoint.request("DELETE", "/sql").status == 405


def test_body_limits_count_the_bytes_actually_read(endpoint: Running) -> None:
    limit = endpoint.app.settings.server.max_small_body_bytes
    big = b'{"sql": "SELECT 1", "pad": "' + b"x" * limit + b'"}'
    declared = endpoint.request("POST", "/sql", raw=big,
                                headers={"Content-Type": "application/json"})
    assert declared.status == 413
    # a lying or negative Content-Length does not get past the cap
    negative = endpoint.request("POST", "/sql", raw=b'{"sql": "SELECT 1"}', headers={
        "Content-Type": "application/json", "Content-Length": "-1"})
    assert negative.status == 400
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(part), part)
                      for part in (big[i:i + 65536] for i in range(0, len(big), 65536)))
    chunked = endpoint.request("POST", "/sql", raw=chunks + b"0\r\n\r\n", headers={
        "Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    assert chunked.status == 413 and b"larger than" in chunked.body


def test_idle_connections_are_closed_and_requests_still_served(endpoint: Running) -> None:
    idle = [socket.create_connection(("127.0.0.1", endpoint.port), timeout=30)
            for _ in range(200)]
    try:
        assert endpoint.request("GET", "/healthz").status == 200
        deadline = time.monotonic() + 120  # header_timeout_s is 1 s in this fixture
        for sock in idle:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            assert sock.recv(1) == b"", "the server kept an idle connection open"
    finally:
        for sock in idle:
            sock.close()
    assert endpoint.request("GET", "/healthz").status == 200


def test_security_headers_on_every_answer(endpoint: Running) -> None:
    for reply in (endpoint.request("GET", "/healthz"), endpoint.request("GET", "/nope"),
                  endpoint.sql("DROP TABLE x"),
                  endpoint.request("GET", "/status", host="evil.example")):
        policy = reply.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy
        assert "http" not in policy  # no external source
        assert reply.headers["referrer-policy"] == "same-origin"
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_a_non_loopback_bind_without_a_token_refuses_to_start(
        storage: Storage, chdb_dsn: str, tmp_path: Path) -> None:
    app = Embedded(settings_for(tmp_path, chdb_dsn, host="0.0.0.0"))  # noqa: S104
    with pytest.raises(ConfigError, match="not a loopback address: set server.token"):
        app.start(only=set())
    assert app.url == "" and not (tmp_path / "data" / "run.json").exists()


def test_the_generated_token_is_private(endpoint: Running) -> None:
    path = endpoint.app.settings.data_dir / "server.token"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.read_text().strip() == endpoint.token
    assert endpoint.token not in repr(endpoint.app.token)
