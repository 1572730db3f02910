#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""bench/report.py RESULTS_DIR: turns the raw/ output of bench/run.sh into results.json (every
figure, the targets and whether each is met), results.md (the tables) and plots (gnuplot, SVG
and PNG). Standard library only."""
import json
import os
import shutil
import subprocess
import sys
import time

out = sys.argv[1]
raw = os.path.join(out, "raw")


def load(name):
    p = os.path.join(raw, name)
    if not os.path.exists(p):
        return None
    try:
        with open(p) as f:
            return json.load(f)
    except ValueError:
        return None


meta = load("meta.json") or {}
R = {"meta": meta}
md = []
targets = []


def fmt(v, d=1):
    if v is None or (isinstance(v, (int, float)) and v < 0):
        return "—"
    if isinstance(v, float) and abs(v) >= 1e6:
        return f"{v / 1e6:.2f}M"
    if isinstance(v, float) and abs(v) >= 1e4:
        return f"{v / 1e3:.0f}K"
    return f"{v:.{d}f}"


def clients(doc, view=None):
    """{(view, client): client dict} of a bench_stream JSON."""
    res = {}
    if not doc:
        return res
    for v in doc["views"]:
        for c in v["clients"]:
            res[(v["view"], c["client"])] = c
    return res


def med(c, key):
    if c is None or c.get("failed") or not c.get("runs"):
        return None
    return c["median"].get(key)


def ratio(a, b):
    if a is None or b is None or a < 0 or b <= 0:
        return None
    return a / b


def target(name, value, op, bar, where, note=""):
    ok = None if value is None else (value <= bar if op == "<=" else value >= bar)
    targets.append({"target": name, "measured": value, "op": op, "bar": bar, "met": ok,
                    "where": where, "note": note})


def stream_table(doc, title, cols):
    cs = clients(doc)
    if not cs:
        return
    md.append(f"### {title}\n")
    md.append("| view | client | " + " | ".join(h for h, _ in cols) + " |")
    md.append("|---|---|" + "---|" * len(cols))
    for v in doc["views"]:
        for c in v["clients"]:
            if c.get("failed"):
                md.append(f"| {v['view']} | {c['client']} | FAILED: {c.get('why', '')} |")
                continue
            row = [f(v["view"], c) for _, f in cols]
            mm = " (COUNT MISMATCH)" if c.get("count_mismatch") else ""
            md.append(f"| {v['view']} | {c['client']}{mm} | " + " | ".join(row) + " |")
    md.append("")


def ref(doc, view, kind):
    for c in next((v["clients"] for v in doc["views"] if v["view"] == view), []):
        if c["client"] == kind:
            return c
    return None


def col_ratio(doc, key, refkind, d=2):
    def f(view, c):
        r = ref(doc, view, refkind)
        if r is None or r is c:
            return ""
        x = ratio(med(c, key), med(r, key))
        return "" if x is None else f"{x:.{d}f}"
    return f


def col(key, d=1):
    return lambda view, c: fmt(med(c, key), d)


def col_wall(view, c):
    if med(c, "wall_ms") is None:
        return "—"
    return f"{c['median']['wall_ms']:.1f} [{c['wall_ms_min']:.1f}, {c['wall_ms_max']:.1f}]"


def col_first(view, c):
    return "—" if c["kind"] == "fwire-cli" else fmt(med(c, "first_row_ms"), 2)


# ---- header ------------------------------------------------------------------------------------
m = meta.get("machine", {})
when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta.get("started", time.time())))
md.append(f"# fwire benchmark results ({meta.get('mode', '?')} mode)\n")
md.append(f"- date: {when}; took {meta.get('ended', 0) - meta.get('started', 0)} s")
md.append(f"- command: `{meta.get('command', 'bench/run.sh')}` (counted runs per case: "
          f"{meta.get('runs', '?')}, after one warm-up round, interleaved; medians [min, max])")
md.append(f"- machine: {m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('mem_gib', '?')} GiB, "
          f"{m.get('os', '?')}, kernel {m.get('kernel', '?')}")
md.append(f"- build: {m.get('cc', '?')}, buildtype {m.get('buildtype', '?')}, commit {m.get('commit', '?')}")
md.append(f"- server: `{meta.get('dsn', '?')}`")
if meta.get("sections_failed"):
    md.append(f"- **sections that failed: {', '.join(meta['sections_failed'])}**")
md.append("")

# ---- stream (real server) ----------------------------------------------------------------------
stream = load("stream.json")
R["stream"] = stream
replay_docs = {}
for fn in sorted(os.listdir(raw)) if os.path.isdir(raw) else []:
    if fn.startswith("replay-") and fn.endswith(".json"):
        replay_docs[fn[len("replay-"):-len(".json")]] = load(fn)
R["replay"] = replay_docs

main_cols = [("rows/s", col("rows_per_s")), ("MB/s", col("mb_per_s")),
             ("CPU ns/row", col("cpu_ns_per_row", 0)), ("query CPU ns/row", col("query_cpu_ns_per_row", 0)),
             ("first row ms", col_first), ("peak RSS MiB", col("peak_rss_mib")),
             ("wall ms [min, max]", col_wall)]
body_stream = []
if stream:
    cols = main_cols + [("wall/null", col_ratio(stream, "wall_ms", "null")),
                        ("query/null", col_ratio(stream, "query_ms", "null")),
                        ("CPU/row ÷ null", col_ratio(stream, "cpu_ns_per_row", "null")),
                        ("CPU/row ÷ libpq-single", col_ratio(stream, "cpu_ns_per_row", "libpq-single")),
                        ("first row ÷ libpq-single", col_ratio(stream, "first_row_ms", "libpq-single"))]
    stream_table(stream, "Streaming, real server: every client side by side", cols)
    md.append("rows/s, MB/s: from sending the query to the last row (fwire-cli: whole process). CPU "
              "ns/row: the whole process (user+sys from wait4, connect and start-up included); query "
              "CPU: the query window. Peak RSS: ru_maxrss of the client process.\n")
for v, doc in replay_docs.items():
    if doc:
        cols = main_cols + [("rows/s ÷ null", col_ratio(doc, "rows_per_s", "null")),
                            ("rows/s ÷ libpq-single", col_ratio(doc, "rows_per_s", "libpq-single")),
                            ("CPU/row ÷ libpq-single", col_ratio(doc, "cpu_ns_per_row", "libpq-single"))]
        stream_table(doc, f"Replay server (bench/replay), {v}: client costs without the server's", cols)

# ---- targets -----------------------------------------------------------------------------------
cs = clients(stream)
views = [v["view"] for v in stream["views"]] if stream else []
big_views = [v for v in views if v in ("v_bench_1m", "v_bench_large")] or \
    [v for v in views if v == "v_bench_100k"]
for v in big_views:
    for k in ("fwire-embedded", "fwire-threaded", "fwire-cli"):
        c, n, p = cs.get((v, k)), cs.get((v, "null")), cs.get((v, "libpq-single"))
        target(f"wall time ÷ null client, {k}", ratio(med(c, "wall_ms"), med(n, "wall_ms")), "<=", 1.02, v)
        target(f"CPU per row ÷ libpq single-row, {k}",
               ratio(med(c, "cpu_ns_per_row"), med(p, "cpu_ns_per_row")), "<=",
               0.6 if k == "fwire-embedded" else 0.75, v)
        # issue 18: embedded at most the null client's CPU, threaded and the command 1.15x
        target(f"CPU per row ÷ null client, {k}",
               ratio(med(c, "cpu_ns_per_row"), med(n, "cpu_ns_per_row")), "<=",
               1.0 if k == "fwire-embedded" else 1.15, v)
# First row: from the firstrow section (more runs: bench/run.sh) where it has the view.
fr_cs = clients(load("firstrow.json") or {})
for v in views:
    for k in ("fwire-embedded", "fwire-threaded"):
        src = fr_cs if (v, k) in fr_cs and (v, "libpq-single") in fr_cs else cs
        c, p = src.get((v, k)), src.get((v, "libpq-single"))
        target(f"first row ÷ libpq single-row, {k}",
               ratio(med(c, "first_row_ms"), med(p, "first_row_ms")), "<=", 1.10,
               v + (" (firstrow section)" if src is fr_cs else ""))
for v, doc in replay_docs.items():
    rc = clients(doc)
    for k in ("fwire-embedded", "fwire-threaded"):
        c, n, p = rc.get((v, k)), rc.get((v, "null")), rc.get((v, "libpq-single"))
        target(f"replay rows/s ÷ libpq single-row, {k}", ratio(med(c, "rows_per_s"), med(p, "rows_per_s")),
               ">=", 2.0, v + " (replay)")
        target(f"replay rows/s ÷ null client, {k}", ratio(med(c, "rows_per_s"), med(n, "rows_per_s")),
               ">=", 0.8, v + " (replay)")

# peak RSS: default budget, every size (stream + stability)
stab = load("stability.json")
R["stability"] = stab
rss_by_rows = {}
for doc in (stream, stab):
    for (v, k), c in clients(doc).items():
        if k.startswith("fwire-embedded") or k.startswith("fwire-threaded"):
            if med(c, "peak_rss_mib") is not None and "large" not in v and "complex" not in v:
                rss_by_rows.setdefault(k.split("/")[0], []).append((c["rows"], v, med(c, "peak_rss_mib")))
for k, lst in sorted(rss_by_rows.items()):
    lst.sort()
    peak = max(x[2] for x in lst)
    spread = peak - min(x[2] for x in lst)
    target(f"peak RSS MiB, default budget, {k}", peak, "<=", 8.0,
           ", ".join(f"{x[1]} {x[2]:.1f}" for x in lst))
    target(f"peak RSS flat: ± MiB ((max − min) / 2) from {lst[0][1]} to {lst[-1][1]}, {k}", spread / 2,
           "<=", 1.0, f"{lst[0][0]:,} to {lst[-1][0]:,} rows", f"max − min {spread:.2f} MiB")

# allocations per row
allocs = load("allocs.json")
R["allocs"] = allocs
ac = clients(allocs)
if ac:
    md.append("### fwire's allocations in the query window (fw_allocator_set counting hook)\n")
    md.append("| client | " + " | ".join(v["view"] for v in allocs["views"]) + " | per row (largest − smallest) |")
    md.append("|---|" + "---|" * (len(allocs["views"]) + 1))
    for k in sorted({k for (_, k) in ac}):
        row = []
        pts = []
        for v in allocs["views"]:
            c = ac.get((v["view"], k))
            a = med(c, "allocs")
            row.append(fmt(a, 0))
            if a is not None:
                pts.append((c["rows"], a))
        per = None
        if len(pts) >= 2:
            pts.sort()
            per = (pts[-1][1] - pts[0][1]) / (pts[-1][0] - pts[0][0])
        md.append(f"| {k} | " + " | ".join(row) + f" | {fmt(per, 6)} |")
        target(f"allocations per row, {k.split('/')[0]}", per, "<=", 0.001,
               f"{pts[0][0]:,} to {pts[-1][0]:,} rows" if len(pts) >= 2 else "",
               "slope of the count: pools grow a few times, never per row")
    md.append("")

# metrics overhead
met = load("metrics.json")
R["metrics"] = met
mc = clients(met)
if met:
    v = met["views"][0]["view"]
    stream_table(met, f"Metrics on against off ({v})", [
        ("CPU ns/row", col("cpu_ns_per_row", 1)), ("query CPU ns/row", col("query_cpu_ns_per_row", 1)),
        ("rows/s", col("rows_per_s")), ("wall ms [min, max]", col_wall)])
    for k in ("fwire-embedded", "fwire-threaded"):
        on, off = mc.get((v, k)), mc.get((v, k + "/metrics=0"))
        r = ratio(med(on, "query_cpu_ns_per_row"), med(off, "query_cpu_ns_per_row"))
        R.setdefault("metrics_cpu_ratio", {})[k] = r  # informative: CPU time is too noisy for 1 %
cg = {}
p = os.path.join(raw, "callgrind.tsv")
if os.path.exists(p):
    with open(p) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) == 3 and parts[2].isdigit() and int(parts[2]) > 0:
                cg.setdefault(parts[0], {}).setdefault(parts[1], []).append(int(parts[2]))
view_rows = {"v_bench_1k": 1000, "v_bench_100k": 100000, "v_bench_1m": 1000000}
cg_rows = []
for spec, byv in cg.items():
    vs = sorted((v for v in byv if v in view_rows), key=lambda v: view_rows[v])
    if len(vs) < 2:
        continue
    lo, hi = vs[0], vs[-1]
    mlo = sorted(byv[lo])[len(byv[lo]) // 2]
    mhi = sorted(byv[hi])[len(byv[hi]) // 2]
    per = (mhi - mlo) / (view_rows[hi] - view_rows[lo])
    cg_rows.append({"client": spec, "small": lo, "big": hi, "instructions_small": mlo,
                    "instructions_big": mhi, "spread_big": (max(byv[hi]) - min(byv[hi])) / mhi,
                    "per_row": per, "fixed": mlo - per * view_rows[lo]})
R["callgrind"] = cg_rows
if cg_rows:
    byc = {x["client"]: x["per_row"] for x in cg_rows}
    x0 = cg_rows[0]
    md.append(f"### Instructions per row (callgrind, whole client process, slope between {x0['small']} "
              f"and {x0['big']}; medians of {len(cg[x0['client']][x0['big']])} runs)\n")
    md.append("| client | instructions per row | fixed (start, load, connect) | spread of the big runs | ÷ libpq-single |")
    md.append("|---|---|---|---|---|")
    for x in cg_rows:
        r = ratio(x["per_row"], byc.get("libpq-single"))
        md.append(f"| {x['client']} | {x['per_row']:.1f} | {x['fixed'] / 1e6:.1f}M | {100 * x['spread_big']:.2f}% | "
                  f"{'' if r is None or x['client'] == 'libpq-single' else f'{r:.2f}'} |")
    md.append("")
    for k in ("fwire-embedded", "fwire-threaded"):
        if k in byc and k + "/metrics=0" in byc:
            target(f"metrics overhead, instructions per row (on ÷ off − 1), {k}",
                   byc[k] / byc[k + "/metrics=0"] - 1, "<=", 0.01, x0["big"] + " (callgrind)")
        if k in byc and "libpq-single" in byc:
            target(f"instructions per row ÷ libpq single-row, {k}", byc[k] / byc["libpq-single"], "<=", 0.75,
                   x0["big"] + " (callgrind)")

# perf stat: user and kernel instructions per row (slopes between the two views), medians
ps = {}
p = os.path.join(raw, "perfstat.tsv")
if os.path.exists(p):
    with open(p) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 4:
                continue
            kv = dict(x.split("=", 1) for x in parts[3].split() if "=" in x)
            try:
                vals = {k: float(v) for k, v in kv.items()}
            except ValueError:
                continue
            ps.setdefault(parts[0], {}).setdefault(parts[1], []).append(vals)
ps_rows = []
for spec, byv in ps.items():
    vs = sorted((v for v in byv if v in view_rows), key=lambda v: view_rows[v])
    if len(vs) < 2:
        continue
    lo, hi = vs[0], vs[-1]
    n = view_rows[hi] - view_rows[lo]

    def m_(v, key):
        xs = sorted(x.get(key, 0) for x in byv[v])
        return xs[len(xs) // 2]
    row = {"client": spec, "small": lo, "big": hi, "runs": len(byv[hi])}
    for key, name in (("instructions:u", "user_instructions_per_row"),
                      ("instructions:k", "kernel_instructions_per_row"),
                      ("context-switches", "context_switches_per_1k_rows"),
                      ("task-clock", "cpu_ns_per_row")):
        d = (m_(hi, key) - m_(lo, key)) / n
        row[name] = d * 1000 if key == "context-switches" else (d * 1e6 if key == "task-clock" else d)
    ps_rows.append(row)
R["perfstat"] = ps_rows
if ps_rows:
    x0 = ps_rows[0]
    md.append(f"### Hardware counters per row (perf stat, slope between {x0['small']} and {x0['big']}, "
              f"medians of {x0['runs']} interleaved runs)\n")
    md.append("| client | user instructions | kernel instructions | total | ÷ libpq-single (total) | "
              "context switches per 1K rows |")
    md.append("|---|---|---|---|---|---|")
    tot = {x["client"]: x["user_instructions_per_row"] + x["kernel_instructions_per_row"] for x in ps_rows}
    for x in ps_rows:
        r = ratio(tot[x["client"]], tot.get("libpq-single"))
        md.append(f"| {x['client']} | {x['user_instructions_per_row']:.0f} | {x['kernel_instructions_per_row']:.0f} | "
                  f"{tot[x['client']]:.0f} | {'' if r is None or x['client'] == 'libpq-single' else f'{r:.2f}'} | "
                  f"{x['context_switches_per_1k_rows']:.2f} |")
    md.append("Kernel instructions cost more time each than user ones (copies, cache misses): CPU time "
              "ratios are in the streaming table. perf's task-clock is not used: with the PMU "
              "virtualised, every context switch of a counted process costs extra, inflating it.\n")
    md.append("")
    for k in ("fwire-embedded", "fwire-threaded"):
        if k in tot and k + "/metrics=0" in tot:
            target(f"metrics overhead, user+kernel instructions per row (on ÷ off − 1), {k}",
                   tot[k] / tot[k + "/metrics=0"] - 1, "<=", 0.01, x0["big"] + " (perf stat)")
        if k in tot and "libpq-single" in tot:
            target(f"user+kernel instructions per row ÷ libpq single-row, {k}", tot[k] / tot["libpq-single"],
                   "<=", 0.75, x0["big"] + " (perf stat)")

# ---- system calls per MB (run.sh syscalls section) ----------------------------------------------
sc = {}
p = os.path.join(raw, "syscalls.tsv")
if os.path.exists(p):
    with open(p) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) < 5:
                continue
            kv = dict(x.split("=", 1) for x in parts[4].split() if "=" in x)
            try:
                b = float(parts[3])
                vals = {k: float(v) for k, v in kv.items() if k != "how"}
            except ValueError:
                continue
            if b <= 0:
                continue
            vals["epoll"] = vals.get("epoll_wait", 0) + vals.get("epoll_pwait", 0)
            sc.setdefault((parts[0], parts[1]), []).append(
                ({k: x / (b / 1e6) for k, x in vals.items()}, kv.get("how", "?")))
sc_rows = []
for (spec, v), xs in sc.items():
    def mid(key):
        ys = sorted(x.get(key, 0) for x, _ in xs)
        return ys[len(ys) // 2]
    sc_rows.append({"client": spec, "view": v, "runs": len(xs), "how": xs[0][1],
                    **{f"{k}_per_mb": mid(k) for k in ("total", "recvfrom", "read", "epoll",
                                                        "epoll_ctl", "futex", "write")}})
R["syscalls"] = sc_rows
if sc_rows:
    x0 = sc_rows[0]
    null_total = next((x["total_per_mb"] for x in sc_rows if x["client"] == "null"), None)
    md.append(f"### System calls per MB of JSON ({x0['view']}, whole process, "
              f"{'perf stat raw_syscalls' if x0['how'] == 'perf' else 'strace -c -f'}, "
              f"medians of {x0['runs']} interleaved runs)\n")
    md.append("| client | all | ÷ null | recvfrom | read | epoll_wait | epoll_ctl | futex | write |")
    md.append("|---|---|---|---|---|---|---|---|---|")
    for x in sc_rows:
        r = ratio(x["total_per_mb"], null_total)
        md.append(f"| {x['client']} | {x['total_per_mb']:.1f} | "
                  f"{'' if r is None or x['client'] == 'null' else f'{r:.2f}'} | "
                  + " | ".join(f"{x[k + '_per_mb']:.1f}" for k in ("recvfrom", "read", "epoll", "epoll_ctl",
                                                                   "futex", "write")) + " |")
    md.append("The null client blocks in read(); an event loop adds epoll_wait (and a threaded consumer "
              "futex) per wake-up, which fwire coalesces while the server sends fast (issue 18). On a "
              "loaded machine the null client's reads grow larger (it is woken less often), so compare "
              "within one run.\n")

fr = load("firstrow.json")
R["firstrow"] = fr
if fr:
    stream_table(fr, "Time to first row, with libpq on the extended protocol too", [
        ("first row ms", col_first), ("÷ libpq-single", col_ratio(fr, "first_row_ms", "libpq-single")),
        ("÷ libpq-single/ext", col_ratio(fr, "first_row_ms", "libpq-single/ext")),
        ("p25 ms", lambda v, c: f"{c['first_row_ms_pct']['p25']:.2f}" if "first_row_ms_pct" in c else ""),
        ("p90 ms", lambda v, c: f"{c['first_row_ms_pct']['p90']:.2f}" if "first_row_ms_pct" in c else "")])
    md.append("libpq-single/ext: PQsendQueryParams (Parse/Bind/Describe/Execute/Sync, as fwire "
              "for any query with more than its source) instead of the simple query, which "
              "fwire uses for these plain queries. Each run ended at its first row "
              "(bench_stream --first-row), 10 ms after the last (--gap 10).\n")
frd = load("firstrow-drip.json")
R["firstrow_drip"] = frd
if frd:
    stream_table(frd, "A slow producer: v_fixture_drip, 40 rows of 12 KiB made 25 ms apart", [
        ("first row ms", col_first), ("÷ libpq-single", col_ratio(frd, "first_row_ms", "libpq-single")),
        ("query ms", col("query_ms", 1)), ("query ÷ libpq-single", col_ratio(frd, "query_ms", "libpq-single")),
        ("query CPU ns/row", col("query_cpu_ns_per_row", 0))])
    for (v, k), c in clients(frd).items():
        if k in ("fwire-embedded", "fwire-threaded"):
            p_ = ref(frd, v, "libpq-single")
            target(f"first row ÷ libpq single-row (slow producer), {k}",
                   ratio(med(c, "first_row_ms"), med(p_, "first_row_ms")), "<=", 1.10, v)

# ---- chunking, rss, predicate ------------------------------------------------------------------
chunk = load("chunking.json")
R["chunking"] = chunk
if chunk:
    stream_table(chunk, "Fixed against adaptive chunks, fast and slow consumer (threaded mode)", [
        ("rows/s", col("rows_per_s")), ("first row ms", col_first), ("CPU ns/row", col("cpu_ns_per_row", 0)),
        ("peak RSS MiB", col("peak_rss_mib")), ("wall ms [min, max]", col_wall)])
    md.append("slow=N: the consumer spins N ns on every row (a consumer slower than the server).\n")
rssd = load("rss.json")
R["rss"] = rssd
if rssd:
    stream_table(rssd, "Peak RSS against the byte budget and the chunk size (slow consumer)", [
        ("peak RSS MiB", col("peak_rss_mib", 2)), ("rows/s", col("rows_per_s")),
        ("first row ms", col_first), ("wall ms [min, max]", col_wall)])
pred = load("predicate.json")
R["predicate"] = pred
if pred:
    def col_rows(view, c):
        return f"{c['rows']:,}"
    stream_table(pred, "SQL where (server) against a client-side predicate (fw_query_predicate)", [
        ("rows delivered", col_rows), ("wire MB", col("wire_mb", 2)), ("query ms", col("query_ms", 1)),
        ("CPU ms (whole process)", col("cpu_ms", 1)), ("first row ms", col_first)])
    md.append("where=K / pred=K keep the rows whose \"bucket\" (id % 10) is below K: 10, 50, 90 %.\n")

# ---- parallel streams --------------------------------------------------------------------------
par = load("parallel.json")
R["parallel"] = par
if par:
    def round_ratio(view, c, refkind):
        """Median over rounds of one connection's query time ÷ this client's (a speed-up)."""
        r = ref(par, view, refkind)
        if r is None or r is c or c.get("failed") or r.get("failed"):
            return None
        xs = sorted(a["query_ns"] / b["query_ns"] for a, b in zip(r["runs"], c["runs"])
                    if b["query_ns"] > 0)
        return xs[len(xs) // 2] if xs else None

    def col_speed(refkind):
        def f(view, c):
            x = round_ratio(view, c, refkind)
            return "" if x is None else f"{x:.2f}"
        return f
    stream_table(par, "Parallel streams: one connection against N parts (fw_query_parallel)", [
        ("rows/s", col("rows_per_s")), ("query ms", col("query_ms", 1)),
        ("speed-up vs one fresh connection (per-round median)", col_speed("fwire-threaded")),
        ("speed-up vs one warm pooled connection", col_speed("fwire-threaded/pool")),
        ("client CPU ns/row (query)", col("query_cpu_ns_per_row", 0)),
        ("peak RSS MiB", col("peak_rss_mib", 2))])
    md.append("/par=N: N parts on fresh connections (ctid ranges of the table); /pool: the stream "
              "runs once untimed on a pool, then the timed run on the same (warm) backends.\n")
    for v in par["views"]:
        view = v["view"]
        for c in v["clients"]:
            k = c["client"]
            if k == "fwire-threaded/par=2":
                target("parallel N = 2, rows/s ÷ one fresh connection", round_ratio(view, c, "fwire-threaded"),
                       ">=", 1.5, view)
            if k == "fwire-threaded/pool/par=2":
                target("parallel N = 2 from a pool, rows/s ÷ one warm pooled connection",
                       round_ratio(view, c, "fwire-threaded/pool"), ">=", 1.5, view)
                one = ref(par, view, "fwire-threaded/pool")
                target("parallel N = 2 from a pool, client CPU per row ÷ one warm connection's",
                       ratio(med(c, "query_cpu_ns_per_row"), med(one, "query_cpu_ns_per_row")),
                       "<=", 1.0, view)

# ---- stability ---------------------------------------------------------------------------------
stab_rows = []
if stab:
    md.append("### Stability: RSS over a long stream\n")
    md.append("| view | client | rows | query s | peak RSS MiB | VmRSS after the first second, min–max MiB, each run |")
    md.append("|---|---|---|---|---|---|")
    for (v, k), c in clients(stab).items():
        ranges = []
        for r in c.get("runs", []):
            kib = [s_[1] for s_ in r.get("rss_ms_kib", []) if s_[0] >= 1000]
            if kib:
                ranges.append((min(kib) / 1024, max(kib) / 1024))
        rng = "—" if not ranges else "; ".join(f"{a:.2f}–{b:.2f}" for a, b in ranges)
        md.append(f"| {v} | {k} | {c['rows']:,} | {fmt((med(c, 'query_ms') or 0) / 1000, 1)} | "
                  f"{fmt(med(c, 'peak_rss_mib'), 2)} | {rng} |")
        if ranges:
            worst = max(b - a for a, b in ranges)
            target(f"RSS flat over a run: ± MiB ((max − min) / 2 after 1 s, worst run), {k.split('/')[0]}",
                   worst / 2, "<=", 1.0, v, f"max − min {worst:.2f} MiB")
            stab_rows.append((k, c))
    md.append("")

# ---- micro, decode, connect --------------------------------------------------------------------
micro = load("micro.json")
R["micro"] = micro
if micro:
    md.append("### Micro benchmarks\n")
    md.append("| case | unit | median | min | max | what |\n|---|---|---|---|---|---|")
    for c in micro["cases"]:
        md.append(f"| {c['name']} | {c['unit']} | {c['median']:,.1f} | {c['min']:,.1f} | {c['max']:,.1f} | {c['what']} |"
                  if c['median'] >= 100 else
                  f"| {c['name']} | {c['unit']} | {c['median']:.2f} | {c['min']:.2f} | {c['max']:.2f} | {c['what']} |")
    md.append("")
dec = load("decode.json")
R["decode"] = dec
if dec:
    md.append(f"### Decoder ({dec['input']} stream, {dec['messages']:,} messages, {dec['bytes'] / 1e6:.1f} MB)\n")
    md.append("| path | MB/s median [min, max] | ns/message |\n|---|---|---|")
    for pth in dec["paths"]:
        mb = pth["mb_per_s"]
        md.append(f"| {pth['path']} | {mb['median']:,.0f} [{mb['min']:,.0f}, {mb['max']:,.0f}] | {pth['ns_per_message']:.2f} |")
    md.append("")
con = load("connect.json")
R["connect"] = con
if con:
    md.append(f"### Connect time ({con.get('count', '?')} connects per case and client, interleaved)\n")
    md.append("| case | client | median ms | p10 | p90 | min | CPU ms/connect | fwire ÷ libpq |\n|---|---|---|---|---|---|---|---|")
    for c in con["cases"]:
        for k in ("fwire", "libpq"):
            if k in c:
                s = c[k]
                rr = f"{c.get('ratio_median', 0):.2f}" if k == "libpq" else ""
                md.append(f"| {c['case']} | {k} | {s['median_ms']:.3f} | {s['p10_ms']:.3f} | {s['p90_ms']:.3f} | "
                          f"{s['min_ms']:.3f} | {s['cpu_ms_per_connect']:.3f} | {rr} |")
    md.append("")
rt = load("routing.json")
R["routing"] = rt
if rt:
    md.append(f"### Connect time with routing ({rt.get('count', '?')} connects per case and client, "
              "target_session_attrs=read-write, every round over every case)\n")
    md.append("| case | client | median ms | p10 | p90 | min | max | CPU ms/connect | fwire ÷ libpq |\n"
              "|---|---|---|---|---|---|---|---|---|")
    byname = {c["case"]: c for c in rt["cases"]}
    for c in rt["cases"]:
        for k in ("fwire", "libpq"):
            if k in c:
                s = c[k]
                rr = f"{c.get('ratio_median', 0):.2f}" if k == "libpq" else ""
                md.append(f"| {c['case']} | {k} | {s['median_ms']:.3f} | {s['p10_ms']:.3f} | {s['p90_ms']:.3f} | "
                          f"{s['min_ms']:.3f} | {s.get('max_ms', 0):.3f} | {s['cpu_ms_per_connect']:.3f} | {rr} |")
    md.append("")
    extra = [(c, byname[c["baseline"]]) for c in rt["cases"] if c.get("baseline") in byname]
    if extra:
        md.append("The two standbys' cost (routed − primary, medians):\n")
        md.append("| cases | fwire ms | libpq ms |\n|---|---|---|")
        for c, b in extra:
            cell = [f"{c[k]['median_ms'] - b[k]['median_ms']:.3f}" if k in c and k in b else "—"
                    for k in ("fwire", "libpq")]
            md.append(f"| {c['case']} − {b['case']} | {cell[0]} | {cell[1]} |")
        md.append("")
        port = rt["cases"][0].get("landed_port")
        if port:
            md.append(f"Every connect of both clients landed on node 0 (port {port}, the primary).\n")

pl = load("pool.json")
R["pool"] = pl
if pl:
    md.append(f"### Connection pool ({pl.get('requests', '?')} requests per pool case and round, "
              f"connect cases a tenth; {pl.get('runs', '?')} rounds, medians)\n")
    md.append("| case | requests/s | min | max | acquire wait p50 ms | p99 ms |\n|---|---|---|---|---|---|")
    for c in pl["cases"]:
        md.append(f"| {c['case']} | {c['rps_median']:.0f} | {c['rps_min']:.0f} | {c['rps_max']:.0f} | "
                  f"{c['wait_p50_ms']:.3f} | {c['wait_p99_ms']:.3f} |")
    md.append("")

pk = load("pool1k.json")
R["pool1k"] = pk
if pk and pk.get("runs"):
    md.append("### 1,000 streams over a pool of 100 on one loop (test_lib_pool_1k_live, each run)\n")
    md.append("| run | mode | streams | wall s | loop stall p99 ms | max ms | ticks over 20 ms | "
              "RSS growth MiB (bound) |\n|---|---|---|---|---|---|---|---|")
    for r in pk["runs"]:
        md.append(f"| {r['run']} | {r['mode']} | {r['complete']}/{r['streams']} | {r['wall_s']:.1f} | "
                  f"{r['stall_p99_ms']:.1f} | {r['stall_max_ms']:.1f} | {r['ticks_over_20ms']} | "
                  f"{r['rss_growth_mib']:.1f} ({r['rss_bound_mib']:.0f}) |")
    md.append("")

# ---- targets table first -----------------------------------------------------------------------
tmd = ["## Targets (ratios from one run, side by side)\n",
       "| target | where | measured | bar | met |", "|---|---|---|---|---|"]
for t in targets:
    mv = "—" if t["measured"] is None else f"{t['measured']:.3f}"
    met_s = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
    tmd.append(f"| {t['target']} | {t['where']} | {mv} | {t['op']} {t['bar']} | {met_s} |")
tmd.append("")
head_end = next(i for i, line in enumerate(md) if line == "") + 1
md = md[:head_end] + tmd + ["## Tables\n"] + md[head_end:]
R["targets"] = targets

# ---- plots -------------------------------------------------------------------------------------
plots = []


def gnuplot(name, script, datafiles):
    if shutil.which("gnuplot") is None:
        return
    for term, ext in (("svg size 900,480 dynamic background rgb 'white' font 'sans,11'", "svg"),
                      ("pngcairo size 900,480 font 'sans,10'", "png")):
        full = (f"set terminal {term}\nset termoption noenhanced\n"
                f"set output '{os.path.join(out, name + '.' + ext)}'\n" + script)
        r = subprocess.run(["gnuplot"], input=full, text=True, capture_output=True, cwd=out)
        if r.returncode != 0:
            sys.stderr.write(f"report: gnuplot {name}.{ext}: {r.stderr}\n")
            return
    plots.append(name)


def bars(name, doc, key, ylabel, title, kinds, log=False):
    cs2 = clients(doc)
    vs = [v["view"] for v in doc["views"]]
    dat = os.path.join(raw, name + ".dat")
    with open(dat, "w") as f:
        f.write("view " + " ".join(kinds) + "\n")
        for v in vs:
            vals = [med(cs2.get((v, k)), key) for k in kinds]
            f.write(v.replace("v_bench_", "") + " " + " ".join("NaN" if x is None else f"{x:.4f}" for x in vals) + "\n")
    n = len(kinds)
    gnuplot(name, f"""set title "{title}"
set ylabel "{ylabel}"
set style data histogram
set style histogram cluster gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key outside right top
set grid ytics
{'set logscale y' if log else 'set yrange [0:*]'}
plot for [i=2:{n + 1}] '{dat}' using i:xtic(1) title columnheader(i)
""", [dat])


kinds6 = ["null", "libpq-single", "libpq-exec", "fwire-threaded", "fwire-embedded", "fwire-cli"]
if stream:
    present = [k for k in kinds6 if any(kk == k for (_, kk) in clients(stream))]
    bars("cpu_per_row", stream, "cpu_ns_per_row", "client CPU ns per row (user+sys, whole process)",
         f"Client CPU per row, real server ({when}; log scale)", present, log=True)
    bars("first_row", stream, "first_row_ms", "time to first row, ms",
         f"Time to first row, real server ({when})", [k for k in present if k != "fwire-cli"])
for v, doc in replay_docs.items():
    if doc:
        present = [k for k in kinds6 if any(kk == k for (_, kk) in clients(doc))]
        bars(f"replay_rows_s_{v}", doc, "rows_per_s", "rows/s", f"Replay server, {v}: rows/s", present)
if stab_rows:
    dat = os.path.join(raw, "stability.dat")
    with open(dat, "w") as f:
        for k, c in stab_rows:
            runs = [r for r in c["runs"] if r.get("rss_ms_kib")]
            if not runs:
                continue
            f.write(f'"{k.split("/")[0]}"\n')
            for t, kib in runs[-1]["rss_ms_kib"]:
                f.write(f"{t / 1000:.3f} {kib / 1024:.3f}\n")
            f.write("\n\n")
    v = stab["views"][0]["view"]
    gnuplot("rss_over_time", f"""set title "RSS of the client process while streaming {v} (last run)"
set xlabel "seconds since the process started"
set ylabel "VmRSS, MiB"
set yrange [0:*]
set grid
set key outside right top
plot for [i=0:{len(stab_rows) - 1}] '{dat}' index i using 1:2 with lines lw 2 title columnheader(1)
""", [dat])
R["plots"] = plots

with open(os.path.join(out, "results.json"), "w") as f:
    json.dump(R, f, indent=1)
if plots:
    md.append("### Plots\n")
    for p_ in plots:
        md.append(f"![{p_}]({p_}.svg)")
    md.append("")
with open(os.path.join(out, "results.md"), "w") as f:
    f.write("\n".join(md) + "\n")
missed = [t for t in targets if t["met"] is False]
print(f"report: {len(targets)} targets, {sum(1 for t in targets if t['met'])} met, {len(missed)} missed")
for t in missed:
    print(f"  missed: {t['target']} ({t['where']}): {t['measured']:.3f}, bar {t['op']} {t['bar']}")
