"""The HTTP protocol of the embedded ClickHouse, as pure functions."""

import gzip

import lz4.frame
import pytest

from stack.chhttp import ProtocolError, decode_body, error_response, parse_request


def test_select_from_body_with_settings_and_params() -> None:
    req = parse_request(
        "database=db1&default_format=JSONEachRow&max_threads=2&param_x=41&session_id=s&query_id=q1",
        {},
        b"SELECT {x:UInt32} + 1",
    )
    assert (req.sql, req.database, req.default_format, req.query_id) == (
        "SELECT {x:UInt32} + 1",
        "db1",
        "JSONEachRow",
        "q1",
    )
    assert req.settings == {"max_threads": "2"}
    assert req.params == {"x": "41"}
    assert not req.is_insert


def test_query_param_and_body_are_joined() -> None:
    req = parse_request("query=SELECT%201", {}, b"+ 1")
    assert req.sql == "SELECT 1\n+ 1"


def test_insert_data_follows_the_format_clause_in_the_url() -> None:
    req = parse_request("query=INSERT%20INTO%20t%20(a%2C%20b)%20FORMAT%20Native", {}, b"\x02\x01binary")
    assert (req.sql, req.fmt, req.data) == ("INSERT INTO t (a, b)", "Native", b"\x02\x01binary")


def test_insert_embedded_in_the_body() -> None:
    req = parse_request("", {}, b"INSERT INTO db.t FORMAT Native\n\x00\x01\n\x02")
    assert (req.sql, req.fmt, req.data) == ("INSERT INTO db.t", "Native", b"\x00\x01\n\x02")


def test_insert_values_stays_sql() -> None:
    req = parse_request("", {}, b"INSERT INTO t VALUES (1, 'a')")
    assert req.sql == "INSERT INTO t VALUES (1, 'a')" and not req.is_insert


def test_compressed_bodies_with_several_frames() -> None:
    body = lz4.frame.compress(b"hello ") + lz4.frame.compress(b"world")
    assert decode_body(body, "lz4") == b"hello world"
    assert decode_body(gzip.compress(b"x") + gzip.compress(b"y"), "gzip") == b"xy"
    with pytest.raises(ProtocolError) as info:
        decode_body(b"garbage", "lz4")
    assert info.value.code == 271


def test_multipart_form() -> None:
    body = (
        b'--XX\r\nContent-Disposition: form-data; name="query"\r\n\r\nSELECT {a:String}\r\n'
        b'--XX\r\nContent-Disposition: form-data; name="param_a"\r\n\r\nhi\r\n--XX--\r\n'
    )
    req = parse_request("", {"content-type": "multipart/form-data; boundary=XX"}, body)
    assert (req.sql, req.params) == ("SELECT {a:String}", {"a": "hi"})


def test_empty_query_and_bad_setting_names() -> None:
    with pytest.raises(ProtocolError, match="Empty query"):
        parse_request("", {}, b"  ")
    with pytest.raises(ProtocolError) as info:
        parse_request("max%20threads=1", {}, b"SELECT 1")
    assert info.value.code == 115


def test_error_response_mirrors_clickhouse() -> None:
    status, code, body = error_response("Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE)", "26.9")
    assert (status, code) == (404, 60)
    assert body == b"Code: 60. DB::Exception: Table x.y does not exist. (UNKNOWN_TABLE) (version 26.9)\n"
    status, code, body = error_response("boom", "26.9")
    assert (status, code) == (500, 1001)
    assert body.startswith(b"Code: 1001. DB::Exception: boom")
