"""The search: configuration, state, sources of truth, predicted objective, controllers, the loop and its run
directory.

Doors in: :class:`hwnas.search.config.RunConfig` (what a run is asked), :func:`hwnas.search.runner.run_search`
(what ``hwnas search`` and :func:`hwnas.start_search` run), :class:`hwnas.search.loop.SearchLoop` (the loop on
any sources of truth), :mod:`hwnas.search.events` (what it reports; :mod:`hwnas.search.tracking` logs it to
MLflow), :data:`hwnas.search.controllers.CONTROLLERS` (the controller registry) and
:class:`hwnas.search.env.ArchEnv` (the environment any Gymnasium agent can learn on).
"""
