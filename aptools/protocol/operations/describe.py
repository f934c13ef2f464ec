"""introspect, openapi and OPTIONS: documents about the provider."""

from __future__ import annotations

from aptools.protocol.access import (
    authenticate,
    require,
)
from aptools.protocol.effects import Op
from aptools.protocol.negotiate import prefers_html
from aptools.protocol.spec import Reply, Request, Spec


def _described(spec: Spec, req: Request, document: bytes) -> Op[Reply]:
    """A document about the provider, for whom ``visible_to`` allows."""
    if not spec.visible.everyone:
        caller = yield from authenticate(spec, req)
        yield from require(spec.visible, caller)
    return 200, document


def introspect(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """The description document; for a browser (HTML preferred to JSON),
    the provider page (:mod:`aptools.page`)."""
    if spec.page is not None and prefers_html(req.get_header("Accept")):
        status, _ = yield from _described(spec, req, b"")
        return status, spec.page.render(req.scheme, req.netloc)
    return (yield from _described(spec, req, spec.description))


def openapi(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """The provider's OpenAPI document, visible to whom the description is."""
    return (yield from _described(spec, req, spec.openapi))


def options_root(spec: Spec, req: Request, action_id: str | None) -> Op[Reply]:
    """Any path's OPTIONS answer, 204 without a body: its headers (``Allow``,
    and at the root the CORS preflight's) come from the route table."""
    return 204, b""
    yield  # pragma: no cover - every operation is a generator
