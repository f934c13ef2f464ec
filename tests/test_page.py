"""The provider page: GET {prefix}/ for a browser, on both faces; JSON
clients get the description document exactly as before."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from html.parser import HTMLParser
from typing import Any

import orjson
import pytest

from aptools import Provider
from aptools.page import compile_page
from aptools.protocol.negotiate import prefers_html
from aptools.testing import FakeGlobusAuth, FakeIdentity

from .conftest import Client, MakeClient

BROWSER = (
    "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,"
    "image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7"
)
SCHEMA = {
    "type": "object",
    "description": "What to copy.",
    "properties": {
        "path": {
            "type": "string",
            "minLength": 1,
            "pattern": "^/",
            "description": "An absolute path.",
            "examples": ["/data/x"],
        },
        "mode": {"enum": ["fast", "careful"], "default": "fast"},
        "options": {
            "type": "object",
            "properties": {"retries": {"type": "integer", "maximum": 5}},
            "required": ["retries"],
        },
        "files": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}},
            },
            "minItems": 1,
        },
    },
    "required": ["path", "files"],
    "additionalProperties": False,
}


class Page(HTMLParser):
    """What a test reads of a page: elements' text by id, headings, table
    cells, every URL it refers to, and every tag."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []
        self.headings: list[tuple[str, str]] = []
        self.rows: list[list[str]] = []
        self.by_id: dict[str, str] = {}
        self.style = ""
        self._open: list[tuple[str, str | None, list[str]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        self.urls += [v for k, v in attrs if k in ("href", "src", "action") and v]
        if tag == "tr":
            self.rows.append([])
        if tag not in ("meta", "br"):
            self._open.append((tag, found.get("id"), []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            name, ident, text = self._open.pop()
            joined = "".join(text)
            if self._open:
                self._open[-1][2].append(joined)
            if ident:
                self.by_id[ident] = joined
            if name in ("h1", "h2", "h3", "h4"):
                self.headings.append((name, joined.strip()))
            if name in ("th", "td") and self.rows:
                self.rows[-1].append(joined.strip())
            if name == "style":
                self.style = joined
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._open:
            self._open[-1][2].append(data)


def browse(client: Client, who: FakeIdentity | None = None, **kw: Any) -> Any:
    headers = {"Accept": BROWSER, **kw.pop("headers", {})}
    return client.call("GET", "/", who, headers=headers, **kw)


def test_json_clients_get_the_description_byte_for_byte(make: MakeClient) -> None:
    provider, client = make(input_schema=SCHEMA)
    document = orjson.dumps(provider.description)
    for accept in (
        None,
        "*/*",
        "application/json",
        "application/*",
        "text/html, application/json",
        "application/json;q=0.9, text/html;q=0.9",
        "text/*;q=0.5, application/json;q=0.6",
        "text/html;q=0",
    ):
        headers = {} if accept is None else {"Accept": accept}
        answer = client.call("GET", "/", headers=headers)
        assert answer.status_code == 200, accept
        assert answer.content == document, accept
        assert answer.headers["content-type"] == "application/json", accept
        assert answer.headers["vary"] == "Accept", accept
        assert "content-security-policy" not in answer.headers


def test_a_browser_gets_the_page(make: MakeClient, auth: FakeGlobusAuth) -> None:
    _, client = make(
        title="Copy",
        subtitle="Copies a path",
        description="Copies one path, carefully.",
        input_schema=SCHEMA,
        synchronous=True,
        keywords=["copy"],
    )
    answer = browse(client)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["vary"] == "Accept"
    assert answer.headers["access-control-allow-origin"] == "*"
    page = Page(answer.text)
    assert ("h1", "Copy") in page.headings
    assert [h for h, _ in page.headings] == ["h1", "h2", "h2", "h3", "h2", "h2"]
    assert "Copies one path, carefully." in answer.text
    assert page.by_id["action-url"] == "http://falconframework.org/test"
    assert page.by_id["scope"] == auth.scope
    assert "mailto:admin@example.org" in page.urls
    header, *rows = page.rows
    assert header == ["Property", "Type", "Required", "Description", "Constraints"]
    assert rows == [
        [
            "path",
            "string",
            "yes",
            "An absolute path.",
            "at least 1 charactersmatches ^/",
        ],
        ["mode", "enumeration", "no", "", 'default "fast"one of: "fast", "careful"'],
        ["options", "object", "no", "", ""],
        ["options.retries", "integer", "yes", "", "at most 5"],
        ["files", "array of object", "yes", "", "at least 1 items"],
        ["files[].name", "string", "no", "", ""],
    ]
    assert "What to copy." in answer.text
    assert "yes: run answers with the finished action" in answer.text
    example = json.loads(page.by_id["example-body"])
    flow = json.loads(page.by_id["action-state"])
    assert flow["StartAt"] == "Copy"
    state = flow["States"]["Copy"]
    assert state["Type"] == "Action"
    assert state["ActionUrl"] == "http://falconframework.org/test"
    assert state["Parameters"] == example
    assert state["End"] is True


def test_the_example_body_is_accepted_by_run(
    make: MakeClient, alice: FakeIdentity
) -> None:
    # The echo schema's, and the one above: each page's example runs.
    for schema in (None, SCHEMA):
        given: dict[str, Any] = {"run": lambda request, caller: {"ok": True}}
        if schema is not None:
            given["input_schema"] = schema
        _, client = make(**given)
        example = json.loads(Page(browse(client).text).by_id["example-body"])
        assert "A run with this body is accepted." in browse(client).text
        ran = client.run(alice, example, request_id=f"r-{schema is None}")
        assert ran.status_code == 202, ran.json


def test_an_example_that_would_be_refused_says_why(make: MakeClient) -> None:
    schema = {
        "type": "object",
        "properties": {"path": {"type": "string", "pattern": "^/"}},
        "required": ["path"],
    }
    _, client = make(input_schema=schema)
    page = browse(client).text
    assert "this body is not accepted as it is" in page
    assert "$.body.path: must match the pattern ^/ (rule &#x27;pattern&#x27;)" in page


def test_the_page_loads_nothing_and_names_its_style_in_its_policy(
    make: MakeClient,
) -> None:
    _, client = make(input_schema=SCHEMA)
    answer = browse(client)
    page = Page(answer.text)
    assert not {"script", "img", "iframe", "object", "form"} & set(page.tags)
    assert page.tags.count("link") == 1  # the empty icon
    assert page.urls == ["data:,", "mailto:admin@example.org", "/test/openapi.json"]
    policy = answer.headers["content-security-policy"]
    digest = base64.b64encode(hashlib.sha256(page.style.encode()).digest()).decode()
    assert policy.startswith("default-src 'none'; ")
    assert f"style-src 'sha256-{digest}'" in policy
    assert answer.headers["x-content-type-options"] == "nosniff"
    linked = client.simulate_get(page.urls[2])
    assert linked.status_code == 200 and linked.json["openapi"].startswith("3.1")


def test_everything_the_author_wrote_is_escaped(make: MakeClient) -> None:
    evil = '<script>alert("x")</script>'
    schema = {
        "type": "object",
        "description": evil,
        "properties": {
            evil: {"type": "string", "description": evil, "pattern": evil},
            "n": {"type": "integer", "default": evil, "title": "<b>bold</b>"},
        },
    }
    _, client = make(
        title=evil,
        subtitle=evil,
        description=evil,
        admin_contact='"><script>x</script>@example.org',
        keywords=[evil],
        input_schema=schema,
    )
    answer = browse(client)
    assert answer.status_code == 200
    assert "<script" not in answer.text and "<b>" not in answer.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in answer.text
    page = Page(answer.text)
    assert page.headings[0] == ("h1", evil)
    assert page.rows[1][0] == evil and page.rows[1][3] == evil


def test_a_forged_host_is_left_out_of_the_page(make: MakeClient) -> None:
    _, client = make()
    for host in ('evil"><script>', "a b", "x/y", "ünï.example"):
        answer = browse(client, host=host)
        assert answer.status_code == 200
        page = Page(answer.text)
        assert page.by_id["action-url"] == "/test", host
        assert json.loads(page.by_id["action-state"])["States"]["TestProvider"][
            "ActionUrl"
        ] == ("/test")
    fine = browse(client, host="[::1]:8443")
    assert Page(fine.text).by_id["action-url"] == "http://[::1]:8443/test"


def test_public_url_makes_the_page_constant(
    make: MakeClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, client = make(public_url="https://ap.example.org/api/")
    page = Page(browse(client, host="elsewhere.example").text)
    assert page.by_id["action-url"] == "https://ap.example.org/api/test"
    assert page.urls[-1] == "https://ap.example.org/api/test/openapi.json"
    monkeypatch.setenv("APTOOLS_PUBLIC_URL", "/behind")
    _, proxied = make(prefix="/")
    page = Page(browse(proxied, host="ap.example.org").text)
    assert page.by_id["action-url"] == "http://ap.example.org/behind/"
    assert page.urls[-1] == "/behind/openapi.json"


def test_head_answers_the_page_headers_without_a_body(make: MakeClient) -> None:
    _, client = make()
    answer = client.call("HEAD", "/", headers={"Accept": BROWSER})
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.content == b""


def test_the_page_follows_visible_to(
    make: MakeClient, auth: FakeGlobusAuth, alice: FakeIdentity, bob: FakeIdentity
) -> None:
    _, client = make(visible_to=[alice.urn])
    anonymous = browse(client)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/json"
    assert anonymous.json["code"] == "AuthenticationFailed"
    refused = browse(client, bob)
    assert refused.status_code == 403
    assert "<html" not in refused.text
    seen = browse(client, alice)
    assert seen.status_code == 200 and "<h1>Test provider</h1>" in seen.text
    # JSON under the same rule
    assert client.call("GET", "/", bob).status_code == 403


def test_dependent_scopes_are_listed_when_declared() -> None:
    about = {
        "title": "T",
        "globus_auth_scope": "https://auth.globus.org/scopes/x/all",
        "admin_contact": "not an address <b>",
        "input_schema": {"type": "object"},
    }
    transfer = "urn:globus:auth:scope:transfer.api.globus.org:all"
    text = b"".join(
        compile_page(
            about, prefix="/", base_url="https://x.org", dependent_scopes=[transfer]
        ).parts
    ).decode()
    assert f"<li><code>{transfer}</code></li>" in text
    assert "Dependent scopes" in text
    assert "not an address &lt;b&gt;" in text and "mailto:" not in text
    assert "The schema names no properties." in text
    plain = compile_page(about, prefix="/", base_url="https://x.org").parts
    assert b"Dependent scopes" not in b"".join(plain)


def test_the_openapi_document_says_the_root_may_answer_html(
    auth: FakeGlobusAuth,
) -> None:
    provider = Provider(
        title="T",
        scope=auth.scope,
        admin_contact="a@example.org",
        input_schema={"type": "object"},
    )
    root = provider.openapi()["paths"]["/"]["get"]["responses"]["200"]
    assert set(root["content"]) == {"application/json", "text/html"}


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (None, False),
        ("", False),
        ("*/*", False),
        ("application/json", False),
        ("text/html", True),
        ("TEXT/HTML", True),
        (BROWSER, True),
        ("text/html;q=0.5, application/json", False),
        ("text/html, application/json;q=0.9", True),
        ("text/*, application/json;q=0.5", True),
        ("text/html;level=1;q=0.2, */*;q=0.1", True),
        ("text/html;q=0.4, */*", False),
        ("text/html;q=abc, */*;q=0.1", False),
        ("text/html;q=nan", False),
        ("text/html;q=2", False),
        ("text/html;;;, ,,", True),
        ("html", False),
        ("text/html" + ", x/y" * 10_000, True),
    ],
)
def test_negotiation(accept: str | None, html: bool) -> None:
    assert prefers_html(accept) is html


def test_a_mangled_accept_header_never_fails(make: MakeClient) -> None:
    _, client = make()
    for accept in ("text/html;q=", "text/html;q=1e999", ";;;", "\x7ftext/html", "é"):
        answer = client.call("GET", "/", headers={"Accept": accept})
        assert answer.status_code == 200, accept
        assert re.match(r"(application/json|text/html)", answer.headers["content-type"])
