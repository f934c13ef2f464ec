"""``aptools dev``'s server: chunked bodies, and its own errors in JSON."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from aptools.cli.devserver import BadChunking, dechunk

from .cli_support import Launched, cli_env
from .rawhttp import MALFORMED, chunked_post, exchange, get
from .servers import free_port

WATCHASAY = "examples.watchasay.app"


def _dev(tmp_path: Path, port: int, face: str) -> tuple[Launched, str]:
    args = ["dev", WATCHASAY, "--port", str(port), *(["--asgi"] if face else [])]
    proc = Launched(*args, cwd=tmp_path, env=cli_env())
    said = proc.wait_for(lambda out: "Ctrl-C" in out)
    token = re.search(r"^  alice .* token (\S+)", said, re.M)
    assert token, said
    return proc, token.group(1)


@pytest.mark.e2e
@pytest.mark.parametrize("face", ["", "asgi"])
def test_dev_takes_a_chunked_body(tmp_path: Path, face: str) -> None:
    port = free_port()
    proc, alice = _dev(tmp_path, port, face)
    with proc:
        document = {"request_id": "chunked-1", "body": {"input_string": "hi"}}
        sent = chunked_post("/skeleton/actions", alice, document)
        answer = exchange(port, sent, timeout=30)  # no hang: answered at once
        assert answer.status == 202, answer.body
        assert answer.json()["details"] == {"you_said": "hi"}
        # The same body again is the same request: the same action (200).
        again = exchange(port, sent, timeout=30)
        assert again.status == 200
        assert again.json()["action_id"] == answer.json()["action_id"]
        # Chunks of a body that is not JSON: the application's JSON 400.
        bad = sent.replace(b'"request_id"', b"'request_id'")
        refused = exchange(port, bad, timeout=30)
        assert refused.status == 400 and refused.json()["code"] == "BadRequest"
        if not face:
            # Framing that is not chunked framing: JSON 400, at once.
            broken = sent.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\nzz\r\nabc\r\n0\r\n\r\n"
            framing = exchange(port, broken, timeout=30)
            assert framing.status == 400
            assert framing.headers["content-type"] == "application/json"
            assert framing.json()["code"] == "BadRequest"
            # A body past max_body_size (1 MiB) in chunks: 413, as with a length.
            big = {"request_id": "big", "body": {"input_string": "x" * (1 << 21)}}
            too_big = exchange(port, chunked_post("/skeleton/actions", alice, big, 64))
            assert too_big.status == 413, too_big.body[:200]
            assert too_big.json()["code"] == "PayloadTooLarge"


@pytest.mark.e2e
@pytest.mark.parametrize("face", ["", "asgi"])
def test_dev_answers_malformed_requests_in_json(tmp_path: Path, face: str) -> None:
    port = free_port()
    proc, _ = _dev(tmp_path, port, face)
    with proc:
        for what, request in MALFORMED.items():
            answer = exchange(port, request, timeout=30)
            assert 400 <= answer.status < 500, what
            assert answer.headers["content-type"] == "application/json", what
            error = answer.json()
            assert set(error) == {"code", "description"}, what
            assert "nonsense" not in error["description"], what  # never quoted
        answer = exchange(port, get("/skeleton/"))
        assert answer.status == 200  # and it still serves


def test_dechunk_reads_chunks_extensions_and_trailers() -> None:
    stream = io.BytesIO(b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: 1\r\n\r\nNEXT")
    assert dechunk(stream, 100) == b"abcde"
    assert stream.read() == b"NEXT"  # stops where the body ends
    assert dechunk(io.BytesIO(b"a\r\n0123456789\r\n0\r\n\r\n"), 4) == b"0123"
    for broken in (
        b"",  # ends before any size
        b"zz\r\nabc\r\n0\r\n\r\n",  # not hexadecimal
        b"-3\r\nabc\r\n0\r\n\r\n",
        b"3\r\nabcXX0\r\n\r\n",  # no CRLF after the chunk
        b"5\r\nab",  # ends inside a chunk
        b"0\r\nX-Trailer: 1\r\n",  # trailers never end
        b"1" * 5000 + b"\r\n",  # a size line too long
    ):
        with pytest.raises(BadChunking):
            dechunk(io.BytesIO(broken), 100)


def test_a_servers_own_error_is_code_and_description() -> None:
    from aptools.wire import DESCRIPTIONS, error_answer, error_body

    assert json.loads(error_body(414)) == {
        "code": "UriTooLong",
        "description": "The request line is too long.",
    }
    for status in [*DESCRIPTIONS, 418]:
        document = json.loads(error_body(status))
        assert set(document) == {"code", "description"} and document["code"]
        head, _, body = error_answer(status).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % status)
        assert b"Content-Length: %d" % len(body) in head and body == error_body(status)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest.mark.parametrize("face", ["", "asgi"])
@pytest.mark.parametrize("module", ["examples.watchasay.app", "examples.longjob.app"])
def test_every_printed_command_works_as_printed(
    tmp_path: Path, module: str, face: str
) -> None:
    # A synchronous provider, and one whose actions run for seconds in the
    # background: the commands are run as printed, in order.
    port = free_port()
    args = ["dev", module, "--port", str(port), *(["--asgi"] if face else [])]
    with Launched(*args, cwd=tmp_path, env=cli_env()) as proc:
        lines = proc.wait_for(lambda out: "Ctrl-C" in out).splitlines()
        start = lines.index("Try it:")
        comments = [i for i in range(start, len(lines)) if lines[i].startswith("# ")]
        script = "".join(f"{lines[i + 1]}\necho '<<<'\n" for i in comments)
        done = subprocess.run(
            ["bash", "-c", "set -e\n" + script],
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, (done.stdout, done.stderr)
        said = dict(
            zip(
                (lines[i] for i in comments),
                (part.strip() for part in done.stdout.split("<<<")),
                strict=False,
            )
        )
        for comment, output in said.items():
            if "releases" in comment:
                released = json.loads(output)
                assert "action_id" in released, (comment, output)  # not a 409
                assert released["status"] in ("SUCCEEDED", "FAILED"), released
