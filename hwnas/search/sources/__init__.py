"""The search's sources of truth, one module each:

- :mod:`~hwnas.search.sources.latency` -- measured latency from a device profile (measuring on this machine);
- :mod:`~hwnas.search.sources.tables` -- published latency/accuracy tables standing in for device and trainings;
- :mod:`~hwnas.search.sources.accuracy` -- trainings (or table look-ups) through the evaluation store, and a
  supernet's estimates;
- :mod:`~hwnas.search.sources.function` -- the user's own accuracy function (:func:`hwnas.start_search`).

Each implements a protocol of :mod:`hwnas.search.state` (``AccuracySource``, ``LatencySource``,
``EstimateSource``), which is all the loop knows of them.
"""
