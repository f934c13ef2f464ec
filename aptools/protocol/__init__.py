"""The protocol core: the Action Provider Interface written once, free of I/O.

Every operation (:mod:`aptools.protocol.operations`) is a generator function
taking ``(spec, req, action_id)`` and returning ``(status, body)``: the HTTP
status and the JSON body as bytes. A driver of one of the two faces
(:mod:`aptools.faces.drivers`) runs it to its end, so the same operation
serves WSGI and ASGI.

The rule
--------
What may run **in place**, inside the operation's own code:

- pure computation on what the operation holds: parsing, validation,
  permission checks on the caller and the action, building the reply;
- reading the request's headers and query string, and the token cache
  (:func:`~aptools.protocol.access.cached_caller`);
- store calls, always through ``yield from spec.store_call(fn, *args)``
  (:class:`~aptools.protocol.effects.StoreCall`): the helper itself decides,
  once when the provider is built, whether the store is called in place (a
  local store), in a worker thread, or awaited.

What must be an **effect** (``result = yield SomeEffect(...)``), because it
may wait and so is performed differently by each face:

- reading the request body (:class:`~aptools.protocol.effects.ReadBody`);
- introspecting a token or reading group memberships (``Authenticate``,
  ``Blocking(caller.groups)``);
- calling the author's handlers (``spec.handlers[name](...)``, or for run's
  work ``spec.execution.submit(...)``: :mod:`aptools.execution`);
- sleeping (:class:`~aptools.protocol.effects.Sleep`).

An effect that raises an ``Exception`` raises it at the ``yield``. Anything
else (a cancelled request task, an interrupt) *closes* the operation: its
clean-up runs under ``GeneratorExit`` and must not yield — it calls the store
with ``spec.store_call.now(...)``.

Handler results and consent
---------------------------
Every handler's answer becomes the action by one rule,
:func:`~aptools.actions.apply`; ``ActionFailed`` by
:func:`~aptools.actions.fail`. ``ConsentRequired`` from the run,
status or resume handler (or a job) is no error either:
:func:`~aptools.actions.consent_needed` makes the action INACTIVE
with the consent details and notes in its private state what to retry, which
resume (:mod:`aptools.protocol.operations.manage`) does as the resuming
caller. From other handlers it is answered as a 403.

A worked example
----------------
An operation that answers an action's label to whoever may monitor it::

    def label(spec: Spec, req: Request, action_id: str) -> Op[Reply]:
        caller = yield from authenticate(spec, req)    # in place or an effect
        stored = yield from load(spec, caller, action_id, MONITOR)  # store call
        if "status" in spec.handlers:                  # the author's handler:
            stored = yield from refresh(spec, "status", stored, caller)  # effect
        return 200, to_json({"label": stored.action().label})   # in place

To serve it, add one :class:`~aptools.protocol.routes.Route` entry to
``ROUTES`` in :mod:`aptools.protocol.routes`; the router, the OpenAPI
document, the testing client and the access log read that table.
"""
