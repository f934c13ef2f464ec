"""The protocol core: the Action Provider Interface written once, free of I/O.

Every operation (:mod:`aptools.protocol.operations`) is a generator taking
``(spec, req, action_id)`` and returning ``(status, body)``. Whenever it
needs the outside world — a token introspection, the request body, a store
call, the author's handler — it *yields an effect* (:mod:`.effects`) and a
driver of one of the two faces (:mod:`aptools.faces`) performs it and sends
the result back. So the same operation serves WSGI and ASGI.
"""
