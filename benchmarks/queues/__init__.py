"""Job queues measured side by side on empty jobs (``python -m benchmarks.queues``).

Every contender is a module with the same small interface, so the driver
(:mod:`benchmarks.queues.run`) measures them all alike:

- ``NAME`` and ``STORE`` (``"sqlite"`` or ``"postgresql"``);
- ``fill(place, jobs)``: ``jobs`` empty jobs queued, none running;
- ``drain(place, jobs, at_once)``: seconds until a consumer running
  ``at_once`` jobs at once has run all ``jobs`` queued ones (its start
  included, its stop not);
- ``serve(place, at_once, entered)``: a consumer left running, whose job
  calls ``entered(key)`` as it starts; returns a function that stops it;
- ``submit(place, key)``: one job accepted, in this process, for the
  consumer (of this process or another) to run.

``place`` is a SQLite file's path or a PostgreSQL URL, the contender's own.
"""
