"""Discovery sources: the only modules that talk to the network.

A source is an object with a ``name`` and an ``updates()`` async iterator (see :class:`Source`). It runs
forever, reconnecting with backoff on its own, and yields plain events: a complete :class:`View` each
time the set of candidates may have changed, a :class:`Failure` each time it could not get one, and a
:class:`Restart` each time a long-lived stream had to be re-established.
"""

from seedsvc.sources.events import Failure, Restart, Source, SourceEvent, View

__all__ = ["Failure", "Restart", "Source", "SourceEvent", "View"]
