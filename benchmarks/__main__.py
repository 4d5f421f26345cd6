"""``python -m benchmarks [--quick | --smoke] [--output FILE.json]``: run, print, save.

Runs `bench_parse`, `bench_cold`, `bench_shapes`, `bench_watch`, `bench_pacing` and
`bench_relay`, prints a table of each and of the targets of issues 5, 10, 11, 12 and 14
(PASS or MISS, for a reader: the exit status is 0 whatever the numbers), and writes every
measurement as JSON (default ``benchmarks/results/latest.json``, which git ignores).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import bench_cold, bench_pacing, bench_parse, bench_relay, bench_shapes, bench_watch
from ._common import fmt_table, machine
from ._report_cold import cold_tables, cold_targets

RESULTS = Path(__file__).resolve().parent / "results" / "latest.json"

MODES: dict[str, dict[str, Any]] = {
    "full": {
        "parse_sizes": [1, 100, 10_000],
        "parse_repeat": 7,
        "cold": (10_000, 13_600, 7),  # exports cold, exports at the 16 MiB cap, rounds
        "shapes": (16 * 1024 * 1024, 3),
        "watch": bench_watch.Settings(
            ks=[1, 100, 1_000, 10_000],
            poll=0.5,
            active_ticks=10,
            idle_ticks=6,
            min_rounds=2,
            max_phase_seconds=90.0,
        ),
        "pacing": {"joins": 40, "span": 1.0, "restart_ids": 500},
        "relay": bench_relay.Settings(subscribers=[1, 20, 200], poll=0.1, window=3.0),
    },
    "quick": {
        "parse_sizes": [1, 100, 10_000],
        "parse_repeat": 3,
        "cold": (10_000, 13_600, 3),
        "shapes": (4 * 1024 * 1024, 2),
        "watch": bench_watch.Settings(
            ks=[1, 100, 1_000],
            poll=0.2,
            active_ticks=6,
            idle_ticks=3,
            min_rounds=2,
            max_phase_seconds=30.0,
        ),
        "pacing": {"joins": 40, "span": 1.0, "restart_ids": 500},
        "relay": bench_relay.Settings(subscribers=[1, 20, 200], poll=0.1, window=2.0),
    },
    "smoke": {
        "parse_sizes": [1, 10],
        "parse_repeat": 1,
        "cold": (20, 60, 2),
        "shapes": (64 * 1024, 1),
        "watch": bench_watch.Settings(
            ks=[1, 10],
            poll=0.05,
            active_ticks=2,
            idle_ticks=1,
            min_rounds=1,
            max_phase_seconds=10.0,
        ),
        "pacing": {"joins": 8, "span": 0.2, "restart_ids": 20},
        "relay": bench_relay.Settings(
            subscribers=[1, 3], poll=0.05, window=0.3, fleet_relays=[1], fleet_subscribers=2
        ),
    },
}

# Targets of issue 5.
PARSE_RATIO = 1.5
CPU_RATIO = 0.1
MEMORY_BYTES = 4096
LATENCY_K = 1_000
LATENCY_SLACK = 0.050


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="reduced sizes (about a minute)")
    size.add_argument("--smoke", action="store_true", help="tiny sizes: does it still run?")
    parser.add_argument(
        "--output", type=Path, default=RESULTS, help=f"JSON file to write (default {RESULTS})"
    )
    args = parser.parse_args(argv)
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    config = MODES[mode]

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    started = time.perf_counter()
    log(f"vdgexport benchmarks, {mode} run")
    parse = bench_parse.run(config["parse_sizes"], config["parse_repeat"], log=log)
    cold = bench_cold.run(*config["cold"], log=log)
    shapes = bench_shapes.run(*config["shapes"], log=log)
    watch = bench_watch.run(config["watch"], log=log)
    pacing = bench_pacing.run(**config["pacing"], log=log)
    relay = bench_relay.run(config["relay"], log=log)
    results = {
        "mode": mode,
        "command": _command(mode, args.output),
        "machine": machine(),
        "parse": parse,
        "cold": cold,
        "shapes": shapes,
        "watch": watch,
        "pacing": pacing,
        "relay": relay,
        "seconds": time.perf_counter() - started,
    }
    results["targets"] = (
        targets(results)
        + cold_targets(cold, shapes)
        + bench_pacing.targets(pacing)
        + relay_targets(relay)
    )
    print(report(results))
    _write(args.output, results)
    return 0


def _command(mode: str, output: Path) -> str:
    flag = {"full": "", "quick": " --quick", "smoke": " --smoke"}[mode]
    return f"python -m benchmarks{flag}" + ("" if output == RESULTS else f" --output {output}")


def _write(path: Path, results: dict[str, Any]) -> None:
    text = json.dumps(results, indent=2, default=str) + "\n"
    if str(path) != "/dev/null":
        path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)


# -- targets ----------------------------------------------------------------------------


def _verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else "PASS" if ok else "MISS"


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target of issue 5 with what was measured and PASS / MISS."""
    out: list[dict[str, Any]] = []
    parse, watch = results["parse"], results["watch"]
    sim_rows = [r for r in parse["rows"] if r["body"] == "simulator"]
    big = max(sim_rows, key=lambda r: r["exports"])
    hostile = parse["hostile"]
    refused = None if hostile["skipped"] else hostile["all_refused"]
    ok = big["ours_over_floor"] <= PARSE_RATIO and refused is not False
    out.append(
        {
            "target": f"safe parse of {big['exports']:,} exports <= {PARSE_RATIO}x floor, "
            "hostile XML refused" + _reduced(big["exports"] < 10_000),
            "measured": f"{big['ours_over_floor']:.2f}x (gc-off floor "
            f"{big['ours_over_floor_gc_off']:.2f}x); hostile: "
            + (
                "skipped"
                if refused is None
                else f"{sum(f['refused'] for f in hostile['files'])}/"
                f"{len(hostile['files'])} refused"
            ),
            "verdict": _verdict(ok),
        }
    )

    speed = watch["speed"]
    ours = [r for r in speed if r["impl"] == "ours"]
    per_round = [r[p]["requests_per_round"] for r in ours for p in ("active", "idle")]
    ok = all(v is not None and v <= 1.0 + 1e-9 for v in per_round)
    naive = [r["active"]["requests_per_round"] / r["k"] for r in speed if r["impl"] == "naive"]
    out.append(
        {
            "target": "requests per round = 1 (+ confirmations) at every K",
            "measured": f"ours max {max(v or 0 for v in per_round):.2f}; baseline "
            f"{min(naive, default=0):.2f}-{max(naive, default=0):.2f} x K",
            "verdict": _verdict(ok),
        }
    )

    top = max(r["k"] for r in speed)
    for transport in watch["settings"]["transports"]:
        pair = {r["impl"]: r for r in speed if r["k"] == top and r["transport"] == transport}
        if {"ours", "naive"} <= pair.keys():
            a = pair["ours"]["active"]["cpu_per_round"]
            b = pair["naive"]["active"]["cpu_per_round"]
            ratio = a / b if a and b else None
            out.append(
                {
                    "target": f"CPU per round at K={top:,} ({transport}) <= "
                    f"{CPU_RATIO:g} x baseline" + _reduced(top < 10_000),
                    "measured": "-" if ratio is None else f"{a:.3f} s vs {b:.3f} s = {ratio:.3f}x",
                    "verdict": _verdict(None if ratio is None else ratio <= CPU_RATIO),
                }
            )

    mem = [r for r in watch["memory"] if r["impl"] == "ours"]
    if mem:
        row = max(mem, key=lambda r: r["k"])
        out.append(
            {
                "target": f"memory per idle watch at K={row['k']:,} <= {MEMORY_BYTES} B"
                + _reduced(row["k"] < 10_000),
                "measured": f"{row['bytes_per_watch']:,.0f} B "
                f"({row['bytes_per_watch_with_consumer_task']:,.0f} B with "
                "a consumer task)",
                "verdict": _verdict(row["bytes_per_watch"] <= MEMORY_BYTES),
            }
        )
        beyond = row.get("bytes_per_watch_beyond_bare_task")
        out.append(
            {
                "target": f"idle watch with its consumer task, beyond a bare sleeping task, at "
                f"K={row['k']:,} <= {MEMORY_BYTES} B" + _reduced(row["k"] < 10_000),
                "measured": "-" if beyond is None else f"{beyond:,.0f} B",
                "verdict": _verdict(None if beyond is None else beyond <= MEMORY_BYTES),
            }
        )

    poll = watch["settings"]["poll"]
    k = max((r["k"] for r in ours if r["k"] <= LATENCY_K), default=None)
    for row in (r for r in ours if r["k"] == k):
        p99 = row["latency"]["p99"]
        out.append(
            {
                "target": f"p99 latency at K={k:,} ({row['transport']}) <= poll "
                f"{poll:g} s + {LATENCY_SLACK * 1000:.0f} ms",
                "measured": "-" if p99 is None else f"{p99 * 1000:.0f} ms",
                "verdict": _verdict(None if p99 is None else p99 <= poll + LATENCY_SLACK),
            }
        )
    return out


def relay_targets(relay: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 12: however many SSE subscribers, one request per tick."""
    ours = [r for r in relay["rows"] if r["impl"].startswith("relay")]
    naive = [r for r in relay["rows"] if r["impl"] == "naive"]
    worst = max(r["requests_per_tick"] for r in ours)
    return [
        {
            "target": "relay: VDG requests per tick = 1 with "
            + ", ".join(str(r["subscribers"]) for r in ours if r["impl"] == "relay")
            + " SSE subscribers (of one export each, then of /api/events)",
            "measured": ", ".join(f"{r['requests_per_tick']:.2f}" for r in ours)
            + " (naive: "
            + ", ".join(f"{r['requests_per_tick']:.1f}" for r in naive)
            + ")",
            "verdict": _verdict(worst <= 1.0 + 1e-9),
        }
    ]


def _reduced(reduced: bool) -> str:
    return " [reduced size; the target is stated for 10,000]" if reduced else ""


# -- the report -------------------------------------------------------------------------


def report(results: dict[str, Any]) -> str:
    """The tables, as Markdown-friendly text."""
    m = results["machine"]
    lines = [
        f"## vdgexport benchmarks ({results['mode']} run, `{results['command']}`)",
        "",
        f"Machine: {m['cpus']} CPUs, {m['cpu_model']}, {m['implementation']} "
        f"{m['python']}, {m['platform']}; run took {results['seconds']:.0f} s.",
        "",
    ]
    lines += [*_parse_table(results["parse"]), ""]
    lines += [*cold_tables(results["cold"], results["shapes"]), ""]
    lines += _watch_tables(results["watch"])
    lines += ["", *bench_pacing.table(results["pacing"])]
    lines += ["", *_relay_table(results["relay"])]
    lines += ["", *bench_relay.fleet_table(results["relay"]["fleet"])]
    lines += ["", "### Targets (issues 5, 10, 11, 12 and 14)", ""]
    lines.append(
        fmt_table(
            ["target", "measured", "verdict"],
            [[t["target"], t["measured"], t["verdict"]] for t in results["targets"]],
        )
    )
    return "\n".join(lines)


def _parse_table(parse: dict[str, Any]) -> list[str]:
    rows = []
    for r in parse["rows"]:
        s, eps = r["seconds"], r["exports_per_second"]
        rows.append(
            [
                r["body"],
                r["exports"],
                r["bytes"],
                s["floor"] * 1e3,
                s["floor_gc_off"] * 1e3,
                s["ours"] * 1e3,
                s["naive"] * 1e3,
                eps["ours"],
                eps["naive"],
                f"{r['ours_over_floor']:.2f}x",
                f"{r['ours_over_floor_gc_off']:.2f}x",
                f"{r['naive_over_floor']:.2f}x",
                "yes" if r["same_models"] else "NO",
            ]
        )
    head = [
        "body",
        "exports",
        "bytes",
        "floor ms",
        "floor gc-off ms",
        "ours ms",
        "naive ms",
        "ours exp/s",
        "naive exp/s",
        "ours/floor",
        "ours/floor gc-off",
        "naive/floor",
        "same models",
    ]
    out = ["### Parse (best of N, time.perf_counter)", "", fmt_table(head, rows), ""]
    hostile = parse["hostile"]
    if hostile["skipped"]:
        out.append(f"Hostile XML: skipped ({hostile['skipped']}: {hostile['directory']}).")
    else:
        bad = [f["file"] for f in hostile["files"] if not f["refused"]]
        out.append(
            f"Hostile XML ({len(hostile['files'])} files in tests/data/hostile-xml): "
            + ("all refused with ProtocolError." if not bad else f"NOT refused: {', '.join(bad)}")
        )
    return out


def _watch_tables(watch: dict[str, Any]) -> list[str]:
    settings = watch["settings"]
    rows = []
    for r in watch["speed"]:
        a, i, lat = r["active"], r["idle"], r["latency"]
        rows.append(
            [
                r["k"],
                r["transport"],
                r["impl"],
                a["rounds"],
                a["requests_per_round"],
                i["requests_per_round"],
                a["cpu_per_round"],
                i["cpu_per_round"],
                a["seconds_per_round"],
                _ms(lat["p50"]),
                _ms(lat["p99"]),
                lat["events"],
                r["errors"],
            ]
        )
    head = [
        "K",
        "transport",
        "impl",
        "rounds",
        "req/round",
        "req/round idle",
        "CPU s/round",
        "CPU s/round idle",
        "wall s/round",
        "p50 ms",
        "p99 ms",
        "events",
        "errors",
    ]
    out = [
        f"### Watch (poll_interval = max_poll_interval = {settings['poll']:g} s)",
        "",
        fmt_table(head, rows),
        "",
        "A round polls every watched export once. CPU is `time.process_time` of the whole "
        "process: client, consumers and the simulator (asgi = in-process "
        "`httpx.ASGITransport`); for `http` the uvicorn server also runs in a thread of "
        "this process, so its CPU is included. Latency: from the clock step in the "
        "simulator to the consumer holding the DeviceProgress.",
    ]
    out.extend(
        f"FAILED: K={f['k']:,} {f['impl']} over {f['transport']}: {f['error']}"
        for f in watch.get("failures", [])
    )
    if watch["memory"]:
        mrows = [
            [
                r["k"],
                r["impl"],
                r["bytes_per_watch"],
                r["peak_bytes_per_watch"],
                r["bytes_per_watch_with_consumer_task"],
                r.get("bytes_per_bare_task"),
                r.get("bytes_per_watch_beyond_bare_task"),
            ]
            for r in watch["memory"]
        ]
        out += [
            "",
            "Memory per idle watch (tracemalloc, in-process, simulator excluded):",
            "",
            fmt_table(
                [
                    "K",
                    "impl",
                    "bytes/watch",
                    "peak bytes/watch",
                    "bytes/watch with consumer task",
                    "bytes/bare task",
                    "beyond a bare task",
                ],
                mrows,
            ),
        ]
    return out


def _relay_table(relay: dict[str, Any]) -> list[str]:
    s = relay["settings"]
    rows = [
        [
            r["subscribers"],
            r["impl"],
            r["requests"],
            r["ticks"],
            r["requests_per_tick"],
            r.get("extra_requests"),
            r["events_per_second"],
        ]
        for r in relay["rows"]
    ]
    head = ["SSE subscribers", "impl", "requests", "ticks", "req/tick", "beside a tick", "events/s"]
    return [
        f"### Relay: VDG requests per tick (poll {s['poll']:g} s, window {s['window']:g} s)",
        "",
        fmt_table(head, rows),
        "",
        "relay: N subscribers of `/api/exports/{id}/events` over loopback HTTP, one relay "
        "(one Client); relay /api/events: N subscribers of `/api/events` on it; "
        "naive: N subscribers each with a Client of its own. Beside a tick: requests less than "
        "half a poll interval after the one before.",
    ]


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


if __name__ == "__main__":
    sys.exit(main())
