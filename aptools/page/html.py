"""The provider page's HTML: one self-contained document, styled inline.

Every piece of text from the provider's author (title, description, schema
text) goes through :func:`html.escape`. The style sheet is constant, so the
``Content-Security-Policy`` header names its hash and nothing else may load.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from html import escape
from typing import Any, Final

from aptools.page.schema import Row

__all__ = ["CSP", "STYLE", "render"]

# Colours, each against its background, have a contrast of at least 7:1
# (WCAG AAA for normal text); the browser test measures them.
STYLE: Final = """
:root { color-scheme: light; }
body { margin: 0; background: #ffffff; color: #1b1b1b;
  font: 16px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
header, main, footer { max-width: 60rem; margin: 0 auto; padding: 0 1rem; }
header { border-bottom: 3px solid #0b3d91; padding-top: 1.5rem; }
h1 { color: #0b3d91; font-size: 2rem; margin: 0 0 .25rem; }
h2 { color: #0b3d91; font-size: 1.4rem; margin: 2rem 0 .5rem; }
h3 { color: #1b1b1b; font-size: 1.1rem; margin: 1.25rem 0 .5rem; }
.subtitle { color: #3d3d3d; margin: 0 0 1rem; font-size: 1.1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .25rem 1rem; }
dt { font-weight: 600; color: #1b1b1b; }
dd { margin: 0; overflow-wrap: anywhere; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace;
  font-size: .9rem; }
pre { background: #f3f4f6; color: #1b1b1b; border: 1px solid #8a8f98;
  padding: .75rem; overflow-x: auto; }
table { border-collapse: collapse; width: 100%; }
caption { text-align: left; color: #3d3d3d; padding: .25rem 0; }
th, td { border: 1px solid #8a8f98; padding: .4rem .5rem; text-align: left;
  vertical-align: top; overflow-wrap: anywhere; }
th { background: #e8eef7; color: #1b1b1b; }
td ul, dd ul { margin: 0; padding-left: 1.1rem; }
a { color: #0a3d8f; }
a:focus { outline: 3px solid #0b3d91; outline-offset: 2px; }
footer { color: #3d3d3d; margin-top: 2rem; padding-bottom: 2rem; font-size: .9rem; }
"""

_STYLE_HASH: Final = base64.b64encode(hashlib.sha256(STYLE.encode()).digest()).decode()

#: The page's Content-Security-Policy: nothing loads but its own style sheet
#: (and the empty icon, which keeps browsers from asking for /favicon.ico).
CSP: Final = (
    f"default-src 'none'; style-src 'sha256-{_STYLE_HASH}'; img-src data:; "
    "base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)

_EMAIL: Final = re.compile(r"^[^@\s<>\"']+@[^@\s<>\"']+\.[A-Za-z]{2,}$")


def _json(value: Any) -> str:
    return escape(json.dumps(value, indent=2, ensure_ascii=False))


def _contact(text: str) -> str:
    if _EMAIL.match(text):
        return f'<a href="mailto:{escape(text)}">{escape(text)}</a>'
    return escape(text)


def _list(items: Sequence[str]) -> str:
    if not items:
        return "none"
    shown = "".join(f"<li><code>{escape(i)}</code></li>" for i in items)
    return f"<ul>{shown}</ul>"


def _table(schema_rows: Sequence[Row]) -> str:
    if not schema_rows:
        return "<p>The schema names no properties.</p>"
    head = "".join(
        f'<th scope="col">{h}</th>'
        for h in ("Property", "Type", "Required", "Description", "Constraints")
    )
    body = []
    for row in schema_rows:
        limits = "".join(f"<li>{escape(c)}</li>" for c in row.constraints)
        body.append(
            "<tr>"
            f'<th scope="row"><code>{escape(row.path)}</code></th>'
            f"<td>{escape(row.type)}</td>"
            f"<td>{'yes' if row.required else 'no'}</td>"
            f"<td>{escape(row.description)}</td>"
            f"<td>{f'<ul>{limits}</ul>' if limits else ''}</td>"
            "</tr>"
        )
    return (
        '<table aria-describedby="input-note">'
        "<caption>Properties of the run request's <code>body</code></caption>"
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def render(
    about: Mapping[str, Any],
    *,
    action_url: str,
    openapi_url: str,
    dependent_scopes: Sequence[str],
    schema_rows: Sequence[Row],
    example: Any,
    example_fault: str | None,
    flow: Mapping[str, Any],
) -> str:
    """The page for the description document ``about`` (the JSON answered
    at ``GET {prefix}/``), as text."""
    title = escape(about["title"])
    subtitle = about.get("subtitle")
    description = about.get("description")
    schema = about.get("input_schema")
    schema_text = ""
    if isinstance(schema, Mapping) and isinstance(schema.get("description"), str):
        schema_text = f"<p>{escape(schema['description'])}</p>"
    synchronous = (
        "yes: run answers with the finished action"
        if about.get("synchronous")
        else "no: run answers at once; status says when the action has finished"
    )
    dependent = ""
    if dependent_scopes:
        dependent = (
            "<dt>Dependent scopes (the provider acts for you with these)</dt>"
            f"<dd>{_list(dependent_scopes)}</dd>"
        )
    keywords = about.get("keywords") or []
    if example_fault is None:
        checked = "<p>A run with this body is accepted.</p>"
    else:
        checked = (
            "<p>Put in your own values: this body is not accepted as it is "
            f"(<code>{escape(example_fault)}</code>).</p>"
        )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>{title} · Globus Action Provider</title>
<style>{STYLE}</style>
</head>
<body>
<header>
<h1>{title}</h1>
{f'<p class="subtitle">{escape(subtitle)}</p>' if subtitle else ""}
</header>
<main>
{f"<p>{escape(description)}</p>" if description else ""}
<section aria-labelledby="about">
<h2 id="about">About this provider</h2>
<dl>
<dt>Action URL</dt><dd><code id="action-url">{escape(action_url)}</code></dd>
<dt>Scope you consent to</dt>\
<dd><code id="scope">{escape(about["globus_auth_scope"])}</code></dd>
{dependent}
<dt>Synchronous</dt><dd>{synchronous}</dd>
<dt>Admin contact</dt><dd>{_contact(about["admin_contact"])}</dd>
<dt>Runnable by</dt><dd>{_list(about.get("runnable_by", []))}</dd>
<dt>Maximum deadline</dt>\
<dd><code>{escape(about.get("maximum_deadline", ""))}</code></dd>
<dt>Log</dt><dd>{"served" if about.get("log_supported") else "not served"}</dd>
{f"<dt>Keywords</dt><dd>{escape(', '.join(keywords))}</dd>" if keywords else ""}
</dl>
</section>
<section aria-labelledby="input">
<h2 id="input">Input</h2>
<p id="input-note">A run request carries its input as <code>body</code>, \
which must match this schema.</p>
{schema_text}
{_table(schema_rows)}
<h3 id="example">Example body</h3>
{checked}
<pre><code id="example-body">{_json(example)}</code></pre>
</section>
<section aria-labelledby="flow">
<h2 id="flow">In a flow</h2>
<p>A flow of one <code>Action</code> state calling this provider with the \
example body: paste the state into your flow's <code>States</code>, or \
register the whole as a flow to try the provider.</p>
<pre><code id="action-state">{_json(flow)}</code></pre>
</section>
<section aria-labelledby="machine">
<h2 id="machine">For programs</h2>
<ul>
<li><a id="openapi" href="{escape(openapi_url)}">The OpenAPI document \
(<code>openapi.json</code>)</a></li>
<li>This description as JSON: the same URL, asked for with \
<code>Accept: application/json</code>.</li>
</ul>
</section>
</main>
<footer><p>Globus Action Provider Interface {escape(about.get("api_version", ""))}\
</p></footer>
</body>
</html>
"""
