"""``convbench serve``: a local web app to design, train, watch and compare runs.

The app (:func:`convbench.server.app.create_app`) serves static pages shipped in
``static/`` and a JSON API over one run store. Training never happens in the web server:
each run started from the page is a worker process (:mod:`convbench.server.worker`), at most
``max_runs`` at once, the others queued (:mod:`convbench.server.jobs`). Live updates are
server-sent events fed by one shared poll of the store (:mod:`convbench.server.live`).

>>> from convbench.server.settings import Settings
>>> Settings(store=None, host="127.0.0.1").needs_token
False
"""
