"""Human spot-checks: a blind, self-contained review page, and the labels it exports back in.

The page shows a stratified, seeded sample of examples (prompt, reference, each run's answer in
a per-example shuffled, unlabelled order), lets a reviewer score each criterion and add a note,
keeps progress in the browser (localStorage) and exports a labels JSONL. Which run each shown
slot holds is recorded in the store (`review_pages.manifest`), never on the page, and import
un-shuffles with it. The same safety rules as the report: data embedded as inert JSON, set as
text only, a CSP that allows our script by hash and fetches nothing.
"""

from __future__ import annotations

import base64
import hashlib
import math
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field

from harness.config import LocatedYaml, Strict
from harness.errors import UserError
from harness.store import Store
from harness.store import queries_reports as queries
from harness.suite import parse_json_line
from harness.textfile import read_utf8
from reports.collect import _cut
from reports.render import TEMPLATES, _env, embed_json


class ReviewCriterion(Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    min: int = 1
    max: int = 5


class ReviewCriteria(Strict):
    criteria: list[ReviewCriterion] = Field(min_length=1)


def load_criteria(path: Path | None) -> list[ReviewCriterion]:
    """A criteria file (YAML `criteria: [{name, description, min, max}]`); default: one 1-5 `quality`."""
    if path is None:
        return [ReviewCriterion(name="quality", description="Correct, complete and clear?")]
    doc = LocatedYaml(Path(path))
    crit = doc.validate(ReviewCriteria).criteria
    for i, c in enumerate(crit):
        if c.max <= c.min:
            raise doc.error("max must be above min", ("criteria", i, "max"))
    return crit


def _sample(scores: dict[str, float | None], ids: list[str], k: int, seed: int) -> list[str]:
    """`k` ids stratified by the first run's score (five quantile bins, then unscored), seeded."""
    rng = np.random.default_rng(seed)
    if k >= len(ids):
        return list(rng.permutation(ids))
    scored = [e for e in ids if scores.get(e) is not None]
    strata = [sorted(set(ids) - set(scored))] if len(scored) < len(ids) else []
    if scored:
        order = sorted(scored, key=lambda e: (scores[e], e))
        strata += [list(x) for x in np.array_split(np.array(order, dtype=object), min(5, len(order)))]
    strata = [s for s in strata if len(s)]
    quota = [int(k * len(s) / len(ids)) for s in strata]
    for i in np.argsort([-(k * len(s) / len(ids) - q) for s, q in zip(strata, quota)])[: k - sum(quota)]:
        quota[i] += 1
    picked = [e for s, q in zip(strata, quota) for e in rng.choice(s, size=min(q, len(s)), replace=False)]
    return [str(e) for e in rng.permutation(picked)]


def build_review(
    store: Store, run_refs: list[str], *, sample: int, criteria: list[ReviewCriterion], seed: int = 0
) -> tuple[str, str]:
    """(review id, the page's HTML); the manifest is stored so import can un-shuffle."""
    runs = [store.get_run(r) for r in run_refs]
    if len({r.suite_id for r in runs}) != 1:
        raise UserError("review runs of one suite: these runs are of different suites (or versions)")
    if len({r.run_id for r in runs}) != len(runs):
        raise UserError("a run is given twice")
    outs = [store.example_outputs(r.run_id, _ids(store, r.run_id)) for r in runs]
    common = [e for e in _ids(store, runs[0].run_id) if all(e in o for o in outs)]
    if not common:
        raise UserError("the runs share no examples to review")
    first_metric = next(iter(store.run_metrics(runs[0].run_id)), None)
    scores = {}
    if first_metric:
        scores = {
            e: v for e, v, _, err, _ in store.scores(runs[0].run_id, first_metric["metric"]) if err is None
        }
    ids = _sample(scores, common, sample, seed)
    rng = np.random.default_rng(seed + 1)
    review_id = "rv-" + uuid.uuid4().hex[:10]
    items, manifest = [], {}
    for e in ids:
        order = rng.permutation(len(runs)).tolist()  # slot k shows run order[k]
        manifest[e] = [runs[i].run_id for i in order]
        o0 = outs[0][e]
        refs = [_cut(str(x)) for x in o0.get("reference") or []]
        answers = [_cut(outs[i][e].get("output") or "(no output)") for i in order]
        items.append({"id": e, "prompt": _cut(o0.get("prompt") or ""), "reference": refs, "answers": answers})
    queries.insert_review_page(store, review_id, [r.run_id for r in runs], [c.model_dump() for c in criteria],
                         manifest, seed)  # fmt: skip
    payload = {"review_id": review_id, "criteria": [c.model_dump() for c in criteria], "items": items}
    js = (TEMPLATES / "review.js").read_text(encoding="utf-8")
    digest = base64.b64encode(hashlib.sha256(js.encode("utf-8")).digest()).decode()
    csp = (
        f"default-src 'none'; script-src 'sha256-{digest}'; style-src 'unsafe-inline'; "
        "img-src data:; base-uri 'none'; form-action 'none'"
    )
    from markupsafe import Markup

    html = _env().get_template("review.html.j2").render(
        title=f"{runs[0].suite_name}: {len(items)} examples, {len(runs)} answers each (blind)",
        csp=csp, js=Markup(js), data_json=Markup(embed_json(payload)), review_id=review_id,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    )  # fmt: skip
    return review_id, html


def _ids(store: Store, run_id: str) -> list[str]:
    return queries.run_example_ids(store, run_id)


_FIELDS = {"review_id": str, "example_id": str, "slot": int, "reviewer": str, "criterion": str}


def import_labels(store: Store, path: Path) -> dict[str, Any]:
    """Store a labels JSONL (un-shuffled to run ids); then kappa with every judge run that scored
    the same model's answers, into judge_agreements and judge health. Nothing is stored on error."""
    if not path.is_file():
        raise UserError("labels file not found", path=path)
    pages: dict[str, dict[str, Any]] = {}
    rows = []
    for n, raw in enumerate(read_utf8(path).splitlines(), start=1):  # bad UTF-8: located
        if not raw.strip():
            continue
        rec = parse_json_line(raw, path, n)  # bad JSON or nesting past the limit: located
        if not isinstance(rec, dict):
            raise UserError(f"expected a JSON object, got {type(rec).__name__}", path=path, line=n)
        for key, typ in _FIELDS.items():
            # `true` is an int to Python; never a slot (or, below, a score) of 1
            if not isinstance(rec.get(key), typ) or isinstance(rec.get(key), bool):
                raise UserError(f"'{key}' must be a {typ.__name__}", path=path, line=n, field=key)
        for key in ("note", "labelled_at"):
            if not isinstance(rec.get(key), str | None):
                raise UserError(f"'{key}' must be a string or null", path=path, line=n, field=key)
        if rec.get("labelled_at") is not None:
            try:
                datetime.fromisoformat(rec["labelled_at"].replace("Z", "+00:00"))
            except ValueError:
                raise UserError(
                    "'labelled_at' must be an ISO 8601 time", path=path, line=n, field="labelled_at"
                ) from None
        rid = rec["review_id"]
        if rid not in pages:
            found = queries.review_page(store, rid)
            if found is None:
                raise UserError(f"unknown review '{rid}' (not made from this store)", path=path, line=n)
            pages[rid] = {"manifest": found[0], "criteria": {c["name"]: c for c in found[1]}}
        page = pages[rid]
        slots = page["manifest"].get(rec["example_id"])
        crit = page["criteria"].get(rec["criterion"])
        if slots is None or not 0 <= rec["slot"] < len(slots) or crit is None:
            raise UserError("example, slot or criterion is not on that review page", path=path, line=n)
        score = rec.get("score")
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
            or not crit["min"] <= score <= crit["max"]
        ):
            raise UserError(f"score must be {crit['min']}..{crit['max']}", path=path, line=n, field="score")
        rows.append((rid, slots[rec["slot"]], rec["example_id"], rec["reviewer"], rec["criterion"],
                     float(score), rec.get("note"), rec["slot"], rec.get("labelled_at")))  # fmt: skip
    queries.insert_review_labels(store, rows)
    return {"labels": len(rows), "agreements": judge_agreements(store, path, {r[1] for r in rows})}


def judge_agreements(store: Store, path: Path, run_ids: set[str]) -> list[dict[str, Any]]:
    """Kappa between human labels and each judge run over the same model's answers."""
    from judges.agreement import agreement, store_agreement
    from judges.health import main_metric, update_kappa

    out = []
    for rid in sorted(run_ids):
        run = store.get_run(rid)
        human = queries.human_scores(store, rid)
        for jid in queries.judge_runs_of_model(store, run.model_id):
            metrics = [m["metric"] for m in store.run_metrics(jid)]
            kind = "pairwise" if "consistency" in metrics else "rubric"
            metric = main_metric(metrics, kind)
            scored = {e: v for e, v, _, err, _ in store.scores(jid, metric) if err is None and v is not None}
            if len(set(scored) & set(human)) < 2:
                continue
            res = agreement(scored, human)
            store_agreement(store, jid, metric, path, res)
            update_kappa(store, jid)
            out.append(
                {"judge_run": jid, "run": rid, "metric": metric, "n": res.n, "kappa": res.kappa_quadratic}
            )
    return out
