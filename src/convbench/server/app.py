"""The FastAPI app of ``convbench serve``: static pages plus a JSON API over one store.

Routes (all under the checks of :mod:`convbench.server.security`):

- pages: ``/`` (playground), ``/runs``, ``/run/{id}``, ``/compare?ids=…``, ``/groups``,
  ``/group/{id}`` — one static shell
  whose script draws the page; ``/static/…`` its files (shipped in the package);
- ``GET /api/meta`` data sets (found or how to get them), models, optimisers, schedules and
  every config field; ``POST /api/check`` a form's messages and live model figures;
  ``POST /api/epoch-time`` the epoch time measured on this machine (a probe process);
- ``POST /api/search`` queue a search (its YAML); ``POST /api/train`` queue a run,
  ``POST /api/lr-find`` an LR range test of the form's
  config (``GET /api/runs/{id}/lr-curve`` its curves and bounds);
  ``POST /api/runs/{id}/pause|stop|resume``;
  ``POST /api/runs/delete``;
- ``GET /api/runs`` paged listing, ``GET /api/facets``, ``GET /api/runs/{id}``,
  ``GET /api/runs/{id}/live``, ``GET /api/runs/{id}/artifacts/{name}``,
  ``GET /api/runs/{id}/mistakes`` (misclassified test images, from a probe process),
  ``GET /api/compare?ids=…``; ``GET /api/groups``, ``GET /api/groups/{id}``, its report
  page ``GET /api/groups/{id}/report`` and a search's ``GET /api/groups/{id}/trials``;
  ``POST /api/groups/{id}/stop`` stops a search the page started (resumable);
  ``GET /api/events`` the live event stream.

User errors (a bad config, an unknown run) answer 4xx with the message the CLI prints.

>>> from convbench.server.settings import Settings
>>> app = create_app(Settings(store=__import__("tempfile").mkdtemp() + "/runs.db"))
>>> sorted(r.path for r in app.routes if r.path.startswith("/api/runs/"))[:2]
['/api/runs/delete', '/api/runs/{run_id}']
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from fastapi.staticfiles import StaticFiles

from .. import config as cfgmod
from ..errors import ConfigError, ConvbenchError, StoreError
from ..report.html import CSS as REPORT_CSS
from ..store import Store
from . import control, playground, views
from .groups import GroupPages, group_rows, trials
from .jobs import Jobs
from .listing import RunFilter, RunIndex
from .live import Live
from .probe import Probes, epoch_key
from .security import Guard
from .settings import Settings

STATIC = resources.files("convbench.server") / "static"
PAGES = ("/", "/runs", "/compare", "/groups")
JsonBody = Annotated[dict | None, Body()]
JOBS_FOLDER = "serve-jobs"


def _error(err: ConvbenchError) -> JSONResponse:
    text = str(err)
    status = 404 if isinstance(err, StoreError) and text.startswith("No run") else 400
    return JSONResponse({"error": text}, status_code=status)


@functools.lru_cache(maxsize=1)
def meta() -> dict[str, Any]:
    """The choices of the playground form (slow once: lists data sets and builds models)."""
    from ..data.info import dataset_info
    from ..models import list_models
    from ..training.optim import OPTIMIZERS
    from ..training.schedules import SCHEDULES

    return {
        "datasets": [{k: d.get(k) for k in ("name", "description", "found", "location",
                                             "how_to_get", "image_shape", "classes")}
                     for d in dataset_info()],
        "models": [{"name": m["name"], "description": m.get("description"),
                    "params": m.get("params")} for m in list_models()],
        "optimizers": OPTIMIZERS.names(), "schedules": SCHEDULES.names(),
        "two_bound_schedules": list(cfgmod.TWO_BOUND_SCHEDULES),
        "fields": [{"path": p, "type": t, "default": d, "help": h}
                   for p, t, d, h in cfgmod.config_fields(cfgmod.RunConfig)],
    }


def create_app(settings: Settings) -> FastAPI:
    """The app for ``settings`` (checked: a non-loopback host gets a token)."""
    settings = settings.checked()
    store = Store(settings.store)
    # The queue lives beside the store, so a restarted server finds it (and its workers).
    jobs = Jobs(store.url, settings.max_runs, store.artifacts_root / JOBS_FOLDER)
    index = RunIndex(store)
    probes = Probes()
    group_pages = GroupPages(store)
    live = Live(store, jobs, index, settings.poll_s)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Warm the slow imports in the background, so the first page answers at once.
        threading.Thread(target=meta, daemon=True).start()
        threading.Thread(target=index.refresh, daemon=True).start()
        poll = asyncio.create_task(live.poll_forever())
        try:
            yield
        finally:
            live.close()
            poll.cancel()
            probes.close()
            await asyncio.to_thread(jobs.shutdown)
            store.close()

    app = FastAPI(title="convbench", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_middleware(Guard, settings=settings)
    app.state.settings, app.state.store, app.state.jobs = settings, store, jobs
    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")

    @app.exception_handler(ConvbenchError)
    async def user_error(request: Request, err: ConvbenchError) -> JSONResponse:
        return _error(err)

    shell = (STATIC / "index.html").read_text(encoding="utf-8")
    for path in PAGES:
        app.add_api_route(path, lambda: HTMLResponse(shell), methods=["GET"],
                          include_in_schema=False)
    for path in ("/run/{run_id}", "/group/{group_id}"):
        app.add_api_route(path, lambda: HTMLResponse(shell), methods=["GET"],
                          include_in_schema=False)
    # The report's own table and figure styles, so the report blocks look as in a report.
    app.add_api_route("/report.css", lambda: Response(REPORT_CSS, media_type="text/css"),
                      methods=["GET"], include_in_schema=False)

    # ----- playground ----------------------------------------------------------------------
    @app.get("/api/meta")
    def api_meta() -> dict:
        return {**meta(), "max_runs": settings.max_runs, "store": store.url.split("@")[-1]}

    @app.post("/api/check")
    def api_check(values: JsonBody) -> dict:
        return playground.check(values or {})

    @app.post("/api/epoch-time")
    def api_epoch_time(values: JsonBody) -> dict:
        # Measured in a probe process, cached per config; {"measuring": true} meanwhile.
        checked = playground.check(values or {})
        if checked["errors"]:
            return {"error": checked["errors"][0]["message"]}
        config = playground.resolved(playground.set_items(values or {})).model_dump(mode="json")
        return probes.get("epoch:" + epoch_key(config), "convbench.server.probe", config)

    @app.post("/api/train")
    def api_train(values: JsonBody) -> JSONResponse:
        values = values or {}
        checked = playground.check(values)
        if checked["errors"]:
            return JSONResponse({"error": checked["errors"][0]["message"], **checked},
                                status_code=422)
        items = playground.set_items(values)
        cfg = playground.resolved(items)
        job = jobs.submit(config=cfg.model_dump(mode="json"))
        return JSONResponse({"job": job.view()})

    @app.post("/api/lr-find")
    def api_lr_find(body: JsonBody) -> JSONResponse:
        # {"values": form values, "spec": {min_lr, max_lr, epochs, …}}: the form's config
        # range-tested as `convbench lr-find` would (one seed, one stored run).
        from ..training.lr_finder import make_spec

        values = (body or {}).get("values") or {}
        checked = playground.check(values)
        if checked["errors"]:
            return JSONResponse({"error": checked["errors"][0]["message"], **checked},
                                status_code=422)
        raw = (body or {}).get("spec") or {}
        spec = make_spec(**{k: raw.get(k) for k in ("min_lr", "max_lr", "epochs", "mode")})
        cfg = playground.resolved(playground.set_items(values))
        job = jobs.submit(config=cfg.model_dump(mode="json"),
                          lr_find=spec.model_dump(mode="json", exclude={"rule"}))
        return JSONResponse({"job": job.view()})

    @app.post("/api/search")
    def api_search(body: JsonBody) -> JSONResponse:
        # {"yaml": the text of a search-space file}: the spec is checked here (an error
        # answers 400 with the CLI's message); the names it picks are checked by the search
        # itself before it trains (a failed job with the CLI's message).
        import yaml as yamlmod

        from ..search.space import parse

        text = (body or {}).get("yaml")
        # Messages name the uploaded file as the CLI names the file it reads.
        source = Path(str((body or {}).get("name") or "search YAML")).name[:100]
        if not isinstance(text, str) or not text.strip():
            raise ConfigError("Paste or upload a search YAML (see docs/search.md).")
        try:
            data = yamlmod.safe_load(text)
        except yamlmod.YAMLError as err:
            raise ConfigError(f"{source}: {str(err).splitlines()[0]}.") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{source}: expected a mapping with name, base, params, search.")
        spec = parse(data, source=source)
        return JSONResponse({"job": jobs.submit(search=spec.model_dump(mode="json")).view()})

    @app.get("/api/runs/{run_id}/lr-curve")
    def api_lr_curve(run_id: str) -> dict:
        return views.lr_curve(store, run_id)

    # ----- runs ---------------------------------------------------------------------------
    @app.get("/api/runs")
    def api_runs(kind: str | None = None, status: str | None = None,
                 dataset: str | None = None, model: str | None = None,
                 group: str | None = None, q: str | None = None, sort: str = "started_at",
                 desc: bool = True, offset: int = 0, limit: int = 50) -> dict:
        flt = RunFilter(kind=kind, status=status, dataset=dataset, model=model, group_id=group,
                        text=q)
        return index.page(flt, sort=sort, descending=desc, offset=offset, limit=limit)

    @app.get("/api/facets")
    def api_facets() -> dict:
        return index.facets()

    @app.get("/api/jobs")
    def api_jobs() -> list:
        return jobs.snapshot()

    @app.get("/api/runs/{run_id}")
    def api_run(run_id: str) -> dict:
        return views.run_detail(store, run_id)

    @app.get("/api/runs/{run_id}/live")
    def api_live(run_id: str, after: int = 0) -> dict:
        run_id = store.resolve_id(run_id)
        run = store.get_run(run_id)
        return {"status": run["status"], "epochs": run["epochs"],
                "batches": control.batch_points(store.run_dir(run_id), after),
                "epochs_planned": ((run.get("config") or {}).get("train") or {}).get("epochs"),
                "error": (run.get("metrics") or {}).get("error"),
                "test_accuracy": (run.get("metrics") or {}).get("test_accuracy"),
                "controllable": control.worker_of(store.run_dir(run_id)) is not None}

    @app.get("/api/runs/{run_id}/mistakes")
    def api_mistakes(run_id: str) -> dict:
        # Misclassified test images of a completed training run, from a probe process.
        run = store.get_run(store.resolve_id(run_id))
        if run["kind"] != "train" or run["status"] != "completed":
            raise StoreError(f"Run {run['id']} is a {run['status']} {run['kind']} run; "
                             "misclassified images are shown for completed training runs.")
        return probes.get("mistakes:" + run["id"], "convbench.server.mistakes",
                          {"store": store.url, "run": run["id"]})

    @app.get("/api/runs/{run_id}/artifacts/{name}")
    def api_artifact(run_id: str, name: str) -> FileResponse:
        path = views.artifact_path(store, run_id, name)
        return FileResponse(path, filename=path.name)

    @app.post("/api/runs/{run_id}/{action}")
    def api_control(run_id: str, action: str, body: JsonBody = None) -> dict:
        run_id = store.resolve_id(run_id)
        run = store.get_run(run_id)
        if action == "resume":
            if run["status"] == "completed":
                raise StoreError(f"Run {run_id} already completed; nothing to resume.")
            # A stopped run's worker may still be exiting: the resume then waits its turn.
            if run["status"] == "running" or jobs.queued(run_id):
                raise StoreError(f"Run {run_id} is running or queued already.")
            if run["kind"] != "train":
                raise StoreError(f"Run {run_id} is a {run['kind']} run; the page resumes "
                                 "training runs (use the command line for the others).")
            control.clear(store.run_dir(run_id))
            return {"job": jobs.submit(resume=run_id).view()}
        if action in control.ACTIONS:
            if jobs.cancel_queued(run_id):
                return {"cancelled": True}
            if run["status"] != "running":
                raise StoreError(f"Run {run_id} is {run['status']}, not running.")
            if control.worker_of(store.run_dir(run_id)) is None:
                raise StoreError(f"Run {run_id} was started outside this app; stop it where "
                                 "it runs (Ctrl-C), then resume it here.")
            control.request(store.run_dir(run_id), action)
            return {"requested": action}
        return JSONResponse({"error": f"Unknown action {action!r}."}, status_code=404)

    @app.post("/api/runs/delete")
    def api_delete(body: JsonBody) -> dict:
        ids = (body or {}).get("ids")
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise StoreError("Send {\"ids\": [run ids]} to delete runs.")
        deleted = []
        for run_id in ids:
            run = store.get_run(store.resolve_id(run_id))
            if run["status"] == "running":
                raise StoreError(f"Run {run['id']} is running; stop it before deleting it.")
            store.delete_run(run["id"])
            index.forget(run["id"])
            deleted.append(run["id"])
        return {"deleted": deleted}

    @app.get("/api/compare")
    def api_compare(ids: str) -> dict:
        return views.compare(store, [i for i in ids.split(",") if i.strip()])

    @app.get("/api/groups")
    def api_groups() -> list:
        return group_rows(store)

    @app.get("/api/groups/{group_id}")
    def api_group(group_id: str) -> dict:
        group = store.get_group(group_id)
        return {**{k: group.get(k) for k in ("id", "kind", "name", "status", "created_at",
                                             "run_ids")},
                "stoppable": group["status"] == "running" and jobs.runs_group(group["id"])}

    @app.post("/api/groups/{group_id}/stop")
    def api_group_stop(group_id: str, body: JsonBody = None) -> dict:
        # SIGTERM to the search's worker: the search ends `stopped`, as after Ctrl-C in a
        # terminal, and `convbench search --resume ID` continues it.
        group = store.get_group(group_id)
        gid = group["id"]
        if group["kind"] != "search":
            raise StoreError(f"Group {gid} is a {group['kind']}; the page stops searches.")
        if group["status"] != "running":
            raise StoreError(f"Search {gid} is {group['status']}, not running.")
        if not jobs.stop_group(gid):
            raise StoreError(f"Search {gid} was started outside this app; stop it where it "
                             f"runs (Ctrl-C), then continue it with `convbench search "
                             f"--resume {gid}`.")
        return {"requested": "stop"}

    @app.get("/api/groups/{group_id}/trials")
    def api_trials(group_id: str) -> dict:
        return trials(store, group_id)

    @app.get("/api/groups/{group_id}/report")
    def api_group_report(group_id: str) -> HTMLResponse:
        return HTMLResponse(group_pages.html(group_id))

    @app.get("/api/events")
    async def api_events() -> StreamingResponse:
        return StreamingResponse(live.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store"})

    return app


def serve(settings: Settings) -> None:
    """Run the app with uvicorn until Ctrl-C; open a browser tab unless told not to."""
    import socket

    import uvicorn

    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    with socket.socket(family) as probe:
        try:
            probe.bind((settings.host, settings.port))
        except OSError as err:
            raise ConfigError(f"Cannot listen on {settings.host}:{settings.port} "
                              f"({err.strerror}); choose another --port or --host.") from None
    app = create_app(settings)
    url = settings.url()
    print(f"convbench serve: {url}  (store {app.state.store!r}; Ctrl-C stops the server and "
          "leaves its runs stopped and resumable)", flush=True)
    if settings.open_browser:
        import webbrowser

        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    # Open event streams never end by themselves: give them 2 s, then close them.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level="warning",
                timeout_graceful_shutdown=2)
