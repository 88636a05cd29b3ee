"""What a search found and what it cost: one row per configuration, the winner, and — when
discarded configurations were also trained in full (``--audit``) — how well the early verdict
predicted the final one: rank correlations, regret and compute saved.

>>> correlations([0.1, 0.5, 0.3, 0.9], [0.2, 0.6, 0.5, 0.8])["spearman"]
1.0
"""

from __future__ import annotations

import math
import statistics
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from .. import config as cfgmod
from ..store import Store
from . import space as sp
from .rules import summarise
from .storage import get_study, orphaned, trials

COST_KEYS = ("epochs", "seconds", "energy_j")


def correlations(early: list[float], final: list[float]) -> dict[str, float | None]:
    """Spearman's ρ and Kendall's τ-b (with p-values) of early against final scores; None
    with fewer than three pairs or a constant side."""
    out: dict[str, float | None] = {"spearman": None, "spearman_p": None, "kendall": None,
                                    "kendall_p": None, "n": len(early)}
    if len(early) < 3 or len(set(early)) < 2 or len(set(final)) < 2:
        return out
    from scipy import stats

    rho, p_rho = stats.spearmanr(early, final)
    tau, p_tau = stats.kendalltau(early, final)
    out.update(spearman=round(float(rho), 6), spearman_p=float(p_rho),
               kendall=round(float(tau), 6), kendall_p=float(p_tau))
    return out


def _live(study: optuna.Study) -> list[FrozenTrial]:
    """The trials that did work: not orphans (re-queued) and not repeats of an earlier
    configuration (which reuse its results and would only overwrite its row)."""
    return [t for t in trials(study) if not orphaned(t)
            and "duplicate_of" not in t.user_attrs]


def _state(t: FrozenTrial) -> str:
    return t.state.name.lower()


class _Costs:
    """Per-run compute, with the energy of runs that did not record it (pruned or stopped
    runs) estimated from their time at the median power of those that did."""

    def __init__(self, store: Store):
        self.store, self.cache = store, {}
        self.estimated = 0

    def run(self, run_id: str) -> dict[str, float]:
        if run_id not in self.cache:
            r = self.store.get_run(run_id)
            m = r.get("metrics") or {}
            self.cache[run_id] = {"epochs": float(m.get("epochs_run") or len(r["epochs"])),
                                  "seconds": float(m.get("train_time_s") or 0.0),
                                  "energy_j": m.get("energy_j"),
                                  "test_accuracy": m.get("test_accuracy")}
        return self.cache[run_id]

    def power(self) -> float | None:
        rates = [c["energy_j"] / c["seconds"] for c in self.cache.values()
                 if c["energy_j"] and c["seconds"]]
        return statistics.median(rates) if rates else None

    def total(self, run_ids: list[str]) -> dict[str, float]:
        out = dict.fromkeys(COST_KEYS, 0.0)
        watts = self.power()
        for rid in run_ids:
            c = self.run(rid)
            out["epochs"] += c["epochs"]
            out["seconds"] += c["seconds"]
            if c["energy_j"] is None and watts is not None:
                self.estimated += 1
            out["energy_j"] += c["energy_j"] if c["energy_j"] is not None else \
                (watts or 0.0) * c["seconds"]
        return out


def _add(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: a.get(k, 0.0) + b.get(k, 0.0) for k in COST_KEYS}


def _rows(spec: sp.SearchSpec, studies: dict[str, optuna.Study],
          decisions: dict[str, dict]) -> dict[str, dict]:
    rows: dict[str, dict] = {}

    def row(t: FrozenTrial) -> dict:
        a = t.user_attrs
        key = a.get("key") or sp.key_of({k: sp.decode(v) for k, v in t.params.items()})
        r = rows.setdefault(key, {"key": key})
        for k in ("label", "point", "group"):
            if k in a:
                r[k] = a[k]
        return r

    for t in _latest_rounds(_live(studies["screen"])):
        r, a = row(t), t.user_attrs
        r.update(screen_state=_state(t), early=a.get("early"), early_stats=a.get("early_stats"),
                 chance=a.get("chance"), lr_bounds=[a.get("lr_lower"), a.get("lr_upper")],
                 swept=a.get("swept"), screen_runs=a.get("screen_runs", []),
                 error=a.get("error"), early_stops=a.get("early_stops") or [],
                 seeds_run=a.get("seeds_run"), screen_round=a.get("round", 1))
        d = decisions.get(r["key"])
        if d:
            r["kept"], r["discard_reason"] = d["kept"], d["reason"]
            r["discard_rule"] = d.get("rule")
    for t in _live(studies["train"]):
        r, a = row(t), t.user_attrs
        r.update(train_state=_state(t), train_runs=a.get("train_runs", []),
                 pruned_epoch=a.get("pruned_epoch"), error=a.get("error") or r.get("error"),
                 intermediate=dict(t.intermediate_values))
        if t.state == TrialState.COMPLETE:
            r.update(final=a.get("final"), final_stats=a.get("final_stats"))
        if "early" in a and "screen_runs" in a:  # pruner `screen`: screened inside the trial
            r.update(early=a["early"], early_stats=a.get("early_stats"), chance=a.get("chance"),
                     lr_bounds=[a.get("lr_lower"), a.get("lr_upper")], swept=a.get("swept"),
                     screen_runs=a["screen_runs"], kept="discarded" not in a,
                     discard_reason=a.get("discarded"), discard_rule=a.get("discard_rule"),
                     early_stops=a.get("early_stops") or [], seeds_run=a.get("seeds_run"))
    for t in _live(studies["audit"]):
        r, a = row(t), t.user_attrs
        r.update(audit_state=_state(t), audit_runs=a.get("train_runs", []))
        if t.state == TrialState.COMPLETE:
            r.update(audit_final=a.get("final"), audit_stats=a.get("final_stats"))
    return rows


def _latest_rounds(ts: list[FrozenTrial]) -> list[FrozenTrial]:
    """One screening trial per configuration: its latest finished round (adaptive seeds), or
    its latest one when none has finished."""
    pick: dict[str, FrozenTrial] = {}
    for t in ts:
        key = t.user_attrs.get("key", str(t.number))
        rank = (t.state == TrialState.COMPLETE, t.user_attrs.get("round", 1), t.number)
        old = pick.get(key)
        if old is None or rank > (old.state == TrialState.COMPLETE,
                                  old.user_attrs.get("round", 1), old.number):
            pick[key] = t
    return sorted(pick.values(), key=lambda t: t.number)


def _status(r: dict, spec: sp.SearchSpec) -> str:
    if r.get("discard_reason"):
        return f"discarded: {r['discard_reason']}"
    if r.get("error") and "fail" in (r.get("train_state"), r.get("screen_state")):
        return f"failed: {r['error']}"
    state = r.get("train_state")
    if state == "pruned":
        return f"pruned after epoch {r.get('pruned_epoch')}"
    if state == "complete":
        return "kept" if spec.screening else "completed"
    if state in ("waiting", "running") or r.get("screen_state") in ("waiting", "running"):
        return "pending"
    return "kept" if r.get("kept") else (state or r.get("screen_state") or "pending")


def _early_step(rows: dict[str, dict]) -> int | None:
    """For Optuna pruners: the epoch at which early and final are compared — the earliest
    epoch at which a trial was pruned (every trial reached it)."""
    pruned = [r["pruned_epoch"] for r in rows.values() if r.get("pruned_epoch")]
    return min(pruned) if pruned else (1 if any(r.get("intermediate") for r in rows.values())
                                       else None)


def collect(store: Store, storage: Any, spec: sp.SearchSpec, gid: str) -> dict[str, Any]:
    """The summary of search ``gid`` from its studies and runs (see module doc)."""
    group = store.get_group(gid)
    decisions = (group.get("metrics") or {}).get("decisions") or {}
    studies = {p: get_study(storage, gid, p) for p in ("screen", "train", "audit")}
    rows = _rows(spec, studies, decisions)
    step = None if spec.screening else _early_step(rows)
    costs = _Costs(store)
    for r in rows.values():
        r["status"] = _status(r, spec)
        if step is not None and r.get("intermediate"):
            r["early"] = r["intermediate"].get(step, r["intermediate"].get(str(step)))
        r["full"] = r.get("final") if r.get("final") is not None else r.get("audit_final")
        for k in ("screen_runs", "train_runs", "audit_runs"):
            for rid in r.get(k, []):
                costs.run(rid)
    winner = _winner(store, spec, rows, costs)
    ordered = sorted(rows.values(), key=lambda r: (-(r.get("full") or -1), -(r.get("early") or -1)))
    return {
        "id": gid, "name": group.get("name"), "strategy": spec.search.strategy,
        "pruner": spec.search.pruner.name, "early_measure": _early_text(spec, step),
        "rows": ordered, "winner": winner, "audit": _audit(rows, winner, spec.audit.top_k),
        "seeding": _seeding(spec, rows), "early_stops": _early_stops(rows),
        "compute": _compute(rows, costs), "importance": _importance(spec, studies),
        "counts": _counts(rows), "spec": spec.model_dump(mode="json"),
        "repeats": sum("duplicate_of" in t.user_attrs for t in trials(studies["train"])),
        "elapsed_s": (group.get("metrics") or {}).get("elapsed_s"),
    }


def _early_text(spec: sp.SearchSpec, step: int | None) -> str:
    if spec.screening:
        s = spec.screen
        length = f"{s.iters} iterations" if s.iters else f"{s.epochs} epochs"
        seeds = "adaptive seeds (see seeding)" if s.adaptive_seeds else f"{len(s.seeds)} seed(s)"
        subset = f" on a stratified subset of {s.subset} train images" if s.subset else ""
        return (f"{s.aggregate} over {seeds} of the "
                f"{'best' if s.score == 'best_val' else 'final'} validation accuracy of an LR "
                f"range test of {length}{subset}")
    if step is None:
        return "none (no pruning)"
    return f"validation accuracy of the first seed after epoch {step}"


def _counts(rows: dict[str, dict]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rows.values():
        head = r["status"].split(":")[0].split(" after")[0]
        out[head] = out.get(head, 0) + 1
    return out


def winning_order(row: dict) -> tuple[float, float]:
    """The best validation score wins; on a tie (validation sets are small: 400 images score
    in steps of 0.25 points) the better early score, which is also the order a screen's
    survivors are trained in.

    >>> rows = [{"final": 0.855, "early": 0.715}, {"final": 0.855, "early": 0.732}]
    >>> max(rows, key=winning_order)["early"]
    0.732
    """
    return row["final"], row.get("early") or 0.0


def _winner(store: Store, spec: sp.SearchSpec, rows: dict[str, dict],
            costs: _Costs) -> dict[str, Any] | None:
    trained = [r for r in rows.values() if r.get("final") is not None]
    if not trained:
        return None
    best = max(trained, key=winning_order)
    best["winner"] = True
    tests = summarise([costs.run(rid)["test_accuracy"] for rid in best["train_runs"]],
                      spec.search.aggregate)
    run = store.get_run(best["train_runs"][0])
    cfg = dict(run["config"])
    cfg["name"] = f"{spec.name or 'search'}-winner"
    return {"key": best["key"], "label": best["label"], "point": best.get("point"),
            "val": best["final"], "val_stats": best.get("final_stats"), "test": tests,
            "runs": best["train_runs"], "config": cfg,
            "yaml": cfgmod.dump(cfgmod.build(cfg, source="winner"))}


def _seeding(spec: sp.SearchSpec, rows: dict[str, dict]) -> str | None:
    """The adaptive-seeds rule in one sentence, with what it did on this search."""
    s = spec.screen
    if not spec.screening or not s.adaptive_seeds:
        return None
    n = [len(r.get("seeds_run") or []) for r in rows.values() if r.get("seeds_run")]
    second = sum(k >= 2 for k in n)
    rest = sum(k > 2 for k in n)
    return (f"adaptive seeds: one seed (seed {s.seeds[0]}) per configuration; a second for the "
            f"{second} whose early score was within {s.near:.3f} of a rule's threshold; all "
            f"{len(s.seeds)} for the {rest} whose two seeds' spread (± {s.spread_z:g} std) "
            "still reached a threshold. Decisive early stops got no more seeds.")


def _early_stops(rows: dict[str, dict]) -> list[dict[str, Any]]:
    """Every range test that stopped early: configuration, seed, rule, why and when."""
    return [{"label": r.get("label"), **stop} for r in rows.values()
            for stop in r.get("early_stops") or []]


def rule_trust(rows: list[dict], k: int) -> dict[str, dict[str, Any]]:
    """Per rule that discarded something: its discards, how many were trained in full by the
    audit, and how many of those ended in the top ``k`` (at most a quarter) of everything
    trained in full — a rule's misses. ``sentence`` says in one line how far to trust the rule
    on this data.

    >>> rows = [{"full": 0.9}, {"full": 0.8}, {"discard_rule": "far below", "full": 0.85},
    ...         {"discard_rule": "at chance", "full": 0.1}, {"discard_rule": "at chance"},
    ...         {"full": 0.7}, {"full": 0.6}, {"full": 0.5}, {"full": 0.4}]
    >>> t = rule_trust(rows, 2)
    >>> t["far below"]["in_top_k"], t["at chance"]["audited"]
    (1, 1)
    """
    full = sorted((r["full"] for r in rows if r.get("full") is not None), reverse=True)
    # On a small grid the top k would hold nearly everything: at most a quarter of it.
    k = max(1, min(k, len(full) // 4))
    line = full[k - 1] if full else None
    out: dict[str, dict[str, Any]] = {}
    for r in rows:
        rule = r.get("discard_rule") or ("pruned" if r.get("train_state") == "pruned" else None)
        if not rule:
            continue
        t = out.setdefault(rule, {"discarded": 0, "audited": 0, "in_top_k": 0, "misses": [],
                                  "k": k})
        t["discarded"] += 1
        if r.get("full") is not None:
            t["audited"] += 1
            if line is not None and r["full"] >= line:
                t["in_top_k"] += 1
                t["misses"].append(r.get("label"))
    for rule, t in out.items():
        t["sentence"] = _trust_sentence(rule, t)
    return out


def _trust_sentence(rule: str, t: dict[str, Any]) -> str:
    d, a, hit, k = t["discarded"], t["audited"], t["in_top_k"], t["k"]
    if a == 0:
        return (f"{rule}: none of its {d} discard(s) was trained in full — its trust is "
                "unmeasured here; run --audit.")
    sample = "" if a == d else f" ({a} of {d} audited)"
    if hit == 0:
        return (f"{rule}: none of its {a} audited discard(s) would have been in the top {k}"
                f"{sample} — trust it on this data.")
    return (f"{rule}: {hit} of its {a} audited discard(s) would have been in the top {k}"
            f"{sample} ({', '.join(map(str, t['misses']))}) — do not trust it alone on this "
            "data; loosen its margin or audit its discards.")


def _audit(rows: dict[str, dict], winner: dict | None, top_k: int = 3) -> dict[str, Any] | None:
    audited = [r for r in rows.values() if r.get("audit_final") is not None]
    if not audited or winner is None:
        return None
    pairs = [r for r in rows.values() if r.get("early") is not None and r.get("full") is not None]
    corr = correlations([r["early"] for r in pairs], [r["full"] for r in pairs])
    full = [r for r in rows.values() if r.get("full") is not None]
    true_best = max(full, key=lambda r: r["full"])
    true_best["true_best"] = True
    regret = (true_best["full"] - winner["val"]) * 100
    discarded = [r for r in rows.values()
                 if r.get("discard_reason") or r.get("train_state") == "pruned"]
    return {**corr, "pairs": len(pairs), "audited": len(audited), "discarded": len(discarded),
            "true_best": true_best["label"], "true_best_val": true_best["full"],
            "winner_val": winner["val"], "winner_is_best": true_best["key"] == winner["key"]
            or regret <= 1e-9, "regret_points": max(0.0, regret),
            "complete": len(audited) >= len(discarded),
            "rules": rule_trust(list(rows.values()), top_k)}


def _compute(rows: dict[str, dict], costs: _Costs) -> dict[str, Any]:
    """Compute of the heuristic (screening + training) against training every configuration
    in full; configurations never trained in full count at the mean of those that were."""
    zero = dict.fromkeys(COST_KEYS, 0.0)
    used, audit, full_known = dict(zero), dict(zero), []
    for r in rows.values():
        used = _add(used, costs.total(r.get("screen_runs", []) + r.get("train_runs", [])))
        audit = _add(audit, costs.total(r.get("audit_runs", [])))
        if r.get("final") is not None:
            full_known.append(costs.total(r["train_runs"]))
        elif r.get("audit_final") is not None:
            full_known.append(costs.total(r["audit_runs"]))
    n, known = len(rows), len(full_known)
    exhaustive = None
    if known:
        mean = {k: sum(c[k] for c in full_known) / known for k in COST_KEYS}
        exhaustive = {k: sum(c[k] for c in full_known) + (n - known) * mean[k] for k in COST_KEYS}
    savings = None
    if exhaustive:
        savings = {k: (1 - used[k] / exhaustive[k]) * 100 if exhaustive[k] else None
                   for k in COST_KEYS}
    return {"used": used, "audit": audit, "exhaustive": exhaustive, "savings_pct": savings,
            "configurations": n, "trained_in_full": known,
            "exhaustive_estimated": known < n, "energy_estimated_runs": costs.estimated}


def _importance(spec: sp.SearchSpec, studies: dict[str, optuna.Study]) -> dict[str, float]:
    """Optuna's parameter importances for the score the search optimised (early score with
    strategy screen, else final validation accuracy); empty when too few trials."""
    study = studies["screen"] if spec.search.strategy == "screen" else studies["train"]
    done = [t for t in trials(study, (TrialState.COMPLETE,))]
    varied = [p for p in sp.params_of(spec) if not p.is_choice or len(p.choices) > 1]
    if len(done) < 3 or not varied:
        return {}
    try:
        # fANOVA, seeded: Optuna 5's default (PED-ANOVA) gives every parameter the same share
        # on the few dozen trials a search here has.
        imp = optuna.importance.get_param_importances(
            study, params=[p.name for p in varied],
            evaluator=optuna.importance.FanovaImportanceEvaluator(seed=0))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}
    return {k: (v if math.isfinite(v) else 0.0) for k, v in imp.items()}
