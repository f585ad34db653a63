"""Render the generated parts of the documentation; never type a measured figure by hand.

    .venv/bin/python docs/render.py            # rewrite the blocks and docs/configuration.md
    .venv/bin/python docs/render.py --check    # exit 1, naming page and block, if any differs
    make docs                                  # the same as the first line

Two kinds of generated text:

- Figures. Every benchmark (benchmarks/*.py) writes its figures to docs/results/<name>.json
  with the command, date and machine. A page holds a block

      <!-- results:nightly.stages -->
      ...generated Markdown...
      <!-- /results:nightly.stages -->

  and this script fills it with a table from docs/results/nightly.json (`nightly` is the
  file, `stages` the view; see VIEWS). A benchmark without a file renders as "not measured
  on this code yet" with the command that measures it.
- docs/configuration.md, entirely: the nightly, monitor and rollback parameters, the
  dataset.toml schema, the RECS_* settings and the Makefile's variables, each with name,
  type, default and description, read from the pydantic models and the Makefile.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import inspect
import io
import json
import os
import re
import sys
import textwrap
import tokenize
import types
import typing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
RESULTS = DOCS / "results"
CONFIGURATION = DOCS / "configuration.md"

if str(REPO) not in sys.path:  # run as a script: the project's packages sit beside docs/
    sys.path.insert(0, str(REPO))

from tasks.config_schema import unwrap  # noqa: E402  (after the path is set)

BLOCK = re.compile(
    r"(?P<open><!-- results:(?P<key>[\w.-]+) -->\n)(?P<body>.*?)"
    r"(?P<close><!-- /results:(?P=key) -->)",
    re.S,
)
OPENING = re.compile(r"<!-- results:([\w.-]+) -->")


# ---------------------------------------------------------------- the benchmarks' files


@dataclass(frozen=True)
class Benchmark:
    command: str  # the command that (re)measures it, run from the repository root
    what: str


BENCHMARKS: dict[str, Benchmark] = {
    "nightly": Benchmark(
        ".venv/bin/python -m benchmarks.nightly --preset demo",
        "the nightly flow on the `demo` store, stage by stage",
    ),
    "large": Benchmark(
        ".venv/bin/python -m benchmarks.large",
        "the nightly flow on the `large` store (500,000 users, 20,000 products)",
    ),
    "scoring": Benchmark(
        "make bench-deps && .venv/bin/python -m benchmarks.scoring",
        "the scorer against implicit, LightFM's predict and the bare matrix product",
    ),
    "refit": Benchmark(
        ".venv/bin/python -m benchmarks.refit --preset demo --refit-epochs 1 3 5 10",
        "the published model's refit, continued or from scratch",
    ),
    "ab_test": Benchmark(
        ".venv/bin/python -m benchmarks.ab_test --preset medium",
        "an A/B test on the living `medium` store",
    ),
    "beauty": Benchmark(
        ".venv/bin/python -m benchmarks.beauty",
        "the nightly flow on Amazon Beauty, next to published results",
    ),
    "determinism": Benchmark(
        ".venv/bin/python -m benchmarks.determinism --preset demo",
        "the demo nightly twice with repeatable training and twice with Hogwild",
    ),
    "nightly-hogwild": Benchmark(
        ".venv/bin/python -m benchmarks.nightly --preset demo --hogwild",
        "the demo nightly with Hogwild training: what repeatable training costs",
    ),
    "large-hogwild": Benchmark(
        ".venv/bin/python -m benchmarks.large --hogwild",
        "the `large` nightly with Hogwild training: what repeatable training costs",
    ),
    "ratings_world": Benchmark(
        ".venv/bin/python -m benchmarks.ratings_world",
        "the nightly on the ratings world (bursts of ratings, no category, long tail)",
    ),
    "screenshot_report": Benchmark(
        ".venv/bin/python -m benchmarks.screenshot_report "
        "data/runs/<run_id>/reports/evaluation_report.html --out docs/evaluation_report.png",
        "the evaluation page in headless Chromium",
    ),
}

# Targets the figures are judged against (requirements, not measurements).
TARGETS = {
    "large_wall_s": 30 * 60,  # the large preset end to end: under 30 minutes
    "large_peak_rss_mib": 12 * 1024,  # ... and under 12 GiB
    "demo_lift_over_popularity": 1.3,  # tests/model/test_model_quality.py requires it
    "validate_share_of_wall": 0.10,  # validation: at most a tenth of the nightly run
    "scoring_vs_implicit": 1.3,
    "scoring_vs_predict_loop": 40.0,
    "scoring_share_of_gemm_eligible": 0.75,  # of the multiply over the products it scores
    "scoring_peak_rss_mib_1m": 1024,
    "beauty_hr10": 0.101,
    "beauty_ndcg10": 0.062,
}

STAGE_NOTES = {
    "extract": "read, conform, integrate, snapshot",
    "validate": "Great Expectations checkpoints, quarantine, Data Docs",
    "commit-central": "the central dataset and its high-water mark",
    "split": "test, validation and training events",
    "build-features": "per stage: tune, evaluate, final",
    "tune": "LightFM trials with early stopping, neighbour settings, blend weightings",
    "train-candidates": "every candidate on the split, then the refit on all events",
    "evaluate": "every candidate, all metrics, bootstrap, each publishing rule's cost",
    "publish-recommendations": "score every user, tiers, rules, reasons, write, switch",
    "write-data-report": "the data report page",
    "split-latest-transaction": "test, validation and training events",
    "gate": "the gate's checks",
    "write-run-metrics": "metrics.json of the run",
    "register-model": "the registry entry",
    "promote-champion": "the champion pointer",
    "mark-published": "the registry says published",
    "write-evaluation-report": "the evaluation report page",
    "write-index": "data/index.html",
}


def load(name: str, results: Path) -> dict | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    return json.loads(path.read_text())


def niced(command: str) -> str:
    return command.replace(".venv/bin/python", "nice -n 10 .venv/bin/python")


def when(doc: dict) -> str:
    """An ISO timestamp as `2026-12-03 09:56 UTC`."""
    date = str(doc.get("date", "?"))
    match = re.match(r"(\d{4}-\d\d-\d\d)T(\d\d:\d\d)", date)
    return f"{match[1]} {match[2]} UTC" if match and date.endswith("+00:00") else date


def not_measured(name: str) -> str:
    bench = BENCHMARKS[name]
    return (
        f"*Not measured on this code yet* ({bench.what}). Measure it with\n"
        f"`{niced(bench.command)}` (it writes docs/results/{name}.json), then `make docs`.\n"
    )


def provenance(doc: dict) -> str:
    machine = doc.get("machine", {})
    memory = f", {machine['memory_gib']} GiB" if machine.get("memory_gib") else ""
    load_avg = machine.get("load_average_1min")
    busy = f", load average {load_avg} at the end" if load_avg is not None else ""
    return (
        f"Measured {when(doc)} on {machine.get('cpu_count', '?')} CPUs "
        f"({machine.get('cpu_model', '?')}{memory}{busy}) by `{doc.get('command', '?')}`.\n"
    )


def table(header: list[str], rows: list[list[Any]], align: str | None = None) -> str:
    align = align or "l" + "r" * (len(header) - 1)
    marks = {"l": "---", "r": "---:", "c": ":---:"}
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(marks[a] for a in align) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def f4(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def sec(value: Any) -> str:
    return "" if value is None else f"{value:,.1f}"


def minutes(seconds: float) -> str:
    whole = int(round(seconds))
    return f"{whole // 60} min {whole % 60:02d} s"


def gib(mib: float) -> str:
    return f"{mib / 1024:.2f} GiB ({mib:,.0f} MiB)"


def check_mark(ok: bool) -> str:
    return "met" if ok else "**not met**"


def target(wanted: str, ok: bool) -> str:
    """`target < 30 min: met`: a requirement and whether the figure meets it."""
    return f"target {wanted}: {check_mark(ok)}"


def stages_view(name: str) -> Callable[[dict], str]:
    def render(doc: dict) -> str:
        fig = doc["figures"]
        stages = fig.get("stages", {})
        rows = [[f"{stage}", STAGE_NOTES.get(stage, ""), sec(s)] for stage, s in stages.items()]
        rows.append(
            ["**flow wall time**", "incl. the Prefect API's start", f"**{sec(fig['wall_s'])}**"]
        )
        out = table(["stage", "what", "seconds"], rows, "llr")
        facts = [
            ["store", f"`{fig['preset']}` preset", ""],
            ["store build (0 = it existed)", "", f"{sec(fig.get('store_build_s'))} s"],
            ["peak RSS (the benchmark process)", "", gib(fig["peak_rss_mib"])],
        ]
        if "validate" in stages and fig["wall_s"]:
            share = stages["validate"] / fig["wall_s"]
            limit = TARGETS["validate_share_of_wall"]
            facts.append(
                [
                    "validation's share of the wall time",
                    target(f"≤ {limit:.0%}", share <= limit),
                    f"{share:.1%}",
                ]
            )
        if name == "large":
            wall, peak = fig["wall_s"], fig["peak_rss_mib"]
            wall_limit, peak_limit = TARGETS["large_wall_s"], TARGETS["large_peak_rss_mib"]
            facts.append(
                ["wall time", target(f"< {wall_limit // 60} min", wall < wall_limit), minutes(wall)]
            )
            facts.append(
                ["peak memory", target(f"< {peak_limit // 1024} GiB", peak < peak_limit), gib(peak)]
            )
        out += "\n" + table(["", "", "value"], facts, "llr")
        return out + "\n" + provenance(doc)

    return render


CANDIDATE_COLUMNS = (
    ("NDCG@10", "NDCG@10", f4),
    ("HR@10", "HR@10", f4),
    ("MAP@10", "MAP@10", f4),
    ("NDCG@20", "NDCG@20", f4),
    ("HR@20", "HR@20", f4),
    ("NDCG@10[cold_users]", "NDCG@10 cold", f4),
    ("NDCG@10[warm_users]", "NDCG@10 warm", f4),
    ("catalog_coverage@10", "coverage@10", lambda v: "" if v is None else f"{v:.1%}"),
    ("novelty@10", "novelty@10", lambda v: "" if v is None else f"{v:.2f}"),
    ("diversity@10", "diversity@10", lambda v: "" if v is None else f"{v:.2f}"),
)


def candidates_view(doc: dict) -> str:
    run = doc["figures"].get("run") or {}
    candidates = run.get("candidates", {})
    if not candidates:
        return "*The results file holds no model metrics.*\n\n" + provenance(doc)
    published = run.get("published")
    header = ["candidate", *(label for _, label, _ in CANDIDATE_COLUMNS), "NDCG@10 95% CI"]
    rows = []
    for name, m in candidates.items():
        cells = [fmt(m.get(key)) for key, _, fmt in CANDIDATE_COLUMNS]
        low, high = m.get("NDCG@10_ci95_low"), m.get("NDCG@10_ci95_high")
        ci = f"[{low:.3f}, {high:.3f}]" if low is not None and high is not None else ""
        label = f"`{name}`"
        if name == published:
            label = f"**`{name}` (published)**"
            cells = [f"**{c}**" if c else c for c in cells]
        rows.append([label, *cells, ci])
    return table(header, rows) + "\n" + provenance(doc)


Rows = list[list[Any]]


def summary_data_rows(run: dict, candidates: dict) -> Rows:
    """The data, the split and the test users the candidates were measured on."""
    rows: Rows = []
    data = run.get("data", {})
    if data:
        rows.append(["data", ", ".join(f"{n:,} {t}" for t, n in data.items())])
    split = run.get("split", {})
    for key, label in (
        ("test_users", "test users (ranked over the whole catalogue)"),
        ("validation_users", "validation users"),
        ("test_repeat_purchases_not_rankable", "latest purchases that re-buy (not rankable)"),
    ):
        if key in split:
            rows.append([label, f"{split[key]:,}"])
    any_candidate = next(iter(candidates.values()))
    for key, label in (
        ("n[cold_users]", "cold test users"),
        ("n[new_products]", "test purchases of rarely sold products"),
    ):
        if key in any_candidate:
            rows.append([label, f"{int(any_candidate[key]):,}"])
    return rows


def summary_publication_rows(run: dict) -> Rows:
    """The gate's verdict, the published candidate and its blend weights."""
    published = run.get("published")
    rows: Rows = [["gate", "passed" if run.get("gate_passed") else "refused"]]
    if published:
        rows.append(["published", f"`{published}`"])
        if run.get("blend"):
            weights = ", ".join(f"{k} {v:g}" for k, v in run["blend"].items())
            rows.append(["blend weights (chosen on validation)", weights])
    return rows


def summary_lift_rows(run: dict, candidates: dict, name: str) -> Rows:
    """NDCG@10 over popularity's (the published candidate, the hybrid alone), and the
    hybrid against collaborative filtering on cold users."""
    published = run.get("published")
    rows: Rows = []
    popularity = candidates.get("popularity", {}).get("NDCG@10")
    if published and popularity:
        lift = candidates[published]["NDCG@10"] / popularity
        text = f"{lift:.2f}×"
        if name == "nightly":
            wanted = TARGETS["demo_lift_over_popularity"]
            text += f" (target ≥ {wanted}×: {check_mark(lift >= wanted)})"
        rows.append([f"`{published}` NDCG@10 ÷ popularity's", text])
        if "lightfm_hybrid" in candidates and published != "lightfm_hybrid":
            alone = candidates["lightfm_hybrid"]["NDCG@10"] / popularity
            rows.append(["`lightfm_hybrid` alone ÷ popularity's", f"{alone:.2f}×"])
    hybrid, cf = candidates.get("lightfm_hybrid", {}), candidates.get("lightfm_cf", {})
    if "NDCG@10[cold_users]" in hybrid and "NDCG@10[cold_users]" in cf:
        rows.append(
            [
                "cold users, NDCG@10: hybrid vs collaborative filtering",
                f"{hybrid['NDCG@10[cold_users]']:.4f} vs {cf['NDCG@10[cold_users]']:.4f}",
            ]
        )
    return rows


def summary_tuning_rows(run: dict) -> Rows:
    """The LightFM settings tuning chose, and the validation figure it chose them on."""
    rows: Rows = []
    chosen = run.get("lightfm_chosen", {})
    choice = run.get("lightfm_choice", {})
    if chosen:
        rows.append(
            [
                "LightFM chosen by tuning",
                f"{chosen.get('loss')}, {chosen.get('no_components')} components, "
                f"{chosen.get('epochs')} epochs, behaviour features "
                f"{'on' if chosen.get('behaviour_features') else 'off'}",
            ]
        )
    if choice.get("best_trial") is not None:
        rows.append(
            [
                "its validation NDCG@10 (the chosen check's)",
                f"{choice.get('validation_NDCG@10', 0):.4f} (best: trial "
                f"{choice.get('best_trial')} at {choice.get('best_epochs')} epochs, "
                f"{choice.get('best_validation_NDCG@10', 0):.4f}; one standard error "
                f"{choice.get('standard_error', 0):.4f})",
            ]
        )
    return rows


def summary_rules_rows(run: dict) -> Rows:
    """What each publishing rule costs in NDCG@10, and the users and coverage per tier."""
    rows: Rows = []
    costs = run.get("rule_costs", {})
    if "NDCG@10[rules:none]" in costs:
        none = costs["NDCG@10[rules:none]"]
        parts = [
            f"{key[len('NDCG@10[rules:') : -1]} {none - value:+.4f}"
            for key, value in costs.items()
            if key != "NDCG@10[rules:none]"
        ]
        rows.append(["NDCG@10 the publishing rules cost (none − with)", ", ".join(parts)])
    tiers = run.get("users_per_tier", {})
    coverage = run.get("catalog_coverage_per_tier", {})
    if tiers:
        rows.append(
            [
                "users per tier (catalogue coverage)",
                ", ".join(
                    f"{tier} {n:,} ({coverage.get(tier, 0):.0%})" for tier, n in tiers.items()
                ),
            ]
        )
    return rows


def summary_view(name: str) -> Callable[[dict], str]:
    def render(doc: dict) -> str:
        run = doc["figures"].get("run") or {}
        candidates = run.get("candidates", {})
        if not candidates:
            return "*The results file holds no model metrics.*\n\n" + provenance(doc)
        rows = [
            *summary_data_rows(run, candidates),
            *summary_publication_rows(run),
            *summary_lift_rows(run, candidates, name),
            *summary_tuning_rows(run),
            *summary_rules_rows(run),
        ]
        return table(["", "value"], rows, "ll") + "\n" + provenance(doc)

    return render


def scoring_view(doc: dict) -> str:
    f = doc["figures"]

    def rate(key: str) -> str:
        return "" if f.get(key) is None else f"{f[key]:,}"

    def times(key: str, wanted: float | None = None) -> str:
        value = f.get(key)
        if value is None:
            return "not measured (`make bench-deps` installs implicit)"
        if wanted is None:
            return f"{value}×"
        return f"{value}× faster ({target(f'≥ {wanted}×', value >= wanted)})"

    def share(key: str, wanted: float | None = None) -> str:
        value = f.get(key)
        if value is None:
            return ""
        text = f"{value:.1%} of it"
        if wanted is None:
            return text
        return f"{text} ({target(f'≥ {wanted:.0%}', value >= wanted)})"

    memory_1m, memory_wanted = f["peak_rss_mib_1m"], TARGETS["scoring_peak_rss_mib_1m"]
    eligible = f.get("eligible_products")
    rows = []
    if f.get("publish_users_per_s") is not None:
        rows.append(
            [
                "**project, the nightly's publishing path**: a blend of "
                f"{sum(1 for w in f['publish_blend'].values() if w)} weighted components "
                f"on {f['publish_model_users']:,} users, rules, tiers, reasons, Parquet written",
                f"**{rate('publish_users_per_s')}**",
                f"{f['project_users_per_s'] / max(f['publish_users_per_s'], 1):,.0f}× slower "
                "than the fused path",
            ]
        )
    rows += [
        [
            "**project, fused path**: one dense factor model, no rules, no reasons; exact "
            "top-N, exclusions inside the selection, zstd Parquet written",
            f"**{rate('project_users_per_s')}**",
            "",
        ],
        [
            "implicit `topk`, the same exclusions",
            rate("implicit_users_per_s"),
            times("project_vs_implicit", TARGETS["scoring_vs_implicit"]),
        ],
        [
            "implicit `topk`, no exclusions (its fastest case)",
            rate("implicit_unfiltered_users_per_s"),
            times("project_vs_implicit_unfiltered"),
        ],
        [
            "LightFM `predict` per user, then argpartition (extrapolated)",
            rate("predict_loop_users_per_s"),
            times("project_vs_predict_loop", TARGETS["scoring_vs_predict_loop"]),
        ],
    ]
    if f.get("gemm_eligible_users_per_s") is not None:
        rows.append(
            [
                f"the multiply alone over the {eligible:,} in-stock products the project "
                "scores, nothing selected or written (the fair ceiling)",
                rate("gemm_eligible_users_per_s"),
                share("project_share_of_gemm_eligible", TARGETS["scoring_share_of_gemm_eligible"]),
            ]
        )
    rows.append(
        [
            f"the multiply alone over all {f['products']:,} products",
            rate("gemm_only_users_per_s"),
            share("project_share_of_gemm"),
        ]
    )
    out = table(["scorer", "users/s", "the project's scorer"], rows, "lrr")
    in_stock = f" ({eligible:,} in stock)" if eligible else ""
    problem = (
        f"{f['users']:,} users × {f['products']:,} products{in_stock} × {f['dimensions']} "
        f"dimensions, top {f['top_n']}"
    )
    small = (
        f"{f['project_seconds_100k']} s, Parquet {f['parquet_mib_100k']} MiB, "
        f"peak RSS {f['peak_rss_mib_100k']:,} MiB"
    )
    large = (
        f"{f['project_users_per_s_1m']:,} users/s, peak RSS {memory_1m:,} MiB "
        f"({target('< 1 GiB', memory_1m < memory_wanted)})"
    )
    facts = []
    if f.get("threads") is not None:
        facts.append(
            [
                "threads",
                f"{f['threads']} for every contender (BLAS and OpenMP pinned, passed to implicit "
                "and LightFM); every rate the best of 3 runs after a warm-up",
            ]
        )
    facts += [
        ["problem", problem],
        ["the project's fused path, 100,000 users (fresh process)", small],
        ["the project's fused path, 1,000,000 users (fresh process)", large],
    ]
    if f.get("gemm_arrangement"):
        facts.append(["the multiply's fastest arrangement", f["gemm_arrangement"]])
    if f.get("publish_users_per_s") is not None:
        blend = ", ".join(f"{k} {v:g}" for k, v in f["publish_blend"].items())
        tiers = ", ".join(f"{t} {n:,}" for t, n in f["publish_users_per_tier"].items())
        preset = f" (the `{f['publish_preset']}` preset's)" if f.get("publish_preset") else ""
        busy = f.get("publish_threads_busy", f["threads"])
        threads = (
            f"; they keep {busy} of the {f['threads']} scoring threads busy (each takes whole "
            "blocks of users)"
            if busy < f["threads"]
            else ""
        )
        facts += [
            [
                "publishing path: the shop",
                f"{f['publish_model_users']:,} users{preset}, {f['products']:,} products, "
                f"{f['publish_events']:,} synthetic events; blend {blend}; rules "
                f"{', '.join(f['publish_rules'])}",
            ],
            [
                "publishing path: timed",
                f"{f['publish_users_timed']:,} users (the first in user_id order; {tiers}) "
                f"in {f['publish_seconds']:,} s, chunks of {f['publish_chunk_users']} users "
                f"(score-block path){threads}; the untimed first run "
                f"{f['publish_first_run_seconds']:,} s",
            ],
            [
                "publishing path: all users at that rate",
                f"{minutes(f['publish_seconds_all_users'])} for {f['publish_model_users']:,} "
                f"users, plus {f['publish_audience_seconds']} s per partition to load the "
                f"audience; peak RSS {f['publish_peak_rss_mib']:,} MiB (the whole process, "
                "building the shop and its models included)",
            ],
        ]
    return out + "\n" + table(["", "value"], facts, "ll") + "\n" + provenance(doc)


def refit_view(doc: dict) -> str:
    from flows.params import NightlyParams

    default = NightlyParams.model_fields["refit_epochs"].default
    f = doc["figures"]
    rows = []
    for label, m in f["models"].items():
        cells = [label, f4(m["NDCG@10"]), sec(m["seconds"])]
        if label == f"refit continued ({default} epochs)":
            cells = [
                f"**{label}: the default (`refit_epochs`)**",
                f"**{cells[1]}**",
                f"**{cells[2]}**",
            ]
        rows.append(cells)
    out = table(["LightFM hybrid", "NDCG@10", "seconds"], rows)
    out += f"\n{f['test_users']:,} test users, `{f['preset']}` preset.\n"
    return out + "\n" + provenance(doc)


AB_METRICS = {
    "conversion": "conversion (bought from the list)",
    "click_through": "click-through",
    "hit_rate": "hit rate (buyers)",
    "revenue_per_user": "revenue per visitor",
    "satisfaction": "satisfaction (rating)",
}


def ab_test_view(doc: dict) -> str:
    f = doc["figures"]
    visitors = f.get("visitors", {})
    header = [
        f"{f['days']} days, {f['control_share']:.0%} control",
        f"control ({visitors.get('control', 0):,} visitors)",
        f"model ({visitors.get('model', 0):,} visitors)",
        "uplift [95% CI]",
        "relative",
        "detectable (80% power)",
    ]
    rows = []
    for metric, u in f.get("uplift", {}).items():
        significant = u["low"] > 0 or u["high"] < 0
        uplift = f"{u['difference']:+.4f} [{u['low']:+.4f}, {u['high']:+.4f}]"
        relative = "" if u.get("relative") is None else f"{u['relative']:+.0%}"
        rows.append(
            [
                AB_METRICS.get(metric, metric),
                f"{u['control']:.3f}",
                f"{u['model']:.3f}",
                f"**{uplift}**" if significant else uplift,
                relative,
                f"±{u['mde']:.4f}",
            ]
        )
    out = table(header, rows)
    truth = f.get("truth", {})
    if truth:
        facts = [
            [variant, f"{values.get('affinity', 0):.2f}", f"{values.get('choice_weight', 0):.1f}"]
            for variant, values in truth.items()
        ]
        out += (
            "\nWhat the simulator's hidden ground truth says of the top 10 each side was shown:\n\n"
        )
        out += table(["variant", "mean affinity", "mean choice weight exp(affinity)"], facts)
    out += (
        f"\n`{f['preset']}` preset, {f['users']:,} users with a list; "
        f"wall time {minutes(f['wall_s'])}.\n"
    )
    return out + "\n" + provenance(doc)


def beauty_view(doc: dict) -> str:
    f = doc["figures"]
    keys = ("HR@10", "NDCG@10", "HR@20", "NDCG@20")
    published_name = f.get("published_name")
    rows = []
    for name, m in f["candidates"].items():
        cells = [f4(m[k]) for k in keys]
        if name == published_name:
            rows.append([f"**`{name}` (ours, published)**", *(f"**{c}**" for c in cells)])
        else:
            rows.append([f"`{name}` (ours)", *cells])
    for name, m in f.get("paper_rows", {}).items():
        rows.append([f"{name} (published result)", *(f4(m[k]) for k in keys)])
    out = table(["model", *keys], rows)
    hr, ndcg = f["published"]["HR@10"], f["published"]["NDCG@10"]
    hr_wanted, ndcg_wanted = TARGETS["beauty_hr10"], TARGETS["beauty_ndcg10"]
    facts = [
        ["data", ", ".join(f"{n:,} {t}" for t, n in f.get("data", {}).items())],
        ["gate", "passed" if f.get("gate_passed") else "refused"],
        ["published HR@10", f"{hr:.4f} ({target(f'≥ {hr_wanted}', hr >= hr_wanted)})"],
        ["published NDCG@10", f"{ndcg:.4f} ({target(f'≥ {ndcg_wanted}', ndcg >= ndcg_wanted)})"],
    ]
    if f.get("published_ndcg10_ci95"):
        low, high = f["published_ndcg10_ci95"]
        facts.append(["published NDCG@10, bootstrap 95% interval", f"[{low:.4f}, {high:.4f}]"])
    if f.get("blend"):
        facts.append(["blend weights", ", ".join(f"{k} {v:g}" for k, v in f["blend"].items())])
    facts.append(["wall time, peak RSS", f"{minutes(f['wall_s'])}, {gib(f['peak_rss_mib'])}"])
    return out + "\n" + table(["", "value"], facts, "ll") + "\n" + provenance(doc)


def screenshot_view(doc: dict) -> str:
    f = doc["figures"]
    errors = f.get("console_errors", [])
    rows = [
        ["page", f"`{f['page']}`"],
        ["screenshot", f"`{f['screenshot']}` ({f['width']}×{f['height']} px)"],
        ["console errors", ", ".join(errors) if errors else "none"],
    ]
    return table(["", "value"], rows, "ll") + "\n" + provenance(doc)


def determinism_view(doc: dict) -> str:
    f = doc["figures"]
    rows = []
    for name, label in (("default", "repeatable (default)"), ("hogwild", "`--hogwild`")):
        pair = f[name]
        first, second = pair["runs"]
        rows.append(
            [
                label,
                "yes" if first["version"] == second["version"] else "no",
                "**identical**" if pair["identical_lists"] else "different",
                f"{pair['top10_slots_in_common']:.1%}",
                f"{pair['users_with_identical_top10']:.1%}",
                f"{f4(first['ndcg10'])} / {f4(second['ndcg10'])}",
                f"{first['lightfm_epochs']} / {second['lightfm_epochs']}",
                f"{sec(first['wall_s'])} / {sec(second['wall_s'])}",
                f"{sec(first['tune_s'])} / {sec(second['tune_s'])}",
            ]
        )
    header = [
        "training",
        "same version id",
        "lists",
        "top-10 slots in common",
        "identical top 10",
        "NDCG@10",
        "LightFM epochs",
        "flow",
        "tuning",
    ]
    out = table(header, rows, "lllrrllll")
    out += f"\nTwo first nights on the `{f['preset']}` store each, on fresh data roots.\n"
    return out + "\n" + provenance(doc)


def repeatable_cost_view(doc: dict, hogwild: dict | None) -> str:
    """Stage by stage, the default (every LightFM fit on one thread, fits side by side)
    against `--hogwild` on the same store: what repeatable lists cost."""
    if hogwild is None:
        return not_measured(f"{doc['benchmark']}-hogwild")
    after, before = doc["figures"], hogwild["figures"]
    names = list(dict.fromkeys([*before.get("stages", {}), *after.get("stages", {})]))
    rows = []
    for stage in names:
        b, a = before["stages"].get(stage), after["stages"].get(stage)
        change = f"{a - b:+.0f} s" if a is not None and b is not None else ""
        rows.append([stage, sec(b), sec(a), change])
    rows.append(
        [
            "**flow wall time**",
            sec(before["wall_s"]),
            sec(after["wall_s"]),
            f"**{after['wall_s'] - before['wall_s']:+.0f} s "
            f"({after['wall_s'] / before['wall_s'] - 1:+.0%})**",
        ]
    )
    rows.append(
        [
            "peak RSS",
            gib(before["peak_rss_mib"]),
            gib(after["peak_rss_mib"]),
            f"{(after['peak_rss_mib'] - before['peak_rss_mib']) / 1024:+.1f} GiB",
        ]
    )
    out = table(["stage", "`--hogwild` (s)", "default, repeatable (s)", "cost"], rows, "lrrr")
    quality = []
    for label, fig in (("`--hogwild`", before), ("default", after)):
        run = fig.get("run", {})
        blend = run.get("candidates", {}).get(run.get("published") or "blend", {})
        if blend:
            quality.append(f"{label} NDCG@10 {f4(blend.get('NDCG@10'))}")
    if quality:
        out += f"\nPublished model: {', '.join(quality)}.\n"
    return out + "\n" + provenance(doc) + "\n" + provenance(hogwild)


def ratings_world_view(doc: dict) -> str:
    """Every candidate on the ratings world's test split, the published blend marked, and
    what the holdout removed against a fixed day."""
    f = doc["figures"]
    rows = []
    for name, m in f["candidates"].items():
        label = "**`blend` (published)**" if name == "blend" else f"`{name}`"
        rows.append([label, f4(m.get("NDCG@10")), f4(m.get("HR@10"))])
    out = table(["candidate", "NDCG@10", "HR@10"], rows, "lrr")
    settled = f.get("blend_settlement") or {}
    out += (
        f"\n`{f['preset']}`: {f['users']:,} users, {f['products']:,} products, "
        f"{f['ratings']:,} ratings; gate {'passed' if f['gate_passed'] else 'REFUSED'}. "
        f"The holdout removed {f['holdout_removed_share']:.1%} of the training before the "
        f"held-out ratings (a fixed 24-hour window would remove "
        f"{f['window_24h_removed_share']:.1%}). Best candidate alone: `{f['best_single']}`"
        + (" (it replaced the tuned blend)" if settled.get("replaced") else "")
        + ".\n"
    )
    return out + "\n" + provenance(doc)


# Blocks drawn from a benchmark's file and its `-hogwild` twin.
PAIRED_VIEWS: dict[str, Callable[[dict, dict | None], str]] = {
    "large.repeatable_cost": repeatable_cost_view,
    "nightly.repeatable_cost": repeatable_cost_view,
}


VIEWS: dict[str, Callable[[dict], str]] = {
    "determinism": determinism_view,
    "nightly.stages": stages_view("nightly"),
    "nightly.candidates": candidates_view,
    "nightly.summary": summary_view("nightly"),
    "large.stages": stages_view("large"),
    "large.summary": summary_view("large"),
    "scoring": scoring_view,
    "refit": refit_view,
    "ab_test": ab_test_view,
    "beauty": beauty_view,
    "screenshot_report": screenshot_view,
    "ratings_world": ratings_world_view,
}


def index_view(results: Path) -> str:
    """Every benchmark: its file, when it was measured, and the command that measures it."""
    rows = []
    for name, bench in BENCHMARKS.items():
        doc = load(name, results)
        measured = f"{when(doc)}, {doc['machine']['cpu_count']} CPUs" if doc else "not yet"
        command = doc["command"] if doc else bench.command
        file = f"docs/results/{name}.json"
        rows.append([f"`{file}`" if doc else file, bench.what, measured, f"`{command}`"])
    return table(["file", "what", "measured", "command"], rows, "llll")


def render_block(key: str, results: Path) -> str:
    if key == "index":
        return index_view(results)
    name = key.split(".")[0]
    if key in PAIRED_VIEWS:
        doc = load(name, results)
        if doc is None:
            return not_measured(name)
        return PAIRED_VIEWS[key](doc, load(f"{name}-hogwild", results))
    if key not in VIEWS:
        known = ", ".join([*VIEWS, *PAIRED_VIEWS])
        raise KeyError(f"unknown results block {key!r}; known: {known}")
    doc = load(name, results)
    return not_measured(name) if doc is None else VIEWS[key](doc)


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted(p for p in DOCS.glob("*.md") if p != CONFIGURATION)]


def render_page(text: str, results: Path) -> tuple[str, list[str]]:
    """The page with every block filled in, and the keys of the blocks that changed."""
    changed: list[str] = []
    opened = OPENING.findall(text)
    closed = set(re.findall(r"<!-- /results:([\w.-]+) -->", text))
    if unclosed := [k for k in opened if k not in closed]:
        raise ValueError(f"results block(s) without their closing marker: {', '.join(unclosed)}")

    def fill(match: re.Match) -> str:
        key = match["key"]
        body = "\n" + render_block(key, results) + "\n"
        if body != match["body"]:
            changed.append(key)
        return match["open"] + body + match["close"]

    return BLOCK.sub(fill, text), changed


# ---------------------------------------------------------------- configuration.md


@contextlib.contextmanager
def clean_environment() -> Iterator[None]:
    """Defaults as a fresh checkout sees them: no RECS_* variables set."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("RECS_")}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def source_notes(cls: type) -> dict[str, str]:
    """Comments above a field, its inline comment and a string right after it, by field
    name: the description of fields declared without one."""
    try:
        lines, _ = inspect.getsourcelines(cls)
    except (OSError, TypeError):
        return {}
    source = textwrap.dedent("".join(lines))
    tree = ast.parse(source)
    klass = tree.body[0]
    if not isinstance(klass, ast.ClassDef):
        return {}
    text = source.splitlines()
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    notes: dict[str, str] = {}
    body = klass.body
    for index, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        parts: list[str] = []
        line = node.lineno - 1
        above: list[str] = []
        while line >= 1 and text[line - 1].strip().startswith("#"):
            above.insert(0, comments.get(line, ""))
            line -= 1
        parts += above
        for number in range(node.lineno, node.end_lineno + 1):
            if number in comments and not text[number - 1].strip().startswith("#"):
                parts.append(comments[number])
        following = body[index + 1] if index + 1 < len(body) else None
        if (
            isinstance(following, ast.Expr)
            and isinstance(following.value, ast.Constant)
            and isinstance(following.value.value, str)
        ):
            parts.append(inspect.cleandoc(following.value.value))
        parts = [p for p in parts if p and not p.startswith("noqa")]
        if parts:
            notes[node.target.id] = " ".join(parts)
    return notes


def is_model(annotation: Any) -> bool:
    from pydantic import BaseModel

    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return type_name(args[0])
    if origin is typing.Literal:
        return " | ".join(json.dumps(a) for a in args)
    if origin in (typing.Union, types.UnionType):
        return " | ".join(type_name(a) for a in args)
    if origin in (dict, list, tuple, set):
        return f"{origin.__name__}[{', '.join(type_name(a) for a in args)}]"
    if annotation is type(None):
        return "None"
    if annotation is Any:
        return "any"
    if isinstance(annotation, type):
        return annotation.__name__
    return str(annotation).replace("typing.", "")


BOUND_SIGNS = {"ge": "≥", "gt": ">", "le": "≤", "lt": "<"}


def bounds(field: Any) -> str:
    found = []
    unit = "character(s)" if unwrap(field.annotation) is str else "item(s)"
    for mark in field.metadata:
        for attribute, sign in BOUND_SIGNS.items():
            value = getattr(mark, attribute, None)
            if value is not None and type(mark).__name__.lower() == attribute:
                found.append(f"{sign} {value:g}" if isinstance(value, float) else f"{sign} {value}")
        if type(mark).__name__ == "MinLen":
            found.append(f"at least {mark.min_length} {unit}")
        if type(mark).__name__ == "MaxLen":
            found.append(f"at most {mark.max_length} {unit}")
    return ", ".join(found)


def operational(field: Any) -> bool:
    return any(type(mark).__name__ == "Operational" for mark in field.metadata)


def show_value(value: Any) -> str:
    from pydantic import BaseModel

    if value is None:
        return "empty"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, Path):
        if value.is_absolute() and value.is_relative_to(REPO):
            value = value.relative_to(REPO)
        return f"`{value}`"
    if isinstance(value, BaseModel):
        return "see below"
    if isinstance(value, dict | list | tuple):
        if not value:
            return "empty"
        return "`" + json.dumps(value, default=str) + "`"
    if isinstance(value, float):
        return f"`{value:g}`"
    if isinstance(value, str):
        return f'`"{value}"`' if value else "empty"
    return f"`{value}`"


def default_of(field: Any) -> str:
    from pydantic_core import PydanticUndefined

    if field.default_factory is not None:
        return show_value(field.default_factory())
    if field.default is PydanticUndefined:
        return "**required**"
    return show_value(field.default)


def cell(text: str) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


# Descriptions of fields the code still declares without one (neither a description nor a
# comment): tasks/dataset.py and tasks/publishing/rules.py. Better in the code, as
# `Field(..., description=...)`; then drop them here.
FALLBACK = {
    "EventsSpec.weights": "event type -> weight of an event in the models' interactions; types "
    "without a weight are kept in the snapshot and ignored by the models",
    "EventsSpec.transaction_types": "the event types that are transactions: they drive the "
    "latest-transaction split and the already-bought exclusion",
    "MultiFeature.sep": "separator of the values in one cell",
    "NumericFeature.bins": "quantile bins the values are cut into",
    "Contraindication.user_column": "user column to look in",
    "Contraindication.user_values": "values of it that exclude the products",
    "Contraindication.product_column": "product column to look in",
    "Contraindication.product_values": "values of it that are excluded",
    "PublishingSpec.contraindications": "see `[[publishing.contraindications]]` below",
}


def describe(field: Any, notes: dict[str, str], name: str, owner: str = "") -> str:
    text = field.description or notes.get(name, "") or FALLBACK.get(f"{owner}.{name}", "")
    inner = unwrap(field.annotation)
    if not text and is_model(inner) and inner.__doc__:
        text = inspect.cleandoc(inner.__doc__)
    if not text and name == "kind":
        text = "the kind of feature"
    extra = bounds(field)
    if extra:
        text = f"{text} ({extra})" if text else extra
    return text


def field_rows(
    model: type, prefix: str = "", *, with_operational: bool = False
) -> tuple[list[list[str]], list[tuple[str, type]]]:
    """Rows for the model's own fields (every cell escaped for a table), and the nested
    models to describe after it."""
    notes = source_notes(model)
    rows, nested = [], []
    for name, field in model.model_fields.items():
        if field.exclude:
            continue
        inner = unwrap(field.annotation)
        description = describe(field, notes, name, model.__name__)
        if is_model(inner):
            nested.append((f"{prefix}{name}", inner))
            shown = "the nightly parameters above" if inner.__name__ == "NightlyParams" else None
            row = [f"{prefix}{name}.*", inner.__name__, shown or "see below", description]
        else:
            row = [f"{prefix}{name}", type_name(field.annotation), default_of(field), description]
        row = [f"`{row[0]}`", *(cell(c) for c in row[1:])]
        if with_operational:
            row.insert(3, "" if is_model(inner) else ("no" if operational(field) else "yes"))
        rows.append(row)
    return rows, nested


def model_doc(model: type) -> str:
    return " ".join(inspect.cleandoc(model.__doc__).split()) if model.__doc__ else ""


def parameters_section(
    model: type, title: str, prefix: str = "", level: int = 2, *, version: bool = False
) -> str:
    """A parameter model and, below it, each nested model (`--publishing.runner`).
    `version`: with the column saying whether a parameter is part of the version id."""
    header = ["parameter", "type", "default", "description"]
    if version:
        header.insert(3, "in the version id")
    rows, nested = field_rows(model, prefix, with_operational=version)
    out = f"{'#' * level} {title}\n\n"
    if doc := model_doc(model):
        out += f"{doc}\n\n"
    out += table(header, rows, "l" * len(header))
    for name, inner in nested:
        if inner.__name__ == "NightlyParams":
            continue  # MonitorParams.nightly: the nightly parameters, described above
        out += "\n" + parameters_section(
            inner,
            f"`{name}.*` (`{inner.__module__}.{inner.__name__}`)",
            f"{name}.",
            level + 1,
            version=version,
        )
    return out


def toml_section(model: type, title: str, level: int = 3) -> str:
    header = ["key", "type", "default", "description"]
    rows, nested = field_rows(model)
    out = f"{'#' * level} {title}\n\n"
    if doc := model_doc(model):
        out += f"{doc}\n\n"
    out += table(header, rows, "llll")
    for name, inner in nested:
        out += "\n" + toml_section(inner, f"`[{name}]`", level + 1)
    return out


def dataset_section() -> str:
    from tasks.config_schema import StrictModel
    from tasks.dataset import DatasetSpec

    out = "## `dataset.toml` (`tasks.dataset.DatasetSpec`)\n\n"
    out += (
        f"{model_doc(StrictModel)} (`tasks.config_schema.StrictModel`): every section below "
        "is checked whole before anything is read; an unknown section or key is refused with "
        "a did-you-mean, one line per problem, exit code 4.\n\n"
    )
    notes = source_notes(DatasetSpec)
    for name, field in DatasetSpec.model_fields.items():
        if field.exclude:
            continue
        annotation = unwrap(field.annotation)
        origin = typing.get_origin(annotation)
        if is_model(annotation):
            out += toml_section(annotation, f"`[{name}]` (`{annotation.__name__}`)") + "\n"
            for key, sub in annotation.model_fields.items():
                inner = unwrap(sub.annotation)
                if typing.get_origin(inner) is list and is_model(typing.get_args(inner)[0]):
                    item = typing.get_args(inner)[0]
                    out += toml_section(item, f"`[[{name}.{key}]]` (`{item.__name__}`)", 4) + "\n"
        elif origin is dict:
            key_type, value_type = typing.get_args(annotation)
            value_type = unwrap(value_type)
            keys = (
                ", ".join(f"`{k}`" for k in typing.get_args(key_type))
                if typing.get_origin(key_type) is typing.Literal
                else "any name"
            )
            description = describe(field, notes, name, "DatasetSpec")
            members = (
                [value_type]
                if is_model(value_type)
                else [m for m in typing.get_args(value_type) if is_model(m)]
            )
            out += f"### `[{name}]`: one entry per name ({keys})\n\n"
            if description:
                out += f"{description}\n\n"
            for member in members:
                kind = member.model_fields.get("kind")
                label = f"`{name}.<name>`"
                tags = typing.get_args(kind.annotation) if kind is not None else ()
                if len(tags) == 1:
                    label += f" with `kind = {json.dumps(tags[0])}`"
                out += toml_section(member, f"{label} (`{member.__name__}`)", 4) + "\n"
            if name.endswith("_features"):
                out += (
                    'A string is short for its kind: `skin_type = "categorical"` is '
                    '`skin_type = { kind = "categorical" }`.\n\n'
                )
    return out


def settings_section() -> str:
    from tasks.settings import Settings

    prefix = Settings.model_config.get("env_prefix", "")
    notes = source_notes(Settings)
    rows = []
    for name, field in Settings.model_fields.items():
        rows.append(
            [
                f"`{prefix.upper()}{name.upper()}`",
                cell(type_name(field.annotation)),
                cell(default_of(field)),
                cell(describe(field, notes, name, "Settings")),
            ]
        )
    out = "## Environment (`tasks.settings.Settings`)\n\n"
    out += model_doc(sys.modules[Settings.__module__]) + "\n\n"
    out += table(["variable", "type", "default", "description"], rows, "llll")
    return out


MAKE_VARIABLE = re.compile(r"^(?P<name>[A-Z_]+)\s*\?=\s*(?P<value>.*)$")
# Notes on the Makefile's variables that have no comment of their own there.
MAKE_NOTES = {
    "PYTHON": "the interpreter .venv is created with",
    "PRESET": "the demo store's preset when `make demo-store` / `make run` build it "
    "(tiny, small, demo, medium, large); an existing store is kept",
    "DATA_ROOT": "the data root of `make run`, `serve`, `advance` and `monitor` "
    "(RECS_DATA_ROOT); the demo store is `$(DATA_ROOT)/demo/store.db`",
    "PREFECT_PORT": "the port of `make server`, and of the API `make serve` registers with",
    "DAYS": "`make advance`: days of simulated shopping to append",
    "SCENARIO": "`make advance`: none, launch, season or new_users",
}


def makefile_section() -> str:
    """`VAR ?= value` lines of the Makefile, with the comment lines just above them."""
    rows = []
    comment: list[str] = []
    for line in (REPO / "Makefile").read_text().splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            comment.append(stripped.lstrip("#").strip())
            continue
        match = MAKE_VARIABLE.match(stripped)
        if match:
            value = match["value"].strip()
            note = " ".join(comment) or MAKE_NOTES.get(match["name"], "")
            rows.append(
                [f"`{match['name']}`", cell(f"`{value}`" if value else "empty"), cell(note)]
            )
        comment = []
    out = "## Makefile variables\n\n"
    out += (
        "Given on the command line (`make run PRESET=small DATA_ROOT=/srv/recs`) or in the "
        "environment.\n\n"
    )
    return out + table(["variable", "default", "note"], rows, "lll")


def configuration() -> str:
    from flows.monitor import MonitorParams
    from flows.params import NightlyParams
    from flows.rollback import RollbackParams

    with clean_environment():
        parts = [
            "# Configuration reference\n",
            "<!-- Generated by docs/render.py from the pydantic models and the Makefile: do not "
            "edit by hand; run `make docs`. -->\n",
            "Every parameter of the three flows, every key of `dataset.toml`, every `RECS_*` "
            "setting and every Makefile variable, as the code defines them. The command lines "
            "take the parameters by name (`--top_n 50` or `--top-n 50`); nested ones with a dot "
            "(`--publishing.runner dask`); booleans as `--tuning.search` / `--no-tuning.search`. "
            "The Prefect UI shows the same models as forms. *In the version id*: whether the "
            "parameter is part of the published version's id (`tasks/versions.py`): those marked "
            "no only say where things are or how the work is spread.\n",
            parameters_section(
                NightlyParams, "Nightly parameters (`flows.params.NightlyParams`)", version=True
            ),
            parameters_section(MonitorParams, "Monitor parameters (`flows.monitor.MonitorParams`)")
            + "\n`nightly.*`: every nightly parameter above, given as `--nightly.<name>` "
            "(where the data is, and what a retraining run is told).\n",
            parameters_section(
                RollbackParams, "Rollback parameters (`flows.rollback.RollbackParams`)"
            ),
            dataset_section(),
            settings_section(),
            makefile_section(),
        ]
    return "\n".join(part.rstrip("\n") + "\n" for part in parts)


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="docs/render.py", description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder of the JSON files")
    args = parser.parse_args(argv)

    problems: list[str] = []  # what differs from what the files and models render
    broken: list[str] = []  # what cannot be rendered at all
    for page in pages():
        name = page.relative_to(REPO)
        try:
            rendered, changed = render_page(page.read_text(), args.results)
        except (KeyError, ValueError) as error:
            broken.append(f"{name}: {error}")
            continue
        for key in changed:
            source = args.results / f"{key.split('.')[0]}.json"
            shown = source.relative_to(REPO) if source.is_relative_to(REPO) else source
            what = "the benchmarks' files" if key == "index" else shown
            problems.append(f"{name}: block results:{key} differs from what {what} renders")
        if changed and not args.check:
            page.write_text(rendered)
    expected = configuration()
    if not CONFIGURATION.exists() or CONFIGURATION.read_text() != expected:
        problems.append(
            "docs/configuration.md: differs from what the models (flows.params, flows.monitor, "
            "flows.rollback, tasks.dataset, tasks.settings) and the Makefile render"
        )
        if not args.check:
            CONFIGURATION.write_text(expected)
    for problem in broken:
        print(f"error: {problem}", file=sys.stderr)
    if args.check:
        for problem in problems:
            print(problem, file=sys.stderr)
        if problems:
            print(
                "run `make docs` (.venv/bin/python docs/render.py) to regenerate", file=sys.stderr
            )
        return 1 if problems or broken else 0
    for problem in problems:
        print("updated " + problem.split(" differs from")[0])
    return 1 if broken else 0


if __name__ == "__main__":
    raise SystemExit(main())
