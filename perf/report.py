#!/usr/bin/env python3
"""Tables, ratios and plots of one scripts/bench.sh run; rewrites its section of
perf/RESULTS.md.

    perf/report.py perf/runs/<stamp>-quick --mode quick --results perf/RESULTS.md [--plot perf/plots]

Only the standard library, except --plot (matplotlib).
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ["sluice", "redis", "tansu"]
PCTS = [("p50", "p50"), ("p99", "p99"), ("p99.9", "p99_9"), ("max", "max")]


def scenarios() -> list[dict]:
    cols = ["name", "quick", "size", "acks", "flush", "producers", "consumers", "partitions", "rate", "linger"]
    out = []
    for line in (ROOT / "perf" / "scenarios.tsv").read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        out.append(dict(zip(cols, line.split())))
    return out


def load(run: Path) -> dict:
    results = {}
    for f in run.glob("*.json"):
        if f.name.startswith(("fio-", "iperf3")):
            continue
        r = json.loads(f.read_text())
        results[(r["scenario"], r["system"])] = r
    return results


def fio_mb_s(path: Path) -> float | None:
    if not path.exists():
        return None
    return json.loads(path.read_text())["jobs"][0]["write"]["bw_bytes"] / 1e6


def iperf_mb_s(path: Path) -> float | None:
    if not path.exists():
        return None
    end = json.loads(path.read_text()).get("end", {})
    if "sum_received" not in end:
        return None  # iperf3 failed: its JSON has an "error"
    return end["sum_received"]["bits_per_second"] / 8 / 1e6


def broker_metric(run: Path, scenario: str, name: str, q: str) -> float | None:
    """A quantile (seconds) of a summary at the end of a Sluice scenario."""
    path = run / f"{scenario}.sluice.metrics.txt"
    if not path.exists():
        return None
    m = re.search(rf'^{name}\{{quantile="{re.escape(q)}"\}} (\S+)$', path.read_text(), re.M)
    return float(m.group(1)) if m else None


def produce_q(run: Path, scenario: str, q: str) -> float | None:
    """A quantile (seconds) of the broker's Produce request latency in a Sluice scenario."""
    path = run / f"{scenario}.sluice.metrics.txt"
    if not path.exists():
        return None
    pat = rf'^sluice_request_latency_seconds\{{api="Produce",quantile="{re.escape(q)}"\}} (\S+)$'
    m = re.search(pat, path.read_text(), re.M)
    return float(m.group(1)) if m else None


def us(v) -> str:
    if v is None:
        return "-"
    v = float(v)
    if v < 1000:
        return f"{v:.0f} µs"
    if v < 1e6:
        return f"{v / 1e3:.2f} ms"
    return f"{v / 1e6:.2f} s"


def num(v: float | None, digits: int = 0) -> str:
    if v is None:
        return "-"
    return f"{v:,.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b:
        return None
    return a / b


def clean(r: dict) -> bool:
    """A run whose figures can be compared: no errors, every acknowledged message consumed."""
    if r["produce_errors"] or r["consume_errors"]:
        return False
    return not r["config"]["consumers"] or r["consumed_total"] >= r["produced_total"]


def build(run: Path, mode: str) -> tuple[str, dict]:
    res = load(run)
    scen = [s for s in scenarios() if any((s["name"], sys) in res for sys in SYSTEMS)]
    fio_buf = fio_mb_s(run / "fio-buffered.json")
    fio_sync = fio_mb_s(run / "fio-fdatasync.json")
    net = iperf_mb_s(run / "iperf3.json")
    machine = (run / "machine.txt").read_text().strip() if (run / "machine.txt").exists() else ""
    lines = []
    w = lines.append
    w(f"Run `{run.relative_to(ROOT) if run.is_relative_to(ROOT) else run}` ({mode}).")
    w("")
    w("```")
    w(machine)
    w("```")
    w("")
    w("Machine limits measured in the same run:")
    w("")
    w("| limit | MB/s |")
    w("|---|---:|")
    w(f"| fio sequential write, 1 MiB blocks, buffered | {num(fio_buf)} |")
    w(f"| fio sequential write, 1 MiB + fdatasync each, preallocated | {num(fio_sync)} |")
    w(f"| iperf3, one TCP stream on loopback | {num(net)} |")
    skipped = run / "tansu-skipped.txt"
    if skipped.exists():
        w("")
        reasons = "; ".join(sorted(set(skipped.read_text().split("\n")) - {""}))
        w(f"Tansu: {reasons}.")
    w("")
    w("Throughput and latency (payload bytes; latency from the intended send time, µs/ms;"
      " `e2e` is produce-to-consume). `× redis` is Sluice msg/s ÷ Redis msg/s in the same"
      " scenario (same payloads, same durability).")
    w("")
    w("| scenario | size | acks / flush | prod/cons | parts | rate | system | msg/s | MB/s |"
      " ack p50 | ack p99 | ack p99.9 | ack max | e2e p50 | e2e p99 | e2e p99.9 | errors | consumed/acked | × redis |")
    w("|---|---:|---|---|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|")
    summary = {"scenarios": {}}
    broken = []
    for s in scen:
        for sys in SYSTEMS:
            r = res.get((s["name"], sys))
            if r is None:
                continue
            pl, el = r["produce_latency_us"], r.get("e2e_latency_us") or {}
            errs = r["produce_errors"] + r["consume_errors"]
            cons = f'{r["consumed_total"]}/{r["produced_total"]}' if r["config"]["consumers"] else "-"
            x = ""
            if sys == "sluice" and (s["name"], "redis") in res:
                other = res[(s["name"], "redis")]
                if clean(r) and clean(other):
                    rr = ratio(r["produce_msgs_per_sec"], other["produce_msgs_per_sec"])
                    x = f"{rr:.2f}" if rr is not None else "-"
                    summary["scenarios"][s["name"]] = rr
                else:
                    x = "invalid"
            if not clean(r):
                errs = f"**{errs}**"
                cons = f"**{cons}**"
                broken.append((s["name"], sys, r.get("first_error")))
            rate = s["rate"] if s["rate"] == "max" else f'{s["rate"]} ({r["config"]["rate"]:.0f}/s)'
            w(f'| {s["name"]} | {s["size"]} | {s["acks"]} / {s["flush"]} | {s["producers"]}/{s["consumers"]} |'
              f' {s["partitions"]} | {rate} | {sys} | {num(r["produce_msgs_per_sec"])} |'
              f' {num(r["produce_mb_per_sec"], 1)} | {us(pl.get("p50"))} | {us(pl.get("p99"))} |'
              f' {us(pl.get("p99_9"))} | {us(pl.get("max"))} | {us(el.get("p50"))} | {us(el.get("p99"))} |'
              f' {us(el.get("p99_9"))} | {errs} | {cons} | {x} |')
    if broken:
        w("")
        w("Runs with errors or unconsumed messages (their figures are not comparable and no"
          " ratio or target is computed from them):")
        w("")
        for name, sys, err in broken:
            w(f"- `{name}` on {sys}: {err}")
    w("")
    w("Sluice against the machine (MB/s of payload ÷ fio with the same durability —"
      " fdatasync-per-MiB for flush=always, buffered otherwise — and ÷ iperf3 loopback),"
      " with the broker's own Produce request latency, fsync and time-queued from `/metrics`"
      " at the end of the run (a broker per scenario, so these cover that scenario only):")
    w("")
    w("| scenario | Sluice MB/s | ÷ fio | ÷ iperf3 | broker Produce p50 | Produce p99 | fsync p50 | fsync p99 | queued p99 |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for s in scen:
        r = res.get((s["name"], "sluice"))
        if r is None:
            continue
        fio = fio_sync if s["flush"] == "always" else fio_buf
        f50 = broker_metric(run, s["name"], "sluice_fsync_latency_seconds", "0.5")
        f99 = broker_metric(run, s["name"], "sluice_fsync_latency_seconds", "0.99")
        q99 = broker_metric(run, s["name"], "sluice_request_queued_seconds", "0.99")
        mb = r["produce_mb_per_sec"]

        def sec(v):
            return us(v * 1e6) if v else "-"
        w(f'| {s["name"]} | {num(mb, 1)} | {num(ratio(mb, fio), 3)} | {num(ratio(mb, net), 3)} |'
          f' {sec(produce_q(run, s["name"], "0.5"))} | {sec(produce_q(run, s["name"], "0.99"))} |'
          f' {sec(f50)} | {sec(f99)} | {us(q99 * 1e6) if q99 is not None else "-"} |')
    w("")
    w("Targets:")
    w("")
    p1k = [(s, summary["scenarios"].get(s["name"])) for s in scen
           if s["size"] == "1024" and s["consumers"] == "0" and s["name"] in summary["scenarios"]]
    for s, rr in p1k:
        verdict = "met" if rr is not None and rr >= 3 else "**missed**"
        w(f'- 1 KiB produce ≥ 3× Redis XADD, same durability — `{s["name"]}` (acks={s["acks"]},'
          f' flush={s["flush"]}, {s["producers"]} producer(s)): {num(rr, 2)}× — {verdict}')
    half = res.get(("never-half", "sluice"))
    if half and not clean(half):
        w("- end-to-end at half the maximum throughput: the `never-half` run had errors")
    elif half and half.get("e2e_latency_us"):
        e = half["e2e_latency_us"]
        ok99 = e["p99"] is not None and e["p99"] <= 2000
        ok999 = e["p99_9"] is not None and e["p99_9"] <= 5000
        w(f'- end-to-end at half the maximum throughput, flush=never (`never-half`,'
          f' {half["config"]["rate"]:.0f} msg/s): p99 {us(e["p99"])} (≤ 2 ms: {"met" if ok99 else "**missed**"}),'
          f' p99.9 {us(e["p99_9"])} (≤ 5 ms: {"met" if ok999 else "**missed**"});'
          f' the broker\'s own Produce p99 in that run: {us((produce_q(run, "never-half", "0.99") or 0) * 1e6)}')
        summary["half"] = {"p99": e["p99"], "p99_9": e["p99_9"]}
    else:
        w("- end-to-end at half the maximum throughput: no `never-half` result in this run")
    return "\n".join(lines), summary


def plot(run: Path, mode: str, outdir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["svg.hashsalt"] = "sluice"  # stable SVG ids: plots diff cleanly
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FixedLocator, NullLocator

    res = load(run)
    scen = [s for s in scenarios() if any((s["name"], sys) in res for sys in SYSTEMS)]
    outdir.mkdir(parents=True, exist_ok=True)
    made = []
    # Throughput bars.
    fig, ax = plt.subplots(figsize=(max(6, 0.9 * len(scen)), 4.5))
    width = 0.38
    for i, sys in enumerate(["sluice", "redis"]):
        xs = [j + (i - 0.5) * width for j in range(len(scen))]
        ys = [res.get((s["name"], sys), {}).get("produce_msgs_per_sec", 0) for s in scen]
        ax.bar(xs, ys, width, label=sys)
    ax.set_xticks(range(len(scen)))
    ax.set_xticklabels([s["name"] for s in scen], rotation=40, ha="right", fontsize=8)
    ax.set_yscale("log")
    ax.set_ylabel("produced msg/s (acknowledged)")
    ax.set_title(f"Throughput per scenario ({mode} run)")
    ax.legend()
    fig.tight_layout()
    p = outdir / f"{mode}-throughput.svg"
    fig.savefig(p, metadata={"Date": None})
    plt.close(fig)
    made.append(p)
    # Latency percentile curves, x = 1 / (1 - percentile) on a log axis.
    ticks = [50, 90, 99, 99.9, 99.99, 99.999]
    for s in scen:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        drawn = False
        for sys, colour in [("sluice", "C0"), ("redis", "C1"), ("tansu", "C2")]:
            r = res.get((s["name"], sys))
            if not r or "curves" not in r:
                continue
            for kind, style in [("produce_latency_us", "-"), ("e2e_latency_us", "--")]:
                pts = [(p, v) for p, v in r["curves"].get(kind, []) if p < 100]
                if not pts:
                    continue
                xs = [1 / (1 - p / 100) for p, _ in pts]
                ys = [v / 1000 for _, v in pts]
                label = f'{sys} {"produce-ack" if kind.startswith("produce") else "end-to-end"}'
                ax.plot(xs, ys, style, color=colour, label=label)
                drawn = True
        if not drawn:
            plt.close(fig)
            continue
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(FixedLocator([1 / (1 - t / 100) for t in ticks]))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xticklabels([f"{t}%" for t in ticks])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms)")
        ax.set_title(f'{s["name"]}: {s["size"]} B, acks={s["acks"]}, flush={s["flush"]}, '
                     f'{s["producers"]}p/{s["consumers"]}c, {s["partitions"]} partitions', fontsize=9)
        ax.grid(True, which="major", alpha=0.3)
        ax.legend(fontsize=8)
        fig.tight_layout()
        p = outdir / f'{mode}-latency-{s["name"]}.svg'
        fig.savefig(p, metadata={"Date": None})
        plt.close(fig)
        made.append(p)
    return made


def update_results(path: Path, mode: str, body: str) -> None:
    begin, end = f"<!-- bench.sh:{mode}:begin -->", f"<!-- bench.sh:{mode}:end -->"
    title = {"quick": "Broker scenarios, quick run (`scripts/bench.sh --quick`)",
             "full": "Broker scenarios, full run (`scripts/bench.sh`)"}[mode]
    section = f"{begin}\n## {title}\n\n{body}\n{end}"
    text = path.read_text() if path.exists() else "# Measured results\n"
    if begin in text and end in text:
        text = re.sub(re.escape(begin) + ".*?" + re.escape(end), lambda _: section, text, flags=re.S)
    else:
        anchor = "<!-- bench.sh:sections -->"
        if anchor in text:
            text = text.replace(anchor, f"{anchor}\n\n{section}\n", 1)
        else:
            text = text.rstrip() + f"\n\n{section}\n"
    path.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", type=Path)
    ap.add_argument("--mode", choices=["quick", "full"], required=True)
    ap.add_argument("--results", type=Path)
    ap.add_argument("--plot", type=Path)
    a = ap.parse_args()
    run = a.run.resolve()
    body, _ = build(run, a.mode)
    if a.plot:
        made = plot(run, a.mode, a.plot.resolve())
        rel = [p.relative_to(a.results.resolve().parent) if a.results else p for p in made]
        body += "\n\nPlots: " + ", ".join(f"[{p.stem}]({p})" for p in rel)
        body += "\n\n![throughput](" + str(rel[0]) + ")" if rel else ""
    print(body)
    if a.results:
        update_results(a.results, a.mode, body)
        print(f"\n(section written to {a.results})")


if __name__ == "__main__":
    main()
