"""The operations of the Action Provider Interface, one module each."""

from aptools.protocol.operations.describe import introspect, openapi, options_root
from aptools.protocol.operations.enumerate import enumerate_actions
from aptools.protocol.operations.jobs import jobs_listing
from aptools.protocol.operations.log import action_log
from aptools.protocol.operations.manage import cancel, release, resume
from aptools.protocol.operations.ready import ready
from aptools.protocol.operations.run import run
from aptools.protocol.operations.status import status, status_in_place

__all__ = [
    "action_log",
    "cancel",
    "enumerate_actions",
    "introspect",
    "jobs_listing",
    "openapi",
    "options_root",
    "ready",
    "release",
    "resume",
    "run",
    "status",
    "status_in_place",
]
