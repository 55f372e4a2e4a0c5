"""Turns a bench/run results file (TSV) into the Markdown tables of BENCHMARKS.md, with every
figure also given as a ratio against a baseline measured in the same run, and the goals of
issue 17 computed from it.

    python3 bench/report.py bench/results/<stamp>.tsv
"""
import csv
import math
import sys

# PostgreSQL scenarios against pgbench running tenure's own statement: (baseline, goal by c).
PGBENCH = {
    "refresh": ("pgbench_refresh", {"1": 0.7, "16": 1.0, "64": 1.0}),
    "get": ("pgbench_lookup", {"1": 0.5, "16": 0.5, "64": 0.5}),
}
# SQLite refresh against the raw single-row durable commit (bench/sqlite_commit_rate.rs).
SQLITE_REFRESH_GOAL = {"1": 0.5, "64": 1.5}
PEER_GOAL = 50.0  # tenure's PostgreSQL refresh against the simplejwt peer, at c=64
MIXED_P99_GOAL_MS = 10.0
RSS_GOAL_MIB = 64.0


def number(text):
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "–"


class Results:
    def __init__(self, path):
        with open(path) as f:
            self.rows = list(csv.DictReader(f, delimiter="\t"))

    def get(self, backend, scenario, scale=None, c=None):
        return next((r for r in self.rows if r["backend"] == backend
                     and r["scenario"] == scenario and (scale is None or r["scale"] == scale)
                     and (c is None or r["concurrency"] == c)), None)

    def rate(self, backend, scenario, scale=None, c=None):
        row = self.get(backend, scenario, scale, c)
        return number(row["rps"]) if row else None

    def scales(self, backend, scenario):
        """The scales a scenario ran at: "base" first, then the seeded counts in order."""
        found = {r["scale"] for r in self.rows
                 if r["backend"] == backend and r["scenario"] == scenario}
        return sorted(found, key=lambda s: -1 if s == "base" else int(s))

    def pgbench_scale(self, scale):
        """pgbench runs at the seeded scales only; "base" compares with the smallest of them."""
        seeded = sorted({r["scale"] for r in self.rows
                         if r["scenario"].startswith("pgbench_")}, key=int)
        if scale != "base":
            return scale
        return seeded[0] if seeded else None


def baseline_note(res, r):
    """The "vs baseline" cell of a scenario row."""
    backend, scenario, c = r["backend"], r["scenario"], r["concurrency"]
    rate = number(r["rps"])
    notes = []
    if scenario == "login":
        notes.append(f"{ratio(rate, res.rate('baseline', 'argon2_verify'))} Argon2id")
    if backend == "postgres" and scenario in PGBENCH:
        stmt, goals = PGBENCH[scenario]
        pg = res.rate("baseline", stmt, res.pgbench_scale(r["scale"]), c)
        goal = f" (goal {goals[c]}×)" if c in goals else ""
        notes.append(f"{ratio(rate, pg)} {stmt}{goal}")
    if backend == "postgres" and scenario == "refresh" and r["scale"] == "base":
        peer = res.rate("simplejwt", "refresh", "base", c)
        if peer:
            goal = f" (goal {PEER_GOAL:.0f}×)" if c == "64" else ""
            notes.append(f"{ratio(rate, peer)} simplejwt{goal}")
    if backend == "sqlite" and scenario == "refresh":
        goal = f" (goal {SQLITE_REFRESH_GOAL[c]}×)" if c in SQLITE_REFRESH_GOAL else ""
        notes.append(f"{ratio(rate, res.rate('baseline', 'sqlite_commit'))} sqlite_commit{goal}")
        notes.append(f"{ratio(rate, res.rate('baseline', 'sqlite_commit_batched64'))} batched64")
    if scenario.startswith("mixed_"):
        notes.append(f"p99 uncorrected: {r.get('p99_raw_ms') or '–'} ms")
    if scenario in ("mixed_get", "mixed_refresh"):
        notes.append(f"p99 goal ≤ {MIXED_P99_GOAL_MS:.0f} ms at c=64")
    return "; ".join(notes) or "–"


def scenarios_table(res):
    print("## Scenarios\n")
    print("| backend | scenario | stored sessions | c | req/s | p50 ms | p99 ms | errors "
          "| vs empty axum | vs baseline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in res.rows:
        if r["backend"] == "baseline" or r["scenario"] == "peak_rss_kib":
            continue
        rate = number(r["rps"])
        # A kind's share of the mixed load is no HTTP throughput to set against the empty handler.
        empty = None if r["scenario"].startswith("mixed_") else res.rate(
            "baseline", "empty_axum", c=r["concurrency"])
        print(f"| {r['backend']} | {r['scenario']} | {r['scale']} | {r['concurrency']} "
              f"| {rate or 0:.0f} | {r['p50_ms'] or '–'} | {r['p99_ms'] or '–'} "
              f"| {r['errors']} | {ratio(rate, empty)} | {baseline_note(res, r)} |")


def baselines_table(res):
    print("\n## Baselines\n")
    print("| baseline | stored sessions | c | rate/s |")
    print("|---|---|---|---|")
    for r in res.rows:
        if r["backend"] == "baseline":
            print(f"| {r['scenario']} | {r['scale']} | {r['concurrency']} "
                  f"| {number(r['rps']) or 0:.0f} |")


def scale_table(res):
    print("\n## Scale and memory\n")
    print("| check | value | goal |")
    print("|---|---|---|")
    for backend in ("postgres", "sqlite"):
        seeded = [s for s in res.scales(backend, "refresh") if s != "base"]
        if len(seeded) < 2:
            continue
        lo, hi = seeded[0], seeded[-1]
        for scenario in ("refresh", "get"):
            cs = sorted({r["concurrency"] for r in res.rows if r["backend"] == backend
                         and r["scenario"] == scenario and r["scale"] == hi}, key=int)
            for c in cs:
                a, b = res.get(backend, scenario, lo, c), res.get(backend, scenario, hi, c)
                if a and b:
                    print(f"| {backend} {scenario} p99 at {hi} / at {lo} sessions, c={c} "
                          f"| {ratio(number(b['p99_ms']), number(a['p99_ms']))} "
                          f"| {'≤ 1.5×' if scenario == 'refresh' else '–'} |")
    for r in res.rows:
        if r["scenario"] == "peak_rss_kib":
            print(f"| {r['backend']} peak RSS, {r['scale']} stored sessions "
                  f"| {float(r['rps']) / 1024:.1f} MiB | ≤ {RSS_GOAL_MIB:.0f} MiB |")
    for flood in (r for r in res.rows if r["scenario"] == "get_during_login_flood"):
        plain = res.get(flood["backend"], "get", "base", flood["concurrency"])
        spun = res.get(flood["backend"], "get_beside_idle_spinners", "base",
                       flood["concurrency"])
        notes = [f"get alone: {plain['p99_ms']} ms"] if plain else []
        if spun:
            notes.append(f"beside idle-priority busy loops on every core: {spun['p99_ms']} ms")
        alone = f" ({'; '.join(notes)})" if notes else ""
        print(f"| get p99 at c={flood['concurrency']} during a login flood"
              f"{alone} | {flood['p99_ms']} ms | ≤ 10 ms |")


def verdict(checks):
    """checks: True (met), False (missed) or None (not measured in this run) per figure."""
    measured = [c for c in checks if c is not None]
    if not measured:
        return "not measured"
    if not all(measured):
        return "missed"
    return "met" if len(measured) == len(checks) else "met where measured"


def goals_table(res):
    """The goals of issue 17 from this run: the figures, and whether every one of them meets
    its goal. A figure the goal names but the run did not measure (another concurrency, a
    skipped backend) is shown as such."""
    goals = []

    commit = res.rate("baseline", "sqlite_commit")
    for c, goal in sorted(SQLITE_REFRESH_GOAL.items(), key=lambda kv: -int(kv[0])):
        cells, checks = [], []
        for scale in res.scales("sqlite", "refresh") or ["base"]:
            row = res.get("sqlite", "refresh", scale, c)
            if not row or not commit:
                cells.append(f"{scale}: not measured")
                checks.append(None)
                continue
            value = number(row["rps"]) / commit
            ok = value >= goal
            cell = f"{scale}: **{value:.2f}×**"
            if c == "64":  # the p99 bound belongs to the c=64 goal
                p99 = number(row["p99_ms"])
                ok = ok and p99 is not None and p99 <= 15.0
                cell += f", p99 {row['p99_ms']} ms"
            cells.append(cell)
            checks.append(ok)
        p99 = ", p99 ≤ 15 ms" if c == "64" else ""
        goals.append((f"SQLite refresh at c={c} ≥ {goal}× the raw single-row durable commit "
                      f"rate{p99}", cells, checks))

    for scenario, label in (("refresh", "PostgreSQL refresh"),
                            ("get", "PostgreSQL session check")):
        stmt, by_c = PGBENCH[scenario]
        cells, checks = [], []
        for c in sorted(by_c, key=int):
            values = []
            for scale in res.scales("postgres", scenario) or ["base"]:
                pg = res.rate("baseline", stmt, res.pgbench_scale(scale), c)
                tenure = res.rate("postgres", scenario, scale, c)
                if pg and tenure is not None:
                    values.append(f"{tenure / pg:.2f}× ({scale})")
                    checks.append(tenure / pg >= by_c[c])
                else:
                    checks.append(None)
            cells.append(f"c={c}: " + (", ".join(values) or "not measured"))
        wanted = ", ".join(f"≥ {g}× at c={c}"
                           for c, g in sorted(by_c.items(), key=lambda kv: int(kv[0])))
        goals.append((f"{label} against pgbench's `{stmt}` ({wanted}), at every scale",
                      cells, checks))

    tenure = res.rate("postgres", "refresh", "base", "64")
    peer = res.rate("simplejwt", "refresh", "base", "64")
    if tenure is not None and peer:
        cells = [f"**{tenure / peer:.0f}×** ({tenure:.0f} against {peer:.0f} refreshes/s)"]
        checks = [tenure / peer >= PEER_GOAL]
    else:
        cells, checks = ["not measured"], [None]
    goals.append((f"PostgreSQL refresh ≥ {PEER_GOAL:.0f}× the simplejwt peer at c=64",
                  cells, checks))

    cells, checks = [], []
    for backend in ("postgres", "sqlite"):
        for kind in ("get", "refresh"):
            name = "check" if kind == "get" else kind
            row = res.get(backend, f"mixed_{kind}", "base", "64")
            p99 = number(row["p99_ms"]) if row else None
            if p99 is None:
                cells.append(f"{backend} {name}: not measured")
                checks.append(None)
            else:
                cells.append(f"{backend} {name}: **{p99:.1f} ms** (p50 {row['p50_ms']} ms; "
                             f"uncorrected p99 {row.get('p99_raw_ms') or '–'} ms)")
                checks.append(p99 <= MIXED_P99_GOAL_MS)
    goals.append((f"check and refresh p99 ≤ {MIXED_P99_GOAL_MS:.0f} ms inside the mixed "
                  "scenario at c=64, on both backends", cells, checks))

    cells, checks = [], []
    for backend in ("postgres", "sqlite"):
        row = res.get(backend, "peak_rss_kib", "1000000")
        if row is None:
            cells.append(f"{backend}: not measured")
            checks.append(None)
        else:
            mib = float(row["rps"]) / 1024
            cells.append(f"{backend}: **{mib:.1f} MiB**")
            checks.append(mib <= RSS_GOAL_MIB)
    goals.append((f"peak RSS ≤ {RSS_GOAL_MIB:.0f} MiB with 1M sessions, on both backends",
                  cells, checks))

    print("## Goals\n")
    print("| goal (issue 17) | this run | met? |")
    print("|---|---|---|")
    for goal, cells, checks in goals:
        print(f"| {goal} | {'; '.join(cells)} | {verdict(checks)} |")


def main(path):
    res = Results(path)
    goals_table(res)
    print()
    scenarios_table(res)
    baselines_table(res)
    scale_table(res)


if __name__ == "__main__":
    main(sys.argv[1])
