"""Turns a bench/run results file (TSV) into the Markdown tables of BENCHMARKS.md, with every
figure also given as a ratio against a baseline measured in the same run.

    python3 bench/report.py bench/results/<stamp>.tsv
"""
import csv
import sys

GOALS = {
    "refresh": ("pgbench_refresh", 1.0),
    "get": ("pgbench_lookup", 0.5),
}


def number(text):
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def ratio(a, b):
    return f"{a / b:.2f}×" if a is not None and b else "–"


def main(path):
    with open(path) as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    get = lambda backend, scenario, scale=None, c=None: next(
        (r for r in rows if r["backend"] == backend and r["scenario"] == scenario
         and (scale is None or r["scale"] == scale) and (c is None or r["concurrency"] == c)),
        None)
    rate = lambda row: number(row["rps"]) if row else None

    argon = rate(get("baseline", "argon2_verify"))
    scales = sorted({r["scale"] for r in rows if r["scenario"].startswith("pgbench_")}, key=int)
    smallest = scales[0] if scales else None

    print("## Scenarios\n")
    print("| backend | scenario | stored sessions | c | req/s | p50 ms | p99 ms | errors "
          "| vs empty axum | vs baseline |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if r["backend"] == "baseline" or r["scenario"] == "peak_rss_kib":
            continue
        empty = rate(get("baseline", "empty_axum", c=r["concurrency"]))
        base = "–"
        if r["scenario"] in ("login",):
            base = f"{ratio(rate(r), argon)} Argon2id"
        elif r["scenario"] in GOALS and r["backend"] == "postgres":
            stmt, goal = GOALS[r["scenario"]]
            scale = smallest if r["scale"] == "base" else r["scale"]
            pg = rate(get("baseline", stmt, scale, r["concurrency"]))
            base = f"{ratio(rate(r), pg)} {stmt} (goal {goal}×)"
        print(f"| {r['backend']} | {r['scenario']} | {r['scale']} | {r['concurrency']} "
              f"| {float(r['rps']):.0f} | {r['p50_ms']} | {r['p99_ms']} | {r['errors']} "
              f"| {ratio(rate(r), empty)} | {base} |")

    print("\n## Baselines\n")
    print("| baseline | stored sessions | c | rate/s |")
    print("|---|---|---|---|")
    for r in rows:
        if r["backend"] == "baseline":
            print(f"| {r['scenario']} | {r['scale']} | {r['concurrency']} | {float(r['rps'] or 0):.0f} |")

    print("\n## Scale and memory\n")
    print("| check | value | goal |")
    print("|---|---|---|")
    if len(scales) >= 2:
        lo, hi = scales[0], scales[-1]
        for scenario in ("refresh", "get"):
            cs = sorted({r["concurrency"] for r in rows if r["scenario"] == scenario
                         and r["scale"] == hi}, key=int)
            for c in cs:
                a, b = get("postgres", scenario, lo, c), get("postgres", scenario, hi, c)
                if a and b:
                    print(f"| {scenario} p99 at {hi} / at {lo} sessions, c={c} "
                          f"| {ratio(number(b['p99_ms']), number(a['p99_ms']))} "
                          f"| {'≤ 1.5×' if scenario == 'refresh' else '–'} |")
    for r in rows:
        if r["scenario"] == "peak_rss_kib":
            print(f"| {r['backend']} peak RSS, {r['scale']} stored sessions "
                  f"| {float(r['rps']) / 1024:.1f} MiB | ≤ 64 MiB |")
    for flood in (r for r in rows if r["scenario"] == "get_during_login_flood"):
        plain = get(flood["backend"], "get", "base", flood["concurrency"])
        spun = get(flood["backend"], "get_beside_idle_spinners", "base", flood["concurrency"])
        notes = [f"get alone: {plain['p99_ms']} ms"] if plain else []
        if spun:
            notes.append(f"beside idle-priority busy loops on every core: {spun['p99_ms']} ms")
        alone = f" ({'; '.join(notes)})" if notes else ""
        print(f"| get p99 at c={flood['concurrency']} during a login flood"
              f"{alone} | {flood['p99_ms']} ms | ≤ 10 ms |")


if __name__ == "__main__":
    main(sys.argv[1])
