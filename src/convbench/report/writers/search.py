"""The search report: one self-contained HTML page (same style as the comparison report)
plus the winner's config as YAML and the summary as JSON beside it.

Sections: summary, trials (status: kept, discarded and why, pruned, failed), LR range curves
of every screened configuration, early against final accuracy with rank correlations,
compute used against exhaustive full training, parameter importance, the winner's config
and the rules that were applied. The summary is the one the search stored with its group.

>>> paths = write_search_report(summary, store, "out/search.html")        # doctest: +SKIP
>>> sorted(paths)                                                         # doctest: +SKIP
['html', 'json', 'yaml']
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from ...atomic import write_text
from .. import fmt
from ..exports import json_text
from ..html import Cell, escape, figure, page, table
from ..writer import WRITERS, ReportError, check_report_path, write_files


def _pct(stats: dict | None, value: float | None = None) -> Cell:
    v = value if value is not None else (stats or {}).get("value")
    if v is None:
        return Cell(None, fmt.MISSING)
    sub = ""
    if stats and (stats.get("n") or 0) > 1:
        sub = f"± {fmt.percent_points(stats['std'])} (n={stats['n']})"
    return Cell(v, fmt.percent(v), sub=sub)


def _lr(bounds: list | None) -> str:
    if not bounds or bounds[0] is None or bounds[1] is None:
        return fmt.MISSING
    return f"{bounds[0]:.3g} – {bounds[1]:.3g}"


def _summary_html(s: dict) -> str:
    w, c, a = s.get("winner"), s["compute"], s.get("audit")
    items = [("Strategy", f"{s['strategy']} (pruner {s['pruner']})"),
             ("Configurations", f"{c['configurations']}: " + ", ".join(
                 f"{n} {k}" for k, n in sorted(s["counts"].items()))),
             ("Early verdict", s["early_measure"])]
    if w:
        items += [("Winner", w["label"]),
                  ("Winner validation", fmt.percent(w["val"])),
                  ("Winner test (reported for the winner only)", fmt.percent(w["test"]["value"]))]
    if c.get("savings_pct"):
        items.append(("Compute saved vs exhaustive",
                      f"{c['savings_pct']['epochs']:.1f} % of epochs, "
                      f"{c['savings_pct']['seconds']:.1f} % of time"
                      + (" (exhaustive partly estimated)" if c["exhaustive_estimated"] else "")))
    if a:
        items.append(("Audit", f"Spearman ρ {fmt.plain(a['spearman'])}, Kendall τ "
                      f"{fmt.plain(a['kendall'])}; winner is the true best: "
                      f"{'yes' if a['winner_is_best'] else 'no'} (regret "
                      f"{fmt.plain(a['regret_points'], 3)} points)"))
    if s.get("seeding"):
        items.append(("Seeds", s["seeding"]))
    dl = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in items)
    return f'<dl class="kv">{dl}</dl>' + _trust_html(s)


def _trust_html(s: dict) -> str:
    """One sentence per rule that discarded something: how far to trust it on this data."""
    rules = (s.get("audit") or {}).get("rules") or {}
    if not rules:
        return ""
    items = "".join(f"<li>{escape(t['sentence'])}</li>" for t in rules.values())
    return f"<p><strong>How far to trust each rule</strong></p><ul>{items}</ul>"


def _early_stops_html(s: dict) -> str | None:
    """Every range test stopped before its end: when (share of its iterations) and why."""
    stops = s.get("early_stops") or []
    if not stops:
        return None
    rows = [{"label": x.get("label"), "seed": str(x.get("seed")), "rule": x["rule"],
             "when": f"{x['iteration']} of {x['iterations']} iterations "
                     f"({x['fraction']:.0%})", "why": x["why"]} for x in stops]
    return table([("label", "Configuration"), ("seed", "Seed"), ("rule", "Rule"),
                  ("when", "Stopped after"), ("why", "Why")], rows) + \
        '<p class="note">Range tests stopped as soon as they were decided (docs/search.md, ' \
        '"Cheaper screens"); "at chance" and "hopeless" discard the configuration.</p>'


def _trials_html(s: dict) -> str:
    rows = []
    for r in s["rows"]:
        status = r["status"] + (" — winner" if r.get("winner") else "")
        rows.append({
            "label": r.get("label", r["key"]), "group": r.get("group"), "status": status,
            "early": _pct(r.get("early_stats"), r.get("early")),
            "bounds": _lr(r.get("lr_bounds")),
            "final": _pct(r.get("final_stats") or r.get("audit_stats"), r.get("full")),
            "audited": "yes" if r.get("audit_final") is not None else "",
            "test": fmt.percent(s["winner"]["test"]["value"]) if r.get("winner") else "",
        })
    cols = [("label", "Configuration"), ("group", "Group"), ("status", "Status"),
            ("early", "Early val acc"), ("bounds", "LR bounds"), ("final", "Final val acc"),
            ("audited", "Audit"), ("test", "Test acc")]
    return table(cols, rows, best={"early": "max", "final": "max"})


def _curves_html(s: dict, store: Any) -> str | None:
    # Imported here: registering the writers must not import the search engine.
    from ...search.plots import curves_of, range_curves_figure

    by_group: dict[str, list[dict]] = {}
    for r in s["rows"]:
        runs = [store.get_run(rid) for rid in r.get("screen_runs", [])]
        runs = [x for x in runs if (x.get("metrics") or {}).get("curve")]
        if not runs:
            continue
        # The seed whose early score is the median stands for the configuration.
        runs.sort(key=lambda x: x["metrics"].get("best_val_accuracy") or 0.0)
        curve = curves_of(runs[len(runs) // 2])
        status = "kept" if r["status"].startswith(("kept", "completed")) else "other"
        by_group.setdefault(r.get("group") or "all", []).append(
            {**curve, "label": r.get("label", r["key"]), "status": status})
    if not by_group:
        return None
    figs = [figure(range_curves_figure(curves, title=f"group: {g}" if len(by_group) > 1 else ""),
                   caption=f"LR range tests ({g}): kept configurations in colour, discarded "
                           "in grey; the median seed of each.")
            for g, curves in by_group.items()]
    return "\n".join(figs)


def _audit_html(s: dict) -> str | None:
    a = s.get("audit")
    pts = [{"early": r["early"], "final": r["full"], "label": r.get("label"),
            "kept": not (r.get("discard_reason") or r.get("train_state") == "pruned"),
            "winner": r.get("winner"), "best": r.get("true_best")}
           for r in s["rows"] if r.get("early") is not None and r.get("full") is not None]
    if len(pts) < 2:
        return None
    from ...search.plots import early_final_figure

    stats = a or {}
    fig = figure(early_final_figure(pts, stats),
                 caption="Early verdict against final validation accuracy (discarded "
                         "configurations are known only when audited).")
    if not a:
        return fig + '<p class="note">Run with --audit to train the discarded configurations '\
                     'in full and measure the correlation and regret.</p>'
    def with_p(name: str) -> str:
        return f"{fmt.plain(a[name])} ({fmt.sig(a[name + '_p'])})"

    rows = [{"k": "Spearman ρ (p)", "v": with_p("spearman")},
            {"k": "Kendall τ (p)", "v": with_p("kendall")},
            {"k": "Pairs (early, final)", "v": str(a["pairs"])},
            {"k": "Audited / discarded", "v": f"{a['audited']} / {a['discarded']}"},
            {"k": "True best", "v": f"{a['true_best']} ({fmt.percent(a['true_best_val'])})"},
            {"k": "Winner is the true best", "v": "yes" if a["winner_is_best"] else "no"},
            {"k": "Regret", "v": f"{fmt.plain(a['regret_points'], 3)} points"}]
    note = "" if a["complete"] else (
        '<p class="callout">Only a sample of the discarded configurations was audited: the '
        "true best may be missing.</p>")
    return fig + table([("k", "Measure"), ("v", "Value")], rows) + note


def _compute_html(s: dict) -> str:
    c = s["compute"]
    fmts = {"epochs": lambda v: f"{v:.1f}", "seconds": fmt.duration, "energy_j": fmt.energy_j}
    audited = bool(c["audit"]["epochs"])
    names = {"epochs": "Epochs", "seconds": "Train time", "energy_j": "Energy"}
    rows = []
    for k in ("epochs", "seconds", "energy_j"):
        ex = (c.get("exhaustive") or {}).get(k)
        sav = (c.get("savings_pct") or {}).get(k)
        rows.append({"what": names[k], "used": fmts[k](c["used"][k]),
                     "exhaustive": fmts[k](ex) if ex is not None else fmt.MISSING,
                     "saved": f"{sav:.1f} %" if sav is not None else fmt.MISSING,
                     "audit": fmts[k](c["audit"][k]) if audited else fmt.MISSING})
    note = (f"<p class=\"note\">Used = screening + training of the search. Exhaustive = every "
            f"configuration trained in full ({c['trained_in_full']} of "
            f"{c['configurations']} measured"
            + (", the others counted at their mean" if c["exhaustive_estimated"] else "")
            + "). The audit's own cost is shown apart."
            + (f" Energy of {c['energy_estimated_runs']} pruned or stopped run(s) estimated "
               "from their time." if c["energy_estimated_runs"] else "") + "</p>")
    return table([("what", "Compute"), ("used", "Used"), ("exhaustive", "Exhaustive"),
                  ("saved", "Saved"), ("audit", "Audit (extra)")], rows) + note


def _importance_html(s: dict) -> str | None:
    imp = s.get("importance") or {}
    if not imp:
        return None
    rows = [{"p": k, "v": Cell(v, f"{v * 100:.1f} %")} for k, v in imp.items()]
    target = "early score" if s["strategy"] == "screen" else "final validation accuracy"
    return table([("p", "Parameter"), ("v", "Importance")], rows, best={"v": "max"}) + \
        f'<p class="note">Optuna\'s parameter importance for the {target}.</p>'


def _rules_html(s: dict) -> str:
    spec = s["spec"]
    shown = {"search": spec["search"]}
    if s["strategy"] == "screen" or s["pruner"] == "screen":
        shown["screen"] = spec["screen"]
    text = yaml.safe_dump(shown, sort_keys=False)
    return ("<details><summary>Search and screening settings (the rules applied)</summary>"
            f"<pre><code>{escape(text)}</code></pre></details>")


def write_search_report(summary: dict[str, Any], store: Any, path: str | Path,
                        title: str | None = None) -> dict[str, Path]:
    """Write the HTML report, ``<stem>-winner.yaml`` and ``<stem>.json`` beside it; ``store``
    holds the screening runs whose LR range curves are drawn."""
    path = check_report_path(path)
    sections = [("Summary", _summary_html(summary)), ("Trials", _trials_html(summary))]
    for heading, html in (("Early stops", _early_stops_html(summary)),
                          ("LR range curves", _curves_html(summary, store)),
                          ("Early against final", _audit_html(summary)),
                          ("Compute", _compute_html(summary)),
                          ("Parameter importance", _importance_html(summary))):
        if html:
            sections.append((heading, html))
    out: dict[str, Path] = {}
    w = summary.get("winner")
    if w:
        out["yaml"] = path.with_name(f"{path.stem}-winner.yaml")
        write_text(out["yaml"], f"# Winner of search {summary['id']}: {w['label']}\n"
                                f"#   convbench train {out['yaml'].name}\n{w['yaml']}")
        sections.append(("Winning config", f"<p>Reproduce it with <code>convbench train "
                         f"{escape(out['yaml'].name)}</code>:</p><pre><code>"
                         f"{escape(w['yaml'])}</code></pre>"))
    sections.append(("Rules", _rules_html(summary)))
    title = title or f"convbench search {summary.get('name') or summary['id']}"
    written = write_files(path, {
        "html": page(title, sections, subtitle=f"search {summary['id']} · "
                                               f"{summary.get('status', '')}"),
        "json": json_text(summary)})
    return {**written, **out}


@WRITERS.register("search")
def _write(runs: list[dict], path: str | Path, *, group: dict | None = None, store: Any = None,
           title: str | None = None) -> dict[str, Path]:
    group = group or {}
    summary = (group.get("metrics") or {}).get("summary")
    if not summary:
        raise ReportError(f"Search {group.get('id')} has no summary yet (it stopped before "
                          f"it finished): `convbench search --resume {group.get('id')}` "
                          "finishes it.")
    return write_search_report(summary, store, path, title=title)
