#!/usr/bin/env python3
"""Helper of scripts/bench: times a cold start, and turns a run's results into the report.

  bench_report.py coldstart --binary BIN --env KEY=VALUE ...
      Starts BIN with those settings, prints the milliseconds until `GET /` first answers 200,
      then stops it.
  bench_report.py report --results DIR --markdown OUT.md --chart OUT.png
      Reads what scripts/bench left in DIR, prints the Markdown report and writes it with its
      chart. Exits 1 when a scenario that should succeed saw a non-2xx answer or a socket error,
      or completed no request; a missed timing target is reported, never fatal.
  bench_report.py soak --results DIR --markdown BENCH.md
      Reads what `scripts/bench --soak` left in DIR and writes the "Soak" section of BENCH.md,
      replacing the one there (a full report keeps it). Exits 1 on any error in the soak.

Only the standard library; the chart is drawn by gnuplot.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# --- cold start ----------------------------------------------------------------------------


def first_200(port: int) -> bool:
    """One `GET /` on a fresh connection; False while nothing listens or the answer is not 200."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as conn:
            conn.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            status_line = conn.makefile("rb").readline()
    except OSError:
        return False
    return status_line.split(b" ")[1:2] == [b"200"]


def coldstart(args: argparse.Namespace) -> int:
    env = dict(os.environ)
    env.update(setting.split("=", 1) for setting in args.env)
    port = int(env["ROCKET_PORT"])
    started = time.perf_counter()
    server = subprocess.Popen([args.binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not first_200(port):
            if server.poll() is not None:
                print(f"the server exited with {server.returncode}", file=sys.stderr)
                return 1
            if time.perf_counter() - started > 10:
                print("no 200 within 10 s", file=sys.stderr)
                return 1
            time.sleep(0.001)
        print(f"{(time.perf_counter() - started) * 1e3:.1f}")
        return 0
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


# --- report --------------------------------------------------------------------------------


@dataclass
class Scenario:
    """One scenario: what it sends, what it must answer, and which bcrypt ceiling applies."""

    name: str
    label: str
    expected: str  # "2xx", or a status such as "401"
    bound: str | None = None  # "verify" or "hash": the per-second ceiling it is compared with


SCENARIOS = [
    Scenario("index", "`GET /` (JSON)", "2xx"),
    Scenario("profile_json", "`GET /profile` (JSON)", "2xx"),
    Scenario("profile_html", "`GET /profile` (HTML page)", "2xx"),
    Scenario("login", "`POST /sessions`, right password", "2xx", "verify"),
    Scenario("login_wrong", "`POST /sessions`, wrong password (401 expected)", "401", "verify"),
    Scenario("register", "`POST /users`, unique emails, cost 12", "2xx", "hash"),
    Scenario("mixed_login", "mixed: `POST /sessions` saturating", "2xx", "verify"),
    Scenario("mixed_profile", "mixed: `GET /profile`, paced probe", "2xx"),
    Scenario("register_cost4", "`POST /users`, unique emails, cost 4, `seed` policy", "2xx"),
    Scenario("register_cost4_strict", "`POST /users`, cost 4, `strict` policy (zxcvbn)", "2xx"),
]

# The scenarios `scripts/bench --pg` repeats on PostgreSQL, under the name prefix `pg_`.
PG_REPEATED = ("profile_json", "profile_html", "login", "mixed_login", "mixed_profile", "register_cost4")
PG_SCENARIOS = [
    Scenario("pg_" + sc.name, "PostgreSQL: " + sc.label, sc.expected, sc.bound)
    for sc in SCENARIOS
    if sc.name in PG_REPEATED
]

TARGET_RSS_MIB = 64
TARGET_COLD_MS = 200
TARGET_MIXED_P99_MS = 20


def read_tsv(path: Path) -> list[list[str]]:
    if not path.exists():
        return []
    return [line.split("\t") for line in path.read_text().splitlines() if line.strip()]


def wrk_result(path: Path) -> dict | None:
    """The BENCH_RESULT line that bench/common.lua prints at the end of a wrk run."""
    if not path.exists():
        return None
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("BENCH_RESULT "):
            return json.loads(line[len("BENCH_RESULT ") :])
    return None


def fmt_ms(us: float) -> str:
    ms = us / 1000
    if ms >= 100:
        return f"{ms:,.0f} ms"
    if ms >= 10:
        return f"{ms:.1f} ms"
    return f"{ms:.2f} ms"


def fmt_rate(rate: float) -> str:
    return f"{rate:,.0f}" if rate >= 100 else f"{rate:.1f}"


def mib(kib: float) -> float:
    return kib / 1024


def report(args: argparse.Namespace) -> int:
    results = Path(args.results)
    meta = {row[0]: row[1] if len(row) > 1 else "" for row in read_tsv(results / "meta.tsv")}
    probe = json.loads((results / "probe.json").read_text())
    cold = [float(x) for x in (results / "coldstart.txt").read_text().split()]
    ticks = float(meta.get("clock_ticks", "100"))
    enumeration: dict[str, list[float]] = {"wrong_password": [], "unknown_email": []}
    for kind, seconds in read_tsv(results / "enumeration.tsv"):
        enumeration[kind].append(1000 * float(seconds))
    wrong_ms = statistics.median(enumeration["wrong_password"])
    unknown_ms = statistics.median(enumeration["unknown_email"])
    enumeration_ratio = unknown_ms / wrong_ms
    cores = int(meta["cores"])
    bounds = {"verify": probe["bound_per_s"], "hash": cores * 1000 / probe["hash_ms"]}

    # scenarios.tsv: name, server, start, end, cpu before (4 fields), cpu after (4 fields), load.
    timing = {}
    for row in read_tsv(results / "scenarios.tsv"):
        name, server, start, end, before, after, load = row
        b, a = [float(x) for x in before.split()], [float(x) for x in after.split()]
        total = a[2] - b[2]
        timing[name] = {
            "server": server,
            "start": float(start),
            "end": float(end),
            "machine_cpu": 100 * cores * (a[0] - b[0]) / total if total else 0,
            "steal_cpu": 100 * cores * (a[1] - b[1]) / total if total else 0,
            "server_cpu": 100 * (a[3] - b[3]) / ticks / (float(end) - float(start)),
            "load": load,
        }

    rss = {}  # server name -> [(time, KiB)]
    for path in results.glob("rss-*.tsv"):
        rss[path.stem[4:]] = [(float(t), float(kib)) for t, kib in read_tsv(path)]
    peaks = {name: float(kib) for name, kib in read_tsv(results / "servers.tsv")}

    with_pg = "postgres" in meta.get("backend", "")
    rows, failures, figures = [], [], {}
    for sc in SCENARIOS + (PG_SCENARIOS if with_pg else []):
        res = wrk_result(results / f"{sc.name}.txt")
        t = timing.get(sc.name)
        if res is None or t is None:
            failures.append(f"{sc.name}: no result (did wrk run?)")
            continue
        rate = res["requests"] / (res["duration_us"] / 1e6)
        socket_errors = res["connect_errors"] + res["read_errors"] + res["write_errors"] + res["timeouts"]
        # A 2xx scenario with a status check also counts redirects, which wrk lets pass.
        non_2xx = res["status_4xx_5xx"]
        if sc.expected == "2xx" and res["status_checked"]:
            non_2xx = max(non_2xx, res["unexpected_status"])
        if res["requests"] == 0:
            failures.append(f"{sc.name}: no request completed")
        if socket_errors:
            failures.append(f"{sc.name}: {socket_errors} socket errors")
        if sc.expected == "2xx" and non_2xx:
            failures.append(f"{sc.name}: {non_2xx} non-2xx answers")
        if sc.expected != "2xx" and res["unexpected_status"]:
            failures.append(f"{sc.name}: {res['unexpected_status']} answers other than {sc.expected}")
        samples = [kib for when, kib in rss.get(t["server"], []) if t["start"] <= when <= t["end"]]
        figures[sc.name] = {"rate": rate, "p99_us": res["p99_us"], "p50_us": res["p50_us"]}
        share = f"{100 * rate / bounds[sc.bound]:.0f}%" if sc.bound else ""
        errors_cell = f"{non_2xx}" + (f" (all {sc.expected}, expected)" if sc.expected != "2xx" else "")
        if sc.name == "profile_html" and res["content_type"]:
            errors_cell += f" — answered `{res['content_type'].split(';')[0]}`"
        rows.append(
            [
                sc.label,
                fmt_rate(rate),
                share,
                fmt_ms(res["p50_us"]),
                fmt_ms(res["p99_us"]),
                errors_cell,
                str(socket_errors),
                f"{t['server_cpu']:.0f}%",
                f"{t['machine_cpu']:.0f}%",
                f"{mib(max(samples)):.1f}" if samples else "",
                t["load"],
            ]
        )

    main_samples = [kib for _, kib in rss.get("main", [])]
    steady_mib = mib(statistics.median(main_samples)) if main_samples else 0.0
    peak_mib = mib(max(peaks.values())) if peaks else 0.0
    cold_median = statistics.median(cold) if cold else float("inf")

    def ratio(a: str, b: str) -> float:
        return figures[a]["rate"] / figures[b]["rate"] if a in figures and b in figures else 0.0

    login_share = figures["login"]["rate"] / bounds["verify"] if "login" in figures else 0.0
    mixed_share = figures["mixed_login"]["rate"] / bounds["verify"] if "mixed_login" in figures else 0.0
    mixed_p99 = figures["mixed_profile"]["p99_us"] / 1000 if "mixed_profile" in figures else float("inf")
    cost4 = figures["register_cost4"]["rate"] if "register_cost4" in figures else 0.0
    targets = [
        ("logins ≥ 90% of the bcrypt bound", f"{100 * login_share:.0f}%", login_share >= 0.9),
        (
            "`GET /profile` ≥ 50% of `GET /` throughput",
            f"{100 * ratio('profile_json', 'index'):.0f}%",
            ratio("profile_json", "index") >= 0.5,
        ),
        (
            f"mixed: `GET /profile` p99 < {TARGET_MIXED_P99_MS} ms",
            f"{mixed_p99:.1f} ms",
            mixed_p99 < TARGET_MIXED_P99_MS,
        ),
        ("mixed: logins ≥ 80% of the bound", f"{100 * mixed_share:.0f}%", mixed_share >= 0.8),
        (
            "no non-2xx answer or socket error where success is expected",
            "none" if not failures else f"{len(failures)} problem(s)",
            not failures,
        ),
        (f"server RSS ≤ {TARGET_RSS_MIB} MiB at peak", f"{peak_mib:.1f} MiB", peak_mib <= TARGET_RSS_MIB),
        (
            f"cold start < {TARGET_COLD_MS} ms (median)",
            f"{cold_median:.0f} ms",
            cold_median < TARGET_COLD_MS,
        ),
        ("registrations at cost 4 ≥ 1,000/s", f"{cost4:,.0f}/s", cost4 >= 1000),
        (
            "login time, unknown email ÷ wrong password, within 0.9 to 1.1",
            f"{enumeration_ratio:.3f}",
            0.9 <= enumeration_ratio <= 1.1,
        ),
    ]

    quick = meta.get("mode") == "quick"
    md = []
    md.append("# Benchmarks\n")
    md.append(
        f"Generated by `scripts/bench` on {meta['date']}: "
        + ("**a `--quick` smoke run, not figures to publish**" if quick else "a full run")
        + f", {meta['duration_s']} s per scenario.\n"
    )
    md.append(
        f"- Machine: **{cores} cores** (`nproc`), {meta.get('cpu', '?')}, {meta.get('kernel', '?')}. "
        f"Load average (1, 5, 15 min) {meta['load_start']} at the start, {meta['load_end']} at the end; "
        "the load column below is the 1-minute figure at the end of each scenario, which includes "
        "the benchmark's own server and wrk (about 2 to 3 runnable threads when saturated)."
    )
    md.append(
        f"- Service: `target/release/auth-service` at commit {meta['commit']}, {meta['backend']} on a "
        "fresh database file per server, the settings of `Rocket.toml` (workers, pool), "
        f"bcrypt cost {probe['cost']} (the default) except in the last scenario. "
        f"Release build took {meta['build_s']} s (0 when already built); the measurements {meta['run_s']} s."
    )
    md.append(
        f"- Load: {meta['wrk']}, {meta['threads']} threads and {meta['connections']} connections per "
        f"scenario; logins take turns over {meta['login_users']} seeded accounts; the profile cookie "
        "belongs to an account no scenario logs in to, so its session list stays one row long. In the mixed "
        f"scenario a second wrk of the same shape waits {meta['probe_pace_ms']} ms between requests on "
        "each connection: a latency probe, not a second saturating load.\n"
    )

    md.append("## The bcrypt bound\n")
    md.append(
        "Measured in the same run by `target/release/bcrypt_probe` (the `bcrypt` crate the service "
        "uses, one thread, median of "
        f"{probe['rounds']} rounds after a warm-up). A login costs one verify, a registration one hash.\n"
    )
    md.append("| cost | hash, 1 thread | verify, 1 thread | cores | bound = cores ÷ verify | "
              "all cores verifying, measured |")
    md.append("|---:|---:|---:|---:|---:|---:|")
    md.append(
        f"| {probe['cost']} | {probe['hash_ms']:.1f} ms | {probe['verify_ms']:.1f} ms "
        f"(fastest {probe['verify_min_ms']:.1f}) | {probe['cores']} | **{probe['bound_per_s']:.2f} logins/s** | "
        f"{probe['parallel_verify_per_s']:.2f}/s |\n"
    )
    md.append(
        "The last column is what the cores gave bcrypt while the probe ran: below the bound when "
        "other processes share the machine.\n"
    )

    md.append("## Scenarios\n")
    header = [
        "scenario",
        "requests/s",
        "% of bcrypt bound",
        "p50",
        "p99",
        "non-2xx",
        "socket errors",
        "server CPU",
        "machine CPU",
        "server RSS max (MiB)",
        "load (1 min)",
    ]
    md.append("| " + " | ".join(header) + " |")
    md.append("|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|")
    md.extend("| " + " | ".join(row) + " |" for row in rows)
    md.append("")
    md.append(
        f"Login and registration percentages compare with the bound above (registrations at cost "
        f"{probe['cost']} with cores ÷ hash time, {bounds['hash']:.2f}/s). Their latencies are queueing: "
        f"{meta['connections']} connections wait for {cores} bcrypt slots. Server CPU is the server "
        f"process's share of one core (up to {100 * cores}%), machine CPU everything on the machine "
        "(the server, wrk and anyone else). wrk corrects its percentiles for coordinated omission.\n"
    )

    if with_pg:
        md.append("## SQLite and PostgreSQL\n")
        md.append(
            "The same scenarios in the same run, on a SQLite file and on a throwaway PostgreSQL 15 "
            "server on this machine (fsync off, as a test server). PostgreSQL pays a network round "
            "trip per query; SQLite serialises writers.\n"
        )
        md.append("| scenario | SQLite requests/s | PostgreSQL requests/s | PostgreSQL ÷ SQLite | SQLite p99 | PostgreSQL p99 |")
        md.append("|---|---:|---:|---:|---:|---:|")
        for name in PG_REPEATED:
            lite, pg = figures.get(name), figures.get("pg_" + name)
            if not lite or not pg:
                continue
            label = next(sc.label for sc in SCENARIOS if sc.name == name)
            md.append(
                f"| {label} | {lite['rate']:,.1f} | {pg['rate']:,.1f} | {pg['rate'] / lite['rate']:.2f} | "
                f"{lite['p99_us'] / 1000:.2f} ms | {pg['p99_us'] / 1000:.2f} ms |"
            )
        md.append("")

    md.append("## Enumeration timing\n")
    md.append(
        "One login at a time on the idle server, taking turns: a wrong password for an existing "
        "account, then an email with no account (each a new one). Both run one bcrypt verify, so the "
        "answer time does not tell which emails exist.\n"
    )
    md.append("| login | requests | median | fastest | slowest |")
    md.append("|---|---:|---:|---:|---:|")
    for kind, label in (("wrong_password", "wrong password, existing account"), ("unknown_email", "unknown email")):
        times = enumeration[kind]
        md.append(
            f"| {label} | {len(times)} | {statistics.median(times):.1f} ms | {min(times):.1f} ms | "
            f"{max(times):.1f} ms |"
        )
    md.append(f"\nRatio of the medians, unknown ÷ wrong: **{enumeration_ratio:.3f}**.\n")

    md.append("## Server\n")
    md.append("| peak RSS (VmHWM) | steady RSS (median of samples) | cold start to first 200 | binary size |")
    md.append("|---:|---:|---:|---:|")
    per_server = ", ".join(f"{name} {mib(kib):.1f}" for name, kib in sorted(peaks.items()))
    stripped = int(meta.get("stripped_bytes", "0") or 0)
    md.append(
        f"| {peak_mib:.1f} MiB ({per_server}) | {steady_mib:.1f} MiB | median {cold_median:.0f} ms, "
        f"max {max(cold):.0f} ms over {len(cold)} launches | "
        f"{int(meta['binary_bytes']) / 2**20:.1f} MiB ({stripped / 2**20:.1f} MiB stripped) |\n"
    )
    md.append(
        "RSS is read from `/proc/<pid>/status` every 200 ms (VmRSS), and the peak is the kernel's "
        "high-water mark (VmHWM). A cold start launches the binary on a new database file, so it "
        "includes the migrations, and ends at the first 200 from `GET /`.\n"
    )

    md.append("## Targets\n")
    md.append("| target | measured | met |")
    md.append("|---|---:|:---:|")
    md.extend(f"| {name} | {value} | {'yes' if ok else '**no**'} |" for name, value, ok in targets)
    md.append("")
    if failures:
        md.append("Problems: " + "; ".join(failures) + ".\n")

    chart = Path(args.chart)
    if draw_chart(rows_for_chart(figures), chart, meta):
        md.append(f"![Throughput and p99 latency per scenario]({chart.name})\n")

    text = "\n".join(md)
    text = text.rstrip("\n") + "\n" + soak_section_of(Path(args.markdown))
    Path(args.markdown).write_text(text)
    print(text)
    print(f"wrote {args.markdown} and {chart}", file=sys.stderr)
    if failures:
        print("FAILED: " + "; ".join(failures), file=sys.stderr)
        return 1
    return 0


def rows_for_chart(figures: dict) -> list[tuple[str, float, float]]:
    short = {
        "index": "GET /",
        "profile_json": "profile JSON",
        "profile_html": "profile HTML",
        "login": "login",
        "login_wrong": "login, wrong pw",
        "register": "register c12",
        "mixed_login": "mixed: login",
        "mixed_profile": "mixed: profile",
        "register_cost4": "register c4",
        "register_cost4_strict": "register c4 strict",
    }
    def label(name: str) -> str:
        return "pg " + short[name[3:]] if name.startswith("pg_") else short[name]

    return [(label(n), f["rate"], f["p99_us"] / 1000) for n, f in figures.items()]


def draw_chart(rows: list[tuple[str, float, float]], path: Path, meta: dict) -> bool:
    if not rows or shutil.which("gnuplot") is None:
        print("gnuplot is missing: no chart", file=sys.stderr)
        return False
    data = path.with_suffix(".dat")
    data.write_text("".join(f'"{name}"\t{rate:.3f}\t{p99:.3f}\n' for name, rate, p99 in rows))
    title = f"auth-service, {meta['cores']} cores, {meta['date']}" + (" (quick run)" if meta.get("mode") == "quick" else "")
    script = f"""
set terminal pngcairo size 1400,560 font "sans,10"
set output "{path}"
set multiplot layout 1,2 title "{title}"
set style data histograms
set style fill solid 0.8 border -1
set boxwidth 0.8
set logscale y
set grid ytics
set xtics rotate by -35 scale 0
set key off
set yrange [*:*]
set title "Throughput (requests/s, log scale)"
plot "{data}" using 2:xtic(1) lc rgb "#3b75af", "" using 0:2:($2 >= 100 ? sprintf("%.0f", $2) : sprintf("%.3g", $2)) with labels offset 0,0.7 notitle
set title "p99 latency (ms, log scale)"
plot "{data}" using 3:xtic(1) lc rgb "#d1603d", "" using 0:3:($3 >= 100 ? sprintf("%.0f", $3) : sprintf("%.3g", $3)) with labels offset 0,0.7 notitle
unset multiplot
"""
    try:
        subprocess.run(["gnuplot"], input=script, text=True, check=True, capture_output=True)
    except subprocess.CalledProcessError as error:
        print(f"gnuplot failed: {error.stderr}", file=sys.stderr)
        return False
    finally:
        data.unlink(missing_ok=True)
    return True


# --- soak ----------------------------------------------------------------------------------

SOAK_HEADING = "## Soak"
SOAK_WARMUP_S = 60
SOAK_WINDOW_S = 30
TARGET_SOAK_GROWTH = 0.10
SOAK_LOADS = [
    ("soak_login", "logins (8 connections)", 200),
    ("soak_profile", "GET /profile probe (4 connections, paced)", 200),
    ("soak_lifecycle", "account life cycles (2 connections)", None),
]


def soak_section_of(markdown: Path) -> str:
    """The "Soak" section of an existing report, from its heading to the next one, or ""."""
    if not markdown.exists():
        return ""
    lines = markdown.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == SOAK_HEADING), None)
    if start is None:
        return ""
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return "\n" + "".join(lines[start:end]).rstrip("\n") + "\n"


def soak(args: argparse.Namespace) -> int:
    results = Path(args.results)
    meta = {row[0]: row[1] if len(row) > 1 else "" for row in read_tsv(results / "soak_meta.tsv")}
    start = float(meta["start"])
    duration = float(meta["duration_s"])
    samples = [(float(t) - start, mib(float(kib))) for t, kib in read_tsv(results / "soak_rss.tsv")]
    during = [(t, rss) for t, rss in samples if 0 <= t <= duration]

    def median_between(lo: float, hi: float) -> float:
        window = [rss for t, rss in during if lo <= t < hi]
        return statistics.median(window) if window else float("nan")

    after_warmup = median_between(SOAK_WARMUP_S, SOAK_WARMUP_S + SOAK_WINDOW_S)
    at_end = median_between(duration - SOAK_WINDOW_S, duration + 1)
    growth = at_end / after_warmup - 1
    peak = max(rss for _, rss in during)

    rows, errors = [], 0
    for name, label, expected in SOAK_LOADS:
        r = wrk_result(results / f"{name}.txt")
        if r is None:
            print(f"{name}: no wrk result", file=sys.stderr)
            return 1
        socket_errors = r["connect_errors"] + r["read_errors"] + r["write_errors"] + r["timeouts"]
        # The life cycle expects a 303 from its logout, which wrk counts as a success anyway;
        # its script checks every step's own status.
        bad = (r["status_4xx_5xx"] if expected else 0) + r["unexpected_status"] + socket_errors
        errors += bad
        rate = r["requests"] / (r["duration_us"] / 1e6)
        rows.append(
            f"| {label} | {r['requests']:,} | {fmt_rate(rate)} | {fmt_ms(r['p50_us'])} | "
            f"{fmt_ms(r['p99_us'])} | {r['status_4xx_5xx'] + r['unexpected_status']} | {socket_errors} |"
        )

    timeline = []
    for lo in range(0, int(duration), SOAK_WINDOW_S):
        timeline.append(f"| {lo}-{lo + SOAK_WINDOW_S} s | {median_between(lo, lo + SOAK_WINDOW_S):.1f} MiB |")
    verdict_errors = "met" if errors == 0 else "MISSED"
    verdict_growth = "met" if growth < TARGET_SOAK_GROWTH else "MISSED"
    section = "\n".join(
        [
            SOAK_HEADING,
            "",
            f"`scripts/bench --soak`, {meta['date']}, {meta['cores']} cores, commit {meta['commit']}: "
            f"{duration:.0f} s of the three loads below at once, bcrypt cost 12, release build, SQLite.",
            "",
            "| load | requests | per s | p50 | p99 | unexpected status | socket errors |",
            "|---|---:|---:|---:|---:|---:|---:|",
            *rows,
            "",
            f"Server RSS (median of each {SOAK_WINDOW_S} s, sampled every 200 ms):",
            "",
            "| window | RSS |",
            "|---|---:|",
            *timeline,
            "",
            f"- errors: {errors} (target 0: {verdict_errors})",
            f"- RSS growth after a {SOAK_WARMUP_S} s warm-up: {after_warmup:.1f} MiB at "
            f"{SOAK_WARMUP_S}-{SOAK_WARMUP_S + SOAK_WINDOW_S} s to {at_end:.1f} MiB in the last "
            f"{SOAK_WINDOW_S} s = {growth * 100:+.1f}% (target < {TARGET_SOAK_GROWTH * 100:.0f}%: {verdict_growth}); "
            f"peak {peak:.1f} MiB",
            "",
        ]
    )
    markdown = Path(args.markdown)
    text = markdown.read_text() if markdown.exists() else "# Benchmarks\n"
    old = soak_section_of(markdown)
    text = (text.replace(old, "") if old else text).rstrip("\n") + "\n\n" + section
    markdown.write_text(text)
    print(section)
    print(f"wrote the soak section of {markdown}", file=sys.stderr)
    return 0 if errors == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    cold = commands.add_parser("coldstart", help="time one launch to the first 200")
    cold.add_argument("--binary", required=True)
    cold.add_argument("--env", action="append", default=[], help="KEY=VALUE for the server")
    rep = commands.add_parser("report", help="write the Markdown report and the chart")
    rep.add_argument("--results", required=True)
    rep.add_argument("--markdown", required=True)
    rep.add_argument("--chart", required=True)
    soaked = commands.add_parser("soak", help="write the soak section of the report")
    soaked.add_argument("--results", required=True)
    soaked.add_argument("--markdown", required=True)
    args = parser.parse_args()
    return {"coldstart": coldstart, "report": report, "soak": soak}[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
