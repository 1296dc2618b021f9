"""Benchmark: bounces through Odoo's mail gateway, vanilla Odoo vs sengerio_mailing.

Two targets:

(a) Gateway throughput. ``--count`` delivery reports (DSNs) go through
    ``mail.thread.message_process``, Odoo's real mail gateway (what fetchmail
    and ``odoo-mailgate.py`` call), on a vanilla database and on a database
    with sengerio_mailing: same data, same sent emails (same Message-Ids),
    same DSN bytes, each DSN in its own transaction as fetchmail runs them.
    Target: throughput with the addon at least 0.9 times vanilla.
(b) Register lookup. Finding the Generated Documents entry a report is about
    (``_sengerio_bounced_entry``: by the Message-Id the report returns) with
    1,000,000 entries costs at most 1.5 times the same lookup with 10,000
    entries, and uses an index.

How (a): the script installs ``sale_management``, ``sale_async_emails``,
``account``, ``purchase`` and ``mass_mailing`` (no demo data) in
``PREFIX_vanilla``, gives it the alias domain ``bench.localhost`` (bounce
address ``bounce@bench.localhost``), creates agents, one customer per
quotation and ``--documents`` quotations, sends each quotation by email
through the Send button's composer as its agent (one PDF rendered once with
wkhtmltopdf and reused) and drains the queue into a local SMTP sink. It then
copies the database as ``PREFIX_sengerio`` and installs sengerio_mailing
there (its post-init backfill registers the quotations already sent).

The DSNs are built once, with a fixed seed, from the sample reports of the
addon's tests (``sengerio_mailing/tests/data/dsn``): Postfix, Exim, Gmail,
Amazon SES and Exchange hard bounces returning the full email the sink
received (its headers only where the sample returns headers), Postfix delay
notices, out-of-office replies, and hard bounces of emails Odoo never sent.
Each report gets a Message-Id of its own, and LF line endings, as an MTA's
pipe hands reports over.

Each round runs the DSNs on a fresh copy of each database, right after a
checkpoint: both copies are open in one ``odoo-bin shell`` pinned to one CPU
and take turns every ``--turn`` DSNs (20), the first alternating, so that
load from other processes hits both alike (``--turn 0``: whole runs one
after the other). A warm-up on the first DSNs is rolled back first. Only
the gateway is timed. The addon's gateway only queues a report, with its
bytes, for its cron (bounced recipients in the register, note, activity,
email to the sender): that cron then runs over the queued reports, timed
apart; its rate (reports handled per second) is printed, with what each
database did. Then, on one more copy, hard DSNs go through one at a time,
each followed at once by the cron: the time from a DSN's arrival to its
entry turning *Bounced*, on top of the wait for the cron (every minute).

How (b): for each size of ``--sizes`` (10,000 and 1,000,000), a copy of the
addon's database, ``PREFIX_reg10k`` and ``PREFIX_reg1m``, gets synthetic
entries (one recipient line each, the layout ``bench/register_list.py``
fills) inserted with SQL up to that size, then ``VACUUM ANALYZE``. In each,
``--lookups`` random existing Message-Ids are looked up as the gateway does:
median of 3 passes after a warm-up, the sizes measured in alternation for
``--rounds`` rounds (median). It prints the ``EXPLAIN (ANALYZE, BUFFERS)``
of the lookup's SQL and whether it uses an index. For information, 200 hard
bounces of (a) also go through the gateway at each size.

Run it with the project's virtualenv::

    source dev/common.sh && "$PY" bench/bounce_gateway.py --count 200

The databases are dropped at the end unless ``--keep``, which also keeps
the DSNs; ``--reuse`` then measures again on them, after updating the addon
from the work tree, without the few minutes of setup. Logs are kept in
``var/bench/``. ``--profile`` adds a profiled gateway run per database and
prints where the time goes. The targets are only reported: the exit status
is non-zero only when the run fails.
"""

import argparse
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from email import policy
from email.parser import BytesParser
from pathlib import Path

# dev/: the shared driver, and dev/smtp_sink.py (imported where needed, not
# in the Odoo processes)
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "dev"))
import driver  # noqa: E402
from driver import (  # noqa: E402
    ADDONS_PATH,
    LOG_DIR,
    ROOT,
    copy_db,
    db_exists,
    drop_db,
    free_port,
    odoo_cmd,
    psql,
    run_logged,
    say,
    snapshot_addon,
)

VANILLA = "vanilla"
SENGERIO = "sengerio"
BASE_MODULES = "sale_management,sale_async_emails,account,purchase,mass_mailing"
ALIAS_DOMAIN = "bench.localhost"
BOUNCE_ADDRESS = "bounce@" + ALIAS_DOMAIN
REGISTER = "sengerio.generated.document"

# Targets from the issue.
THROUGHPUT_TARGET = 0.9
LOOKUP_TARGET = 1.5

# DSN kinds and their shares of ``--count``; hard bounces take the rest.
KINDS = ("hard", "delay", "autoreply", "unknown")
SHARES = {"delay": 0.05, "autoreply": 0.05, "unknown": 0.05}
WARMUP = 30
# "Index Scan using x", "Index Only Scan Backward using x", "Bitmap Index Scan on x"
INDEX_SCAN_RE = re.compile(r"Index (?:Only )?Scan(?: Backward)? (?:using|on) (\S+)")
AGENT_GROUPS = ("sales_team.group_sale_salesman_all_leads",)
AGENTS = 3


# ---------------------------------------------------------------------------
# Databases, rounds, report
# ---------------------------------------------------------------------------


def odoo_shell(db, step, env=None, **kwargs):
    """Run ``step(env, **kwargs)`` of this module in an ``odoo-bin shell``."""
    found = driver.odoo_shell(db, "bounce_gateway", step, env=env, **kwargs)
    if found is None:
        raise RuntimeError("no result from %s in %s, see its log" % (step, db))
    return found


def duplicate_db(source, target):
    (LOG_DIR / (target + ".log")).unlink(missing_ok=True)
    copy_db(source, target)


def vacuum_analyze(db):
    psql(db, "VACUUM (ANALYZE)")


def prepare_databases(dbs, documents, tmp):
    """Vanilla database with sent quotations, cloned, addon installed."""
    from smtp_sink import SmtpSink, read_spool

    vanilla, sengerio = dbs[VANILLA], dbs[SENGERIO]
    for db in (vanilla, sengerio):
        drop_db(db)
        (LOG_DIR / (db + ".log")).unlink(missing_ok=True)
    say("installing %s on %s (a minute or two)", BASE_MODULES, vanilla)
    run_logged(
        odoo_cmd(
            "-d", vanilla, "-i", BASE_MODULES, "--without-demo=all",
            "--stop-after-init", "--no-http", "--log-level=warn",
        ),
        vanilla,
    )  # fmt: skip
    smtp_port = free_port()
    env = dict(os.environ, SMTP_PORT=str(smtp_port), ALIAS_DOMAIN=ALIAS_DOMAIN)
    run_logged(
        odoo_cmd("shell", "-d", vanilla, "--no-http", "--log-level", "warn"),
        vanilla,
        stdin_text=(ROOT / "dev" / "configure_db.py").read_text(),
        env=env,
    )
    say("sending %s quotations into a local SMTP sink (a few minutes)", documents)
    spool = tmp / "spool"
    with SmtpSink(spool, port=smtp_port):
        sent = odoo_shell(vanilla, "odoo_setup", documents=documents, pdf_dir=str(tmp))
    say(
        "sent %s emails (%s left in the queue) in %.0f s",
        sent["sent"],
        sent["left"],
        sent["seconds"],
    )
    say("duplicating %s as %s and installing sengerio_mailing", vanilla, sengerio)
    duplicate_db(vanilla, sengerio)
    run_logged(
        odoo_cmd(
            "-d", sengerio, "-i", "sengerio_mailing", "--stop-after-init",
            "--no-http", "--log-level=warn",
        ),
        sengerio,
    )  # fmt: skip
    for db in (vanilla, sengerio):
        vacuum_analyze(db)
    return read_spool(spool)


def reuse_databases(dbs, kept_dsns):
    """The databases and DSNs of a run with ``--keep``, with the addon updated."""
    paths = sorted(kept_dsns.glob("*.eml"))
    if not paths or not all(db_exists(db) for db in dbs.values()):
        raise RuntimeError(
            "nothing to reuse: run once with --keep and the same --db-prefix"
        )
    say("reusing %s and the DSNs in %s", ", ".join(dbs.values()), kept_dsns)
    run_logged(
        odoo_cmd(
            "-d", dbs[SENGERIO], "-u", "sengerio_mailing", "--stop-after-init",
            "--no-http", "--log-level=warn",
        ),
        dbs[SENGERIO],
    )  # fmt: skip
    vacuum_analyze(dbs[SENGERIO])
    counts = {kind: 0 for kind in KINDS}
    for path in paths:
        counts[path.stem.split("-", 1)[1]] += 1
    return str(kept_dsns), counts


# DSNs ---------------------------------------------------------------------

#: Sample reports of the addon's tests used, by kind of DSN.
TEMPLATES = {
    "hard": (
        "postfix_hard_511.eml",
        "postfix_mailbox_full_522.eml",
        "policy_571.eml",
        "exim_hard.eml",
        "gmail_hard.eml",
        "ses_hard.eml",
        "exchange_ndr.eml",
    ),
    "delay": ("postfix_delayed.eml",),
    "autoreply": ("autoreply_ooo.eml", "autoreply_it.eml"),
    "unknown": ("unknown_message_id.eml",),
}
BOUNDARY_RE = re.compile(r'boundary="?([^";\s]+)"?', re.IGNORECASE)
RETURNED_RE = re.compile(
    r"^Content-Type: (message/rfc822|text/rfc822-headers)[^\n]*\n(?:[ \t][^\n]*\n"
    r"|[A-Za-z-]+:[^\n]*\n)*\n",
    re.IGNORECASE | re.MULTILINE,
)
MESSAGE_ID_RE = re.compile(r"^Message-I[dD]: .*$", re.MULTILINE)


def _headers(raw):
    """The header block of a raw message, blank line included."""
    match = re.search(rb"\r?\n\r?\n", raw)
    return raw[: match.end()] if match else raw + b"\r\n"


def _from_template(text, index, email, returned):
    """A corpus report about ``email``, returning ``returned`` in full.

    The report's own Message-Id is made unique (the addon handles a report
    seen before only once), and the returned part carries the very email the
    sink received, or its headers where the sample returns headers only.
    Line endings are LF, as an MTA's pipe hands reports over.
    """
    text = text.format(
        bounce_to=BOUNCE_ADDRESS,
        domain=ALIAS_DOMAIN,
        message_id=email["message_id"],
        recipient=email["rcpt"],
        recipient2="nobody@client.bench.test",
        sender=email["sender"],
        subject=email["subject"],
        date="Fri, 27 Nov 2026 10:%02d:%02d +0000" % (index // 60 % 60, index % 60),
    )
    text = MESSAGE_ID_RE.sub(
        "Message-Id: <%05d.report@relay.bench.test>" % index, text, count=1
    )
    text = text.replace("not-ours-12345", "not-ours-%05d" % index)
    match = RETURNED_RE.search(text)
    boundary = BOUNDARY_RE.search(text)
    raw = text.encode()
    if not (match and boundary and returned):
        return raw
    start = len(text[: match.end()].encode())
    end = raw.rindex(("\n--%s--" % boundary.group(1)).encode())
    full = match.group(1).lower() == "message/rfc822"
    body = returned if full else _headers(returned)
    return raw[:start] + body.replace(b"\r\n", b"\n").rstrip(b"\n") + raw[end:]


def build_dsns(sent, count, seed):
    """``count`` DSNs from the corpus about the sent emails: [(kind, bytes)]."""
    rng = random.Random(seed)
    corpus = {item["file"]: text for item, text in driver.dsn_corpus()}
    emails = []
    for meta in sent:
        message = BytesParser(policy=policy.compat32).parsebytes(
            meta["raw"], headersonly=True
        )
        emails.append(
            {
                "raw": meta["raw"],
                "rcpt": meta["rcpt_tos"][0],
                "message_id": str(message["Message-Id"]).strip(),
                "subject": str(message["Subject"] or "").replace("\n", " "),
                "sender": meta["mail_from"],
            }
        )
    counts = {kind: round(count * share) for kind, share in SHARES.items()}
    counts["hard"] = count - sum(counts.values())
    need = counts["hard"] + counts["delay"]
    if len(emails) < need:
        raise RuntimeError(
            "%s sent emails for %s bounces and delays: use --documents %s or more"
            % (len(emails), need, need)
        )
    rng.shuffle(emails)
    # every hard bounce and delay is about an email of its own
    targets = {"hard": emails[: counts["hard"]], "delay": emails[counts["hard"] :]}
    kinds = [kind for kind in KINDS for _ in range(counts[kind])]
    rng.shuffle(kinds)
    taken = {kind: 0 for kind in KINDS}
    dsns = []
    for index, kind in enumerate(kinds, 1):
        if kind in targets:
            email = targets[kind][taken[kind]]
            taken[kind] += 1
        else:
            email = dict(rng.choice(emails))
        returned = email["raw"]
        if kind == "unknown":
            email["rcpt"] = "gone%05d@elsewhere.bench.test" % index
            returned = None  # the sample's own: an email Odoo never sent
        template = corpus[rng.choice(TEMPLATES[kind])]
        dsns.append((kind, _from_template(template, index, email, returned)))
    return dsns, counts


def write_dsns(dsns, folder):
    folder.mkdir(parents=True, exist_ok=True)
    for index, (kind, raw) in enumerate(dsns, 1):
        (folder / ("%05d-%s.eml" % (index, kind))).write_bytes(raw)
    return str(folder)


# Rounds and register ------------------------------------------------------


def run_rounds(dbs, dsn_dir, rounds, turn, cpu):
    results = []
    for index in range(rounds):
        order = [VANILLA, SENGERIO] if index % 2 == 0 else [SENGERIO, VANILLA]
        # each DSN commits, as in production: fresh copies per round
        copies = {label: dbs[label] + "_run" for label in order}
        for label in order:
            drop_db(copies[label])
            duplicate_db(dbs[label], copies[label])
        # the copies went through the write-ahead log: a checkpoint now, so
        # that none falls in a timed run, and each run starts alike
        psql("postgres", "CHECKPOINT")
        try:
            if turn:
                say(
                    "round %s/%s: DSNs through both gateways, %s at a time in turn",
                    index + 1,
                    rounds,
                    turn,
                )
                measures = odoo_shell(
                    copies[order[0]],
                    "odoo_gateway_turns",
                    dsn_dir=dsn_dir,
                    dbs=copies,
                    order=order,
                    turn=turn,
                    cpu=cpu,
                )
            else:
                measures = {}
                for label in order:
                    say(
                        "round %s/%s: DSNs through the gateway of %s",
                        index + 1,
                        rounds,
                        label,
                    )
                    measures[label] = odoo_shell(
                        copies[label], "odoo_gateway", dsn_dir=dsn_dir
                    )
                    psql("postgres", "CHECKPOINT")
        finally:
            for label in order:
                drop_db(copies[label])
        results.append({"order": order, "measures": measures})
    return results


def run_profiles(dbs, dsn_dir):
    profiles = {}
    for label in (VANILLA, SENGERIO):
        path = LOG_DIR / ("bounce_gateway_%s.prof" % label)
        say("profiling the gateway of %s (%s)", label, path)
        profiles[label] = odoo_shell(
            dbs[label], "odoo_gateway", dsn_dir=dsn_dir, profile_path=str(path)
        )
    return profiles


def run_latency(db, dsn_dir, count, cpu):
    """From arrival to *Bounced*, on a fresh copy of the addon's database."""
    if not count:
        return None
    copy = db + "_latency"
    duplicate_db(db, copy)
    try:
        say("timing %s hard DSNs from arrival to Bounced, one at a time", count)
        return odoo_shell(copy, "odoo_latency", dsn_dir=dsn_dir, count=count, cpu=cpu)
    finally:
        drop_db(copy)


def fill_register(db, size):
    """Add synthetic entries with SQL until the register holds ``size``.

    The register's layout is the one the list benchmark fills
    (``driver.fill_register``), with its people.
    """
    start = time.monotonic()
    people = driver.odoo_shell(db, "register_list", "odoo_setup")
    existing = int(psql(db, "SELECT count(*) FROM sengerio_generated_document"))
    if size > existing:
        driver.fill_register(db, size - existing, people)
    total = int(psql(db, "SELECT count(*) FROM sengerio_generated_document"))
    return total, time.monotonic() - start


def run_register(source, reg_dbs, lookups, seed, hard_dir, rounds):
    """Copy ``source`` per size, fill it, measure the sizes in alternation."""
    entries = {}
    for size, db in reg_dbs.items():
        say("copying %s as %s and filling its register", source, db)
        duplicate_db(source, db)
        entries[size], seconds = fill_register(db, size)
        say("%s: %s entries (filled, vacuumed, analyzed in %.0f s)", db, size, seconds)
    sizes = list(reg_dbs)
    runs = {size: [] for size in sizes}
    for index in range(rounds):
        for size in sizes if index % 2 == 0 else sizes[::-1]:
            say(
                "round %s/%s: %s lookups in %s, then hard bounces through the gateway",
                index + 1,
                rounds,
                lookups,
                reg_dbs[size],
            )
            runs[size].append(
                odoo_shell(
                    reg_dbs[size],
                    "odoo_lookup",
                    lookups=lookups,
                    seed=seed,
                    hard_dir=hard_dir,
                )
            )
    results = {}
    for size in sizes:
        result = runs[size][-1]  # plans and counts of the last run
        for key, info in result["lookups"].items():
            for unit in ("us", "sql_us"):
                values = [run["lookups"][key][unit] for run in runs[size]]
                info[unit] = statistics.median(values)
                info[unit + "_runs"] = values
        result["gateway"]["seconds"] = statistics.median(
            run["gateway"]["seconds"] for run in runs[size]
        )
        result["entries"] = entries[size]
        result["rounds"] = len(runs[size])
        results[size] = result
    return results


# Report -------------------------------------------------------------------


def print_gateway(results, counts, revision):
    first = results[0]["measures"][VANILLA]
    print()
    print(
        "(a) %s DSNs through mail.thread.message_process (sengerio_mailing at %s)"
        % (first["processed"], revision)
    )
    print(
        "    %s; each DSN in its own transaction, on a fresh copy per run"
        % ", ".join("%s %s" % (counts[kind], kind) for kind in KINDS)
    )
    print()
    head = "%-32s %12s %12s %8s" % ("", VANILLA, SENGERIO, "ratio")
    print(head)
    print("-" * len(head))
    rows = (
        ("time (s)", lambda m: m["seconds"], "%.2f"),
        ("throughput (messages/s)", lambda m: m["processed"] / m["seconds"], "%.1f"),
        ("SQL time (s)", lambda m: m["sql_seconds"], "%.2f"),
        ("SQL queries", lambda m: m["queries"], "%d"),
        ("WAL written (MB)", lambda m: m.get("wal_bytes", 0) / 2**20, "%.1f"),
    )
    ratios = []
    for index, result in enumerate(results):
        print("round %s (%s first)" % (index + 1, result["order"][0]))
        for name, value, fmt in rows:
            v = value(result["measures"][VANILLA])
            s = value(result["measures"][SENGERIO])
            if name.startswith("throughput"):
                ratios.append(s / v)
            print("%-32s %12s %12s %8.3f" % ("  " + name, fmt % v, fmt % s, s / v))
    ratio = statistics.median(ratios)
    print()
    print(
        "throughput ratio sengerio/vanilla %.3f  (target >= %.2f: %s%s)"
        % (
            ratio,
            THROUGHPUT_TARGET,
            "met" if ratio >= THROUGHPUT_TARGET else "NOT met",
            ", median of %s rounds" % len(ratios) if len(ratios) > 1 else "",
        )
    )
    followups = [r["measures"][SENGERIO].get("followup") for r in results]
    if all(followups):
        seconds = statistics.median(f["seconds"] for f in followups)
        print(
            "the addon's cron, run after the gateway: %s reports in %.2f s (median), "
            "%.1f reports handled per second, %s left"
            % (
                followups[-1]["notices"],
                seconds,
                followups[-1]["notices"] / seconds if seconds else 0.0,
                followups[-1]["left"],
            )
        )
    print()
    print("Per kind of DSN, mean over the rounds (ms per message, SQL queries)")
    head = "%-10s %5s %12s %8s %12s %8s %8s" % (
        "kind", "count", "vanilla ms", "queries", "sengerio ms", "queries", "ratio"
    )  # fmt: skip
    print(head)
    print("-" * len(head))
    for kind in KINDS:
        per = {}
        for label in (VANILLA, SENGERIO):
            stats = [r["measures"][label]["kinds"][kind] for r in results]
            n = stats[0]["count"] or 1
            per[label] = (
                1000.0 * statistics.mean(s["seconds"] for s in stats) / n,
                statistics.mean(s["queries"] for s in stats) / n,
            )
        print(
            "%-10s %5s %12.2f %8.1f %12.2f %8.1f %8.2f"
            % (
                kind,
                stats[0]["count"],
                per[VANILLA][0],
                per[VANILLA][1],
                per[SENGERIO][0],
                per[SENGERIO][1],
                per[SENGERIO][0] / per[VANILLA][0],
            )
        )
    print()
    print("What each database did (last round, counted before the rollback)")
    last = results[-1]["measures"]
    names = list(dict.fromkeys([*last[VANILLA]["outcome"], *last[SENGERIO]["outcome"]]))
    for name in names:
        print(
            "  %-44s %10s %10s"
            % (
                name,
                last[VANILLA]["outcome"].get(name, "-"),
                last[SENGERIO]["outcome"].get(name, "-"),
            )
        )
    for label in (VANILLA, SENGERIO):
        if last[label]["errors"]:
            print("  %s errors: %s" % (label, last[label]["errors"]))


def print_latency(latency):
    if not latency:
        return
    ms = sorted(1000.0 * s for s in latency["seconds"])
    print()
    print(
        "From a DSN's arrival to its entry turning Bounced: the wait for the cron "
        "(every %s s, so %s s at most), then %.0f ms median, %.0f ms at worst, "
        "for the gateway and the cron's work (%s hard DSNs, one at a time; %s "
        "entries bounced)"
        % (
            latency["interval"],
            latency["interval"],
            statistics.median(ms),
            ms[-1],
            len(ms),
            latency["bounced"],
        )
    )


def print_profiles(profiles):
    for label, result in profiles.items():
        print()
        print(
            "Profile of the gateway on %s (%.2f s under cProfile; %s)"
            % (label, result["seconds"], result["profile_path"])
        )
        print(result["profile"])


def print_register(results, sizes):
    small, large = sizes[0], sizes[-1]
    a, b = results[small], results[large]
    print()
    print(
        "(b) Looking up the bounced entry: %s vs %s entries (_bounce_entry, as "
        "the gateway does; median of %s rounds, each the median of 3 passes)"
        % (format(a["entries"], ","), format(b["entries"], ","), a["rounds"])
    )
    print()
    head = "%-44s %12s %12s %7s" % ("", short(small), short(large), "ratio")
    print(head)
    print("-" * len(head))
    met = True
    for key, name in (("message_id", "by Message-Id (us per lookup)"),):
        x, y = a["lookups"][key]["us"], b["lookups"][key]["us"]
        met &= y / x <= LOOKUP_TARGET
        print("%-44s %12.1f %12.1f %7.2f" % (name, x, y, y / x))
        x, y = a["lookups"][key]["sql_us"], b["lookups"][key]["sql_us"]
        print("%-44s %12.1f %12.1f %7.2f" % ("  of which in SQL (us)", x, y, y / x))
        print(
            "%-44s %12s %12s"
            % (
                "  each round (us)",
                "/".join("%.0f" % v for v in a["lookups"][key]["us_runs"]),
                "/".join("%.0f" % v for v in b["lookups"][key]["us_runs"]),
            )
        )
        print(
            "%-44s %12s %12s"
            % (
                "  lookups (found)",
                "%s (%s)" % (a["lookups"][key]["count"], a["lookups"][key]["found"]),
                "%s (%s)" % (b["lookups"][key]["count"], b["lookups"][key]["found"]),
            )
        )
    x, y = a["gateway"], b["gateway"]
    print(
        "%-44s %12.2f %12.2f %7.2f"
        % (
            "hard bounces via the gateway (ms each, n=%s)" % x["processed"],
            1000 * x["seconds"] / x["processed"],
            1000 * y["seconds"] / y["processed"],
            y["seconds"] / x["seconds"],
        )
    )
    print()
    print(
        "lookup target (%s entries <= %.1fx %s entries): %s"
        % (short(large), LOOKUP_TARGET, short(small), "met" if met else "NOT met")
    )
    indexed = True
    for size in sizes:
        for key in ("message_id",):
            info = results[size]["lookups"][key]
            indexed &= bool(info["indexes"]) and not info["seq_scan"]
            print()
            print("EXPLAIN (ANALYZE, BUFFERS) at %s, by %s:" % (short(size), key))
            print("  " + info["sql"])
            for line in info["plan"]:
                print("    " + line)
            print(
                "  -> indexes used: %s%s"
                % (
                    ", ".join(info["indexes"]) or "none",
                    "; SEQUENTIAL SCAN on the register" if info["seq_scan"] else "",
                )
            )
    print()
    print("index-backed lookups at every size: %s" % ("yes" if indexed else "NO"))


def short(size):
    for unit, div in (("M", 1000000), ("k", 1000)):
        if size >= div and size % div == 0:
            return "%s%s" % (size // div, unit)
    return str(size)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--count", type=int, default=1000, help="DSNs per run (default 1000)"
    )
    parser.add_argument(
        "--documents",
        type=int,
        help="quotations sent before the bounces (default: --count)",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="gateway runs per database, alternating which goes first (default 2)",
    )
    parser.add_argument(
        "--turn",
        type=int,
        default=20,
        help="DSNs each database processes before the other takes its turn, both "
        "in one process (default 20; 0: whole runs one after the other)",
    )
    parser.add_argument(
        "--cpu",
        type=int,
        default=max(os.sched_getaffinity(0)),
        help="the CPU the measuring process is pinned to (default: the last one)",
    )
    parser.add_argument(
        "--latency",
        type=int,
        default=30,
        help="hard DSNs timed from arrival to Bounced, one at a time (default 30)",
    )
    parser.add_argument(
        "--sizes",
        default="10000,1000000",
        help="register sizes for (b), smallest first (default 10000,1000000)",
    )
    parser.add_argument(
        "--lookups", type=int, default=1000, help="lookups per size (default 1000)"
    )
    parser.add_argument("--seed", type=int, default=20260127, help="random seed")
    parser.add_argument("--skip-register", action="store_true", help="only measure (a)")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="add a profiled gateway run per database and print the hot spots",
    )
    parser.add_argument(
        "--db-prefix",
        default="benchbounce",
        help="databases PREFIX_vanilla, PREFIX_sengerio and PREFIX_reg<size> "
        "(default benchbounce)",
    )
    parser.add_argument(
        "--keep",
        action="store_true",
        help="keep the databases and the DSNs (in var/bench/PREFIX_dsn) at the end",
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure again on what a run with --keep left, after updating the "
        "addon (implies --keep; --count, --documents and --seed are ignored)",
    )
    args = parser.parse_args()
    args.documents = args.documents or args.count
    args.keep = args.keep or args.reuse
    args.sizes = sorted(int(size) for size in args.sizes.split(","))
    return args


def main():
    args = parse_args()
    dbs = {label: "%s_%s" % (args.db_prefix, label) for label in (VANILLA, SENGERIO)}
    reg_dbs = {
        size: "%s_reg%s" % (args.db_prefix, short(size).lower()) for size in args.sizes
    }
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="bench_bounce_"))
    profiles, register = {}, {}
    try:
        (tmp / "addons").mkdir()
        revision = snapshot_addon(tmp / "addons")
        ADDONS_PATH.append(str(tmp / "addons"))
        say("measuring sengerio_mailing at %s", revision)
        kept_dsns = LOG_DIR / (args.db_prefix + "_dsn")
        if args.reuse:
            dsn_dir, counts = reuse_databases(dbs, kept_dsns)
        else:
            sent = prepare_databases(dbs, args.documents, tmp)
            dsns, counts = build_dsns(sent, args.count, args.seed)
            dsn_dir = write_dsns(dsns, tmp / "dsn")
            if args.keep:
                shutil.rmtree(kept_dsns, ignore_errors=True)
                shutil.copytree(dsn_dir, kept_dsns)
        say("%s DSNs: %s", sum(counts.values()), counts)
        results = run_rounds(dbs, dsn_dir, args.rounds, args.turn, args.cpu)
        latency = run_latency(dbs[SENGERIO], dsn_dir, args.latency, args.cpu)
        if args.profile:
            profiles = run_profiles(dbs, dsn_dir)
        if not args.skip_register:
            # the hard bounces, for the gateway at each size
            (tmp / "hard").mkdir()
            for path in sorted(Path(dsn_dir).glob("*-hard.eml"))[:200]:
                shutil.copy(path, tmp / "hard" / path.name)
            register = run_register(
                dbs[SENGERIO],
                reg_dbs,
                args.lookups,
                args.seed,
                str(tmp / "hard"),
                args.rounds,
            )
    finally:
        if not args.keep:
            every_db = [*dbs.values(), *reg_dbs.values()]
            say("dropping %s", ", ".join(every_db))
            for db in every_db:
                drop_db(db)
        shutil.rmtree(tmp, ignore_errors=True)
    print_gateway(results, counts, revision)
    print_latency(latency)
    print_profiles(profiles)
    if register:
        print_register(register, args.sizes)
    print()
    print("total run time %.0f s; logs in %s" % (time.monotonic() - started, LOG_DIR))
    return 0


# ---------------------------------------------------------------------------
# Steps run inside `odoo-bin shell` (``env`` is the shell's superuser env)
# ---------------------------------------------------------------------------


_result = driver.result


def odoo_setup(env, documents, pdf_dir):
    """Agents, customers and quotations, each sent by email; drain the queue."""
    from odoo import Command

    env = env(context=dict(env.context, tracking_disable=True))
    env.company.write({"email": "office@bench.example.com"})
    agents = (
        env["res.users"]
        .with_context(no_reset_password=True)
        .create(
            [
                {
                    "name": "Agent %s" % i,
                    "login": "bounce_agent%s" % i,
                    "email": "agent%s@bench.example.com" % i,
                    "groups_id": [
                        Command.set([env.ref(group).id for group in AGENT_GROUPS])
                    ],
                }
                for i in range(1, AGENTS + 1)
            ]
        )
    )
    customers = env["res.partner"].create(
        [
            {
                "name": "Customer %05d" % i,
                "email": "customer%05d@client%s.bench.test" % (i, i % 7),
            }
            for i in range(1, documents + 1)
        ]
    )
    product = env["product.product"].create(
        {"name": "Guided city tour", "type": "service", "list_price": 120.0}
    )
    orders = env["sale.order"].create(
        [
            {
                "partner_id": customer.id,
                "user_id": agents[i % AGENTS].id,
                "order_line": [
                    Command.create({"product_id": product.id, "product_uom_qty": 2})
                ],
            }
            for i, customer in enumerate(customers)
        ]
    )
    env.cr.commit()
    _reuse_one_pdf(env, orders[:1], Path(pdf_dir) / "quotation.pdf")
    start = time.perf_counter()
    for index, order in enumerate(orders):
        sender = order.with_user(order.user_id).with_context(
            mail_notify_force_send=False
        )
        action = sender.action_quotation_send()
        composer = sender.env["mail.compose.message"].with_context(**action["context"])
        composer.create({}).action_send_mail()
        if index % 100 == 99:
            env.cr.commit()
            env.invalidate_all()
    env.cr.commit()
    Mail = env["mail.mail"]
    outgoing = [("state", "=", "outgoing")]
    left = Mail.search_count(outgoing)
    while left:
        Mail.process_email_queue()
        before, left = left, Mail.search_count(outgoing)
        if left >= before:
            break
    sent = env["mail.notification"].search_count(
        [("notification_type", "=", "email"), ("notification_status", "=", "sent")]
    )
    _result({"sent": sent, "left": left, "seconds": time.perf_counter() - start})


def _reuse_one_pdf(env, order, path):
    """Render the quotation PDF once with wkhtmltopdf; every send reuses it."""
    pdf = driver.render_pdf(env, "sale.action_report_saleorder", order)
    env.cr.commit()
    path.write_bytes(pdf)
    driver.stub_pdf_rendering({"sale.order": pdf})


def _load_dsns(dsn_dir):
    return [
        (path.stem.split("-", 1)[1], path.read_bytes())
        for path in sorted(Path(dsn_dir).glob("*.eml"))
    ]


def _marks(env):
    def last(model):
        # 0, not False: ("id", ">", False) would match nothing
        return env[model].sudo().search([], order="id desc", limit=1).id or 0

    return {
        model: last(model)
        for model in ("mail.message", "mail.mail", "mail.activity", "ir.attachment")
    }


def _outcome(env, marks):
    """What the gateway did, counted inside the transaction."""
    Partner = env["res.partner"].with_context(active_test=False)
    outcome = {
        "Odoo notifications bounced": env["mail.notification"].search_count(
            [("notification_status", "=", "bounce")]
        ),
        "partners with a bounce counted": Partner.search_count(
            [("message_bounce", ">", 0)]
        ),
        "messages posted (notes)": env["mail.message"].search_count(
            [("id", ">", marks["mail.message"])]
        ),
        "activities scheduled": env["mail.activity"].search_count(
            [("id", ">", marks["mail.activity"])]
        ),
        "emails queued (notices to senders)": env["mail.mail"].search_count(
            [("id", ">", marks["mail.mail"])]
        ),
        "attachments created": env["ir.attachment"].search_count(
            [("id", ">", marks["ir.attachment"])]
        ),
    }
    if REGISTER in env:
        Line = env["sengerio.generated.document.recipient"]
        outcome.update(
            {
                "register entries bounced": env[REGISTER].search_count(
                    [("state", "=", "bounced")]
                ),
                "register recipient lines bounced": Line.search_count(
                    [("state", "=", "bounced")]
                ),
            }
        )
    return outcome


def _run_loop(env, messages, profiler=None, commit=False):
    """``message_process`` on each message; stats by kind.

    Each message runs in its own transaction (``commit``), as fetchmail and
    the mail gateway script do, or in a savepoint of one transaction.
    """
    import threading

    Thread = env["mail.thread"]
    cr = env.cr
    thread = threading.current_thread()
    kinds = {kind: {"count": 0, "seconds": 0.0, "queries": 0} for kind in KINDS}
    errors = {}
    cr.execute("SELECT pg_current_wal_lsn()")
    wal_start = cr.fetchone()[0]
    thread.query_count, thread.query_time = 0, 0.0
    if profiler:
        profiler.enable()
    start = time.perf_counter()
    for kind, raw in messages:
        queries, t0 = cr.sql_log_count, time.perf_counter()
        try:
            if commit:
                Thread.message_process(None, raw)
                cr.commit()
            else:
                with cr.savepoint():
                    Thread.message_process(None, raw)
        except Exception as error:
            if commit:
                cr.rollback()
            key = "%s: %s" % (type(error).__name__, str(error)[:120])
            errors[key] = errors.get(key, 0) + 1
        stats = kinds[kind]
        stats["count"] += 1
        stats["seconds"] += time.perf_counter() - t0
        stats["queries"] += cr.sql_log_count - queries
    seconds = time.perf_counter() - start
    if profiler:
        profiler.disable()
    queries = thread.query_count
    cr.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), %s)", [wal_start])
    wal_bytes = int(cr.fetchone()[0])
    return {
        "processed": len(messages),
        "seconds": seconds,
        "queries": queries,
        "wal_bytes": wal_bytes,
        "sql_seconds": thread.query_time,
        "kinds": kinds,
        "errors": errors,
    }


def odoo_gateway(env, dsn_dir, warmup=WARMUP, profile_path=None):
    """Process every DSN through the gateway, timed; count what happened.

    Without a profile, on a copy of the database that is dropped after, each
    DSN commits; under the profiler, everything is rolled back at the end.
    """
    messages = _load_dsns(dsn_dir)
    _run_loop(env, messages[:warmup])
    env.cr.rollback()
    marks = _marks(env)
    profiler = None
    if profile_path:
        import cProfile

        profiler = cProfile.Profile()
    result = _run_loop(env, messages, profiler, commit=not profile_path)
    _finish(env, result, marks)
    if profiler:
        result["profile_path"] = profile_path
        result["profile"] = _profile_summary(profiler, profile_path)
    _result(result)


def odoo_gateway_turns(env, dsn_dir, dbs, order, turn, cpu=None, warmup=WARMUP):
    """Both databases in one process, taking turns every ``turn`` DSNs.

    Whatever else loads the machine then hits both alike, which whole runs
    one after the other do not ensure. Each DSN commits; the order within a
    pair of turns alternates.
    """
    from odoo import SUPERUSER_ID, api
    from odoo.modules.registry import Registry

    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    messages = _load_dsns(dsn_dir)
    envs = {}
    for label, db in dbs.items():
        if db == env.cr.dbname:
            envs[label] = env
        else:
            envs[label] = api.Environment(Registry(db).cursor(), SUPERUSER_ID, {})
    for label in order:
        _run_loop(envs[label], messages[:warmup])
        envs[label].cr.rollback()
    marks = {label: _marks(envs[label]) for label in order}
    totals = {label: None for label in order}
    for index, start in enumerate(range(0, len(messages), turn)):
        part = messages[start : start + turn]
        for label in order if index % 2 == 0 else order[::-1]:
            totals[label] = _add_runs(
                totals[label], _run_loop(envs[label], part, commit=True)
            )
    for label in order:
        _finish(envs[label], totals[label], marks[label])
    for label_env in envs.values():
        if label_env is not env:
            label_env.cr.close()
    _result(totals)


def odoo_latency(env, dsn_dir, count, cpu=None):
    """Hard DSNs one at a time, each followed at once by the addon's cron."""
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    Notice = env["sengerio.bounce.notice"]
    Thread = env["mail.thread"]
    hard = [raw for kind, raw in _load_dsns(dsn_dir) if kind == "hard"][:count]
    seconds = []
    for raw in hard:
        start = time.perf_counter()
        Thread.message_process(None, raw)
        env.cr.commit()
        Notice._cron_send_notices()
        env.cr.postcommit.clear()  # no SMTP here: the emails are not sent
        env.cr.commit()
        seconds.append(time.perf_counter() - start)
    cron = env.ref("sengerio_mailing.ir_cron_bounce_notices")
    interval = {"minutes": 60, "hours": 3600}.get(cron.interval_type, 86400)
    _result(
        {
            "seconds": seconds,
            "interval": cron.interval_number * interval,
            "bounced": env[REGISTER].search_count([("state", "=", "bounced")]),
        }
    )


def _finish(env, result, marks):
    """Run the addon's follow-up, count what happened, roll it all back.

    The follow-up (bounced recipients, note, activity, email to the sender)
    runs in the addon's cron after the gateway: timed apart, counted in the
    outcome.
    """
    if "sengerio.bounce.notice" in env:
        Notice = env["sengerio.bounce.notice"]
        pending = [("state", "=", "pending")]
        queued = Notice.search_count(pending)
        start = time.perf_counter()
        while Notice._cron_send_notices():
            pass
        result["followup"] = {
            "notices": queued,
            "seconds": time.perf_counter() - start,
            "left": Notice.search_count(pending),
        }
    result["outcome"] = _outcome(env, marks)
    env.cr.rollback()


def _add_runs(total, run):
    """Two results of :func:`_run_loop` added up."""
    if total is None:
        return run
    for key in ("processed", "seconds", "queries", "sql_seconds", "wal_bytes"):
        total[key] += run[key]
    for kind, stats in run["kinds"].items():
        for key, value in stats.items():
            total["kinds"][kind][key] += value
    for error, count in run["errors"].items():
        total["errors"][error] = total["errors"].get(error, 0) + count
    return total


def _profile_summary(profiler, path):
    import io
    import pstats

    profiler.dump_stats(path)
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out).strip_dirs()
    stats.sort_stats("cumulative").print_stats(
        r"mail_thread|sengerio|bounce|flufl|message_post|activity|attachment|"
        r"_bounce|mail_mail|notification",
        40,
    )
    text = out.getvalue()
    # keep the table, not pstats' preamble
    return text[text.find("   ncalls") :] if "   ncalls" in text else text


def _explain(env, field, value):
    """The SQL the lookup of ``_bounce_process`` runs, and its plan."""
    from odoo.tools import SQL

    Register = env[REGISTER].sudo()
    cr = env.cr
    captured = []
    execute = cr.execute

    def capture(query, params=None, log_exceptions=True):
        captured.append((query, params))
        return execute(query, params, log_exceptions)

    cr.execute = capture
    try:
        _lookup(Register, field, value)
    finally:
        del cr.execute
    query, params = next(
        (q, p) for q, p in captured if "sengerio_generated_document" in str(q)
    )
    if not isinstance(query, SQL):
        query = SQL(query, *(params or ()))
    cr.execute(SQL("EXPLAIN (ANALYZE, BUFFERS) %s", query))
    plan = [row[0] for row in cr.fetchall()]
    indexes = sorted(set(INDEX_SCAN_RE.findall("\n".join(plan))))
    return {
        "sql": cr.mogrify(query).decode(),
        "plan": plan,
        "indexes": indexes,
        "seq_scan": any(
            "Seq Scan on sengerio_generated_document" in line for line in plan
        ),
    }


def _lookup(Register, field, value):
    """The lookup the gateway makes for the Message-Id a report returns."""
    return Register.env["mail.thread"]._sengerio_bounced_entry([value], "")


def _time_lookups(Register, field, values, passes=3):
    """The lookups of ``_bounce_process``: wall and SQL time."""
    import threading

    thread = threading.current_thread()

    def one_pass():
        found = 0
        thread.query_time = 0.0
        start = time.perf_counter()
        for value in values:
            found += bool(_lookup(Register, field, value))
        return time.perf_counter() - start, thread.query_time, found

    thread.query_count = 0
    one_pass()  # warm-up
    runs = sorted(one_pass() for _ in range(passes))
    seconds, sql_seconds, found = runs[len(runs) // 2]  # the median pass
    count = max(len(values), 1)
    return {
        "count": len(values),
        "found": found,
        "us": 1e6 * seconds / count,
        "sql_us": 1e6 * sql_seconds / count,
    }


def odoo_lookup(env, lookups, seed, hard_dir=None):
    """Time the register lookups of ``_bounce_process``; plans; hard bounces."""
    Register = env[REGISTER].sudo()
    cr = env.cr
    cr.execute("SELECT setseed(%s)", [(seed % 1000) / 1000.0])
    cr.execute(
        "SELECT message_id FROM sengerio_generated_document "
        "WHERE message_id IS NOT NULL ORDER BY random() LIMIT %s",
        [lookups],
    )
    message_ids = [row[0] for row in cr.fetchall()]
    result = {"lookups": {}}
    for field, values in (("message_id", message_ids),):
        info = _time_lookups(Register, field, values)
        info.update(_explain(env, field, values[0]))
        result["lookups"][field] = info
    cr.rollback()
    if hard_dir:
        messages = _load_dsns(hard_dir)
        _run_loop(env, messages[:10])
        cr.rollback()
        result["gateway"] = _run_loop(env, messages)
        cr.rollback()
    _result(result)


if __name__ == "__main__":
    sys.exit(main())
