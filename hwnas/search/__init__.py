"""The search: Gymnasium environment, rewards, controllers, predicted objective, the loop and its run directory.

Doors in: :func:`hwnas.search.runner.run_search` (what ``hwnas search`` runs), :class:`hwnas.search.loop.SearchLoop`
(the loop on any sources of truth), :data:`hwnas.search.controllers.CONTROLLERS` (the controller registry) and
:class:`hwnas.search.env.ArchEnv` (the environment any Gymnasium agent can learn on).
"""
