"""`make chaos`: prove the invariants under kill -9, provider faults, torn files and fuzzing.

Scenarios (figures in bench/reliability.json):

- soak: rounds of ``agentflow-jobs apply`` on a 5,000-item job, each killed with SIGKILL
  after a random number of provider requests (so the kill lands mid-run: a random delay
  often came after a 5,000-item job on the fast fake had already finished) and resumed by
  the next round, over sync and batch modes on the embedded engine and on an
  ``agentflow-jobs serve`` subprocess (itself killed mid-batch in most batch rounds and
  restarted at the start of the next round), batch mode through the fake's batch API
  (``batch/native``: ``provider.batch: native``, each kill aimed at a random number of
  batch lines answered, plus a random moment after; ``batch/anthropic``: the same through
  Anthropic's Message Batches on the Anthropic fake), and sync mode with the runner's
  state in PostgreSQL (``sync/postgres``); named crash points hit on purpose. Rounds
  run until ``--kills`` kills have landed (the apply was still running when SIGKILL came);
  only those count. Per round: items lost, items duplicated, requests re-sent (counted at
  the fake provider process).
- ``batch/postgres-multi``: three ``serve`` instances on one PostgreSQL store, the one
  holding a 5,000-item batch's lease killed twice (``chaos_pg.py``).
- storm: the fake mixes 429 + Retry-After, 5xx, resets, stalls, truncated and malformed
  replies at random; every item must end completed or failed with a fitting code, in
  bounded time. Targeted rows (the fake's ``match=``) get one known fault each and must
  end with exactly its code, or complete when only their first attempt was faulted.
- torn: truncated/corrupt state file, half-written input line, full disk (tmpfs, or
  RLIMIT_FSIZE when mounting is not allowed).
- fuzz: hypothesis with many examples on the spec loader, templates and input readers.

Requests re-sent per round are counted once the provider is idle when a server outlives
the kill (see ``SoakJob._settle``): replies a live server has not read or committed yet
are not lost. ``WINDOW`` below says what a kill may cost.

``python -m bench.chaos [--kills N] [--quick] [--items N] [--only soak,storm,...]
[--configs batch/server,...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench import chaos_pg
from tests.fakes.anthropic import FakeAnthropicProcess
from tests.fakes.handles import FakeProviderProcess
from tests.reliability import scenarios
from tests.reliability.harness import (
    Project,
    ServeProcess,
    count_lost_and_duplicated,
    review_rows,
)
from tests.security import fuzzing

REPORT = Path(__file__).resolve().parent / "reliability.json"
CONCURRENCY = 64
# The requests a kill -9 may legitimately cost, per round (DESIGN.md §5, invariant 1):
# - sync: the runner keeps at most `concurrency` items in flight, in requests of about
#   `concurrency / 4` items (or at the server, which answers them to a client that is
#   gone); a round's re-sent items stay within one `concurrency`, and within two anyway;
# - batch: the engine's provider holds at most `concurrency` requests open (its limiter is
#   shared by every batch a service runs), and rows that came back are group-committed as
#   soon as the event loop is free, so at most about one loop turn of returned rows (no
#   more than the `concurrency` requests that produced them) waits for its commit.
# Both come to two times `concurrency`.
WINDOW = 2 * CONCURRENCY
BATCH_SIZE = 500
CONFIGS = (("sync", "embedded"), ("batch", "embedded"), ("sync", "server"), ("batch", "server"),
           ("batch", "native"), ("batch", "anthropic"), chaos_pg.SYNC)
# the configurations whose batches run through a provider's batch API (batch/anthropic:
# Anthropic's Message Batches, on the Anthropic fake)
NATIVE = ("native", "anthropic")
# batch/native: the profile's provider runs batches through the fake's batch API, whose
# batches take a moment in each state so that kills land at every step
NATIVE_PROVIDER = {"batch": "native", "batch_poll_interval": 0.05, "batch_poll_max": 0.3}
NATIVE_SCRIPT = {"validating_s": 0.3, "in_progress_s": 1.0}
# seconds after an apply starts that a batch/native kill lands (such a job takes about 4)
NATIVE_KILL_S = (0.5, 4.0)
# three serve instances on one PostgreSQL store (bench/chaos_pg.py), not a soak configuration
MULTI_RUNS = 3
IDLE_SERVER_KILL = "server killed while the provider was idle"
# the ≥ 100 kill -9 rounds of issue 8: kills that landed mid-run, named crash points aside
MIN_KILLS = 100
# issue 13: a full run lands at least this many in batch/native
NATIVE_MIN_KILLS = 25
# a job with fewer items left than this is finished rather than killed again: a kill aimed
# at its last few requests would mostly come after it ended
MIN_REMAINING = 200
# no provider request for this long while aiming a kill: kill anyway (the apply is still
# running, e.g. paging a finished batch's output)
STALL_S = 20.0
POLL_S = 0.01
PG_URL: str | None = None  # the database of this run's sync/postgres jobs (chaos_pg.pg_database)


def provider_block(fake: FakeProviderProcess, **extra: Any) -> dict[str, Any]:
    kind = fake.kind
    return {"type": kind, "base_url": fake.base_url, "api_key": "sk-chaos",
            "model": "claude-haiku-4-5" if kind == "anthropic" else "fake-model",
            "concurrency": CONCURRENCY, "timeout": 10, **extra}


@dataclass
class Round:
    config: str
    job: int
    kind: str  # kill | server_kill | crash:<point> | resume
    exit_code: int
    seconds: float
    resent: int
    note: str = ""


@dataclass
class JobResult:
    config: str
    items: int
    rounds: int
    kills: int
    requests: int
    resent: int
    lost: int
    duplicated: int
    batches_submitted: int | None
    chunks: int | None
    final_exit: int
    final_stderr_tail: str = ""
    # batch/native: provider batches created for a chunk that already had one (invariant 8)
    provider_duplicates: int | None = None
    provider_batches: int | None = None


@dataclass
class Soak:
    rounds: list[Round] = field(default_factory=list)
    jobs: list[JobResult] = field(default_factory=list)


class SoakJob:
    """One 5,000-item job in a fresh workspace, driven to completion through kills."""

    def __init__(self, base: Path, fake: FakeProviderProcess, mode: str, transport: str,
                 items: int, server: ServeProcess | None, number: int) -> None:
        self.fake, self.mode, self.transport, self.server = fake, mode, transport, server
        self.config = f"{mode}/{transport}"
        self.number, self.items = number, items
        root = base / f"{mode}-{transport}-{number}"
        self.native = transport in NATIVE
        extra = NATIVE_PROVIDER if self.native else {}
        self.project = Project(root, provider_block(fake, **extra),
                               remote_url=server.url if server else None)
        self.pg = PG_URL if transport == "postgres" else None
        if self.pg is not None:
            self.project.env_extra.update(chaos_pg.state_env(self.pg, number))
        self.project.write_input(review_rows(items))
        spec: dict[str, Any] = {"mode": mode, "execution": {"batch_size": BATCH_SIZE,
                                                            "concurrency": CONCURRENCY}}
        if server is not None:
            spec["profile"] = "remote"
        self.project.write_spec(**spec)
        self.start_count = self.sent()
        self.start_batches = self._batch_stats()
        self.waste = 0
        self.kills = 0
        self.rounds = 0

    def _batch_stats(self) -> dict[str, Any]:
        return self.fake.batch_stats() if self.native else {}

    def sent(self) -> int:
        """Requests answered by the provider: chat requests, and batch lines (native)."""
        stats = self._batch_stats()
        return self.fake.count + int(stats.get("lines_run", 0))

    def _store(self) -> Path | None:
        if self.mode != "batch":
            return None
        return self.server.store if self.server else self.project.store

    def _done(self) -> int:
        store = self._store()
        if self.pg is not None:
            return chaos_pg.ledger_rows(self.pg, self.number, self.project.name)
        if store is None:
            return self.project.ledger_rows()
        since = getattr(self, "_store_mark", 0)
        return _count(store, "SELECT count(*) FROM results") - since

    def remaining(self) -> int:
        return max(0, self.items - self._done())

    def ensure_server(self) -> None:
        """A server killed in the previous round comes back before the next one starts."""
        if self.server is not None and self.server.proc is None:
            self.server.start()

    def mark_store(self) -> None:
        store = self._store()
        self._store_mark = _count(store, "SELECT count(*) FROM results") if store else 0
        self._batch_mark = _count(store, "SELECT count(*) FROM batches") if store else 0

    def batches_submitted(self) -> int | None:
        store = self._store()
        if store is None:
            return None
        return _count(store, "SELECT count(*) FROM batches") - getattr(self, "_batch_mark", 0)

    def measure(self, kind: str, code: int, seconds: float) -> Round:
        """Requests sent but not kept: the ones a later round has to send again."""
        note = ""
        if self.transport == "server" and not self._settle():
            note = "provider not idle when measured: the figure may count rows still in flight"
        done = self._done()
        stats = self.fake.stats()
        # a request still in flight at the provider may yet be kept (batch on a live server)
        lines = int(self._batch_stats().get("lines_run", 0))
        waste = (int(stats["requests"]) + lines - int(stats["in_flight"]) - self.start_count) - done
        resent = max(0, waste - self.waste)
        self.waste = waste
        if self.native:
            # a provider batch outlives the killed client and answers 500 lines at once,
            # kept for the next round's harvest: lines run twice are counted per job instead
            resent = 0
        self.rounds += 1
        return Round(self.config, self.number, kind, code, round(seconds, 2), resent, note)

    def _settle(self, timeout: float = 60.0) -> bool:
        """Wait until the provider has been idle for a moment (True if it was).

        The server outlives a killed client: in sync mode it finishes the chunks the dead
        client had sent; in batch mode it works on the submitted batches. While it works,
        up to `concurrency` replies sit answered (the fake no longer counts them in flight)
        but not yet read, plus rows read but not yet committed. Counting those as lost made
        a round look worse than it was, and the next round look better (the figure went
        down again once they were committed). Once the provider is idle, every reply the
        server read is committed, so requests minus rows is exactly what was lost.
        """
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            stats = self.fake.stats()
            if stats["in_flight"] == 0 and stats["requests"] == last:
                return True
            last = stats["requests"]
            time.sleep(0.3)
        return False

    def kill_round(self, rng: random.Random, kill_server: bool) -> Round:
        """Start an apply and SIGKILL it once the provider has answered a random share of
        the items left (and kill the server first when ``kill_server``).

        The server is not restarted here: measuring with it dead counts exactly what its
        kill cost, and ``ensure_server`` brings it back for the next round.
        """
        self.ensure_server()
        aim = rng.randint(1, max(1, int(self.remaining() * 0.9)))
        started = time.monotonic()
        target = self.sent() + aim
        proc = self.project.start()
        moment = 0.0
        if self.native:
            # a job's provider batches answer all at once: aim at a moment instead, from the
            # process start through uploads, creates, polls and harvests to the output
            stalled, moment = False, round(rng.uniform(*NATIVE_KILL_S), 2)
            _wait_or_exit(proc, moment)
        else:
            stalled = self._wait_for_requests(proc, target)
        kind, idle = "kill", False
        if kill_server and self.server is not None and proc.poll() is None:
            before = self.fake.stats()["requests"]
            time.sleep(0.05)
            idle = self.fake.stats()["requests"] == before
            self.server.kill()
            kind = "server_kill"
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        _, err = proc.communicate(timeout=60)
        measured = self.measure(kind, proc.returncode, time.monotonic() - started)
        if proc.returncode != -signal.SIGKILL:  # it ended on its own before the kill
            measured.kind = "ended"
            measured.note = err.decode(errors="replace").strip()[-300:]
            return measured
        self.kills += 1
        notes = [f"aimed at {moment} s" if self.native else f"aimed at {aim} requests",
                 IDLE_SERVER_KILL if idle else "",
                 f"no provider request for {STALL_S:.0f} s: killed anyway" if stalled else "",
                 measured.note]
        measured.note = "; ".join(filter(None, notes))
        return measured

    def _wait_for_requests(self, proc: subprocess.Popen[bytes], target: int) -> bool:
        """Until the provider's count reaches ``target`` or ``proc`` ends (False), or no
        request came for STALL_S seconds (True)."""
        last, since = -1, time.monotonic()
        while proc.poll() is None:
            count = self.sent()
            if count >= target:
                return False
            if count != last:
                last, since = count, time.monotonic()
            elif time.monotonic() - since > STALL_S:
                return True
            time.sleep(POLL_S)
        return False

    def finish(self, **extra: str) -> tuple[Round, int, str]:
        self.ensure_server()
        outcome = self.project.run(timeout=600, env=extra)
        kind = "crash:" + extra["AGENTFLOW_CRASH_AT"] if extra else "resume"
        return self.measure(kind, outcome.code, outcome.seconds), outcome.code, outcome.stderr

    def verify(self, code: int, stderr: str) -> JobResult:
        expected = [f"r{i}" for i in range(self.items)]
        lost, duplicated = count_lost_and_duplicated(self.project.output_ids(), expected)
        requests = self.sent() - self.start_count
        result = JobResult(
            self.config, self.items, self.rounds, self.kills, requests, requests - self.items,
            lost, duplicated, self.batches_submitted(),
            -(-self.items // BATCH_SIZE) if self.mode == "batch" else None, code,
            "" if code == 0 else stderr[-800:],
        )
        if self.native:
            stats, before = self._batch_stats(), self.start_batches
            result.provider_duplicates = stats["duplicate_chunks"] - before["duplicate_chunks"]
            result.provider_batches = stats["batches_created"] - before["batches_created"]
        return result


def _wait_or_exit(proc: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while proc.poll() is None and time.monotonic() < deadline:
        time.sleep(POLL_S)


def _count(db: Path | None, sql: str) -> int:
    if db is None or not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10) as conn:
            return int(conn.execute(sql).fetchone()[0])
    except sqlite3.Error:
        return 0


def run_soak(base: Path, fake: FakeProviderProcess, kills: int, items: int, rng: random.Random,
             deadline: float, configs: tuple[tuple[str, str], ...] = CONFIGS,
             claude: FakeProviderProcess | None = None) -> Soak:
    """``claude``: the Anthropic fake, for batch/anthropic."""
    soak = Soak()
    per_config = max(1, -(-kills // len(configs)))
    server = ServeProcess(base, provider_block(fake))
    try:
        for mode, transport in configs:
            budget = max(per_config, NATIVE_MIN_KILLS) if transport in NATIVE and kills >= MIN_KILLS else per_config
            job_fake = claude if transport == "anthropic" else fake
            if job_fake is None:
                continue
            _soak_config(soak, base, job_fake, mode, transport, budget, items, rng,
                         server if transport == "server" else None, deadline)
    finally:
        server.stop()
    return soak


def _soak_config(soak: Soak, base: Path, fake: FakeProviderProcess, mode: str, transport: str,
                 budget: int, items: int, rng: random.Random, server: ServeProcess | None,
                 deadline: float) -> None:
    """Jobs of this configuration until ``budget`` kills have landed (or the deadline)."""
    landed, number = 0, 0
    if transport in NATIVE:
        fake.batch_script(**NATIVE_SCRIPT)
    while landed < budget and time.monotonic() < deadline:
        number += 1
        job = SoakJob(base, fake, mode, transport, items, server, number)
        job.mark_store()
        planned = min(budget - landed, rng.randint(3, 7))
        ended = _kill_job(soak, job, rng, planned)
        if ended:
            code, err = 0, ""
        else:
            last, code, err = job.finish()
            soak.rounds.append(last)
        soak.jobs.append(job.verify(code, err))
        landed += job.kills
        if code != 0 and job.kills == 0:  # the apply cannot run at all: more jobs won't
            print(f"  soak {job.config}: stopped, the apply fails on its own", file=sys.stderr)
            break
        print(f"  soak {job.config} job {number}: {asdict(soak.jobs[-1])}", file=sys.stderr, flush=True)


def _kill_job(soak: Soak, job: SoakJob, rng: random.Random, planned: int) -> bool:
    """Up to ``planned`` kill rounds; True when the job finished on its own meanwhile."""
    for turn in range(planned):
        if job.remaining() < MIN_REMAINING:
            return False
        # batch on a server: the server goes down with the client in all but the last
        # round (a client-only kill leaves the server to finish every batch)
        kill_server = job.server is not None and job.mode == "batch" and turn < planned - 1
        soak.rounds.append(job.kill_round(rng, kill_server))
        last = soak.rounds[-1]
        print(f"  soak {job.config} job {job.number} round {turn + 1}: {last.kind}"
              f" exit={last.exit_code} {last.seconds}s resent={last.resent} {last.note[-160:]}",
              file=sys.stderr, flush=True)
        if last.kind == "ended":
            # exit 0: the job finished first; else the apply failed by itself, and the
            # finishing round records why rather than more rounds failing the same way
            return last.exit_code == 0
    return False


CRASH_POINTS = (
    ("after_submit:2", "batch"), ("before_ledger_commit:3", "batch"),
    ("before_ledger_commit:5", "sync"), ("after_ledger_commit:5", "sync"),
    ("mid_output_write", "sync"),
    # batch/native: each step of a chunk (native.py), the 2nd or 3rd chunk
    ("native_after_upload:2", "batch/native"), ("native_after_create:2", "batch/native"),
    ("native_polling:3", "batch/native"), ("native_mid_harvest:2", "batch/native"),
    ("native_after_upload:2", "batch/anthropic"), ("native_after_create:2", "batch/anthropic"),
    ("native_polling:3", "batch/anthropic"), ("native_mid_harvest:2", "batch/anthropic"),
)


def run_crash_points(base: Path, fake: FakeProviderProcess, items: int, soak: Soak,
                     claude: FakeProviderProcess | None = None) -> None:
    """Each named window once: crash there (exit 137), then resume to a complete output."""
    for number, (point, config) in enumerate(CRASH_POINTS, start=1000):
        mode, _, transport = config.partition("/")
        job_fake = claude if transport == "anthropic" else fake
        if job_fake is None:
            continue
        if transport in NATIVE:
            job_fake.batch_script(**NATIVE_SCRIPT)
        job = SoakJob(base, job_fake, mode, transport or "embedded", items, None, number)
        job.config = f"{mode}/{transport or 'embedded'}@{point}"
        job.mark_store()
        crashed, code, err = job.finish(AGENTFLOW_CRASH_AT=point)
        crashed.exit_code = code
        job.kills += 1
        soak.rounds.append(crashed)
        last, code, err = job.finish()
        soak.rounds.append(last)
        result = job.verify(code, err)
        if crashed.exit_code != 137:
            result.final_stderr_tail = f"crash point {point} not reached (exit {crashed.exit_code})"
        soak.jobs.append(result)
        print(f"  crash {point}: {asdict(result)}", file=sys.stderr, flush=True)


def soak_figures(soak: Soak, kill_target: int) -> dict[str, Any]:
    jobs = [asdict(j) for j in soak.jobs]
    aimed = [r for r in soak.rounds if r.kind in ("kill", "server_kill", "ended")]
    landed = [r for r in aimed if r.kind != "ended"]
    crashes = [r for r in soak.rounds if r.kind.startswith("crash:")]
    return {
        "rounds": len(soak.rounds),
        "kill_target": kill_target,
        "kill_rounds": len(aimed),
        "kills_landed": len(landed),
        "kills_landed_by_config": _histogram(r.config for r in landed),
        "crash_points_hit": sum(1 for r in crashes if r.exit_code == 137),
        "crash_points": len(crashes),
        "kills": sum(j.kills for j in soak.jobs),
        "jobs": jobs,
        "rounds_by_kind": _histogram(r.kind.split(":")[0] for r in soak.rounds),
        "server_kills_mid_batch": sum(1 for r in soak.rounds if r.kind == "server_kill"
                                      and IDLE_SERVER_KILL not in r.note),
        "round_exit_codes": _histogram(str(r.exit_code) for r in soak.rounds),
        "round_log": [[r.config, r.job, r.kind, r.exit_code, r.seconds, r.resent, r.note]
                      for r in soak.rounds],
        "items_lost_total": sum(j.lost for j in soak.jobs),
        "items_duplicated_total": sum(j.duplicated for j in soak.jobs),
        "max_resent_per_round": max((r.resent for r in soak.rounds), default=0),
        "max_resent_per_round_by_config": _max_by_config(soak.rounds),
        "rounds_over_window": [asdict(r) for r in soak.rounds if r.resent > WINDOW],
        "resent_total": sum(max(0, j.resent) for j in soak.jobs),
        "jobs_not_completed": sum(1 for j in soak.jobs if j.final_exit != 0),
        "duplicate_batch_submissions": sum(
            (j.batches_submitted or 0) - (j.chunks or 0) for j in soak.jobs
            if j.batches_submitted is not None and j.batches_submitted > (j.chunks or 0)),
        "duplicate_provider_batches": sum(j.provider_duplicates or 0 for j in soak.jobs),
        "provider_batches_created": sum(j.provider_batches or 0 for j in soak.jobs),
        "native_lines_rerun": sum(j.resent for j in soak.jobs if j.provider_batches is not None),
        "window": WINDOW,
    }


def _max_by_config(rounds: list[Round]) -> dict[str, int]:
    out: dict[str, int] = {}
    for r in rounds:
        out[r.config] = max(out.get(r.config, 0), r.resent)
    return out


def _histogram(values: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for value in values:
        out[value] = out.get(value, 0) + 1
    return out


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.chaos", description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=MIN_KILLS,
                        help="random kill -9s that must land mid-run, over all configurations")
    parser.add_argument("--items", type=int, default=5000, help="items per soak job")
    parser.add_argument("--quick", action="store_true", help="a short run: 8 kills, short fuzz")
    parser.add_argument("--only", default="soak,crash,storm,torn,fuzz",
                        help="comma-separated scenarios to run")
    parser.add_argument("--budget-s", type=float, default=1080,
                        help="stop starting soak jobs after this many seconds")
    parser.add_argument("--configs",
                        default=",".join([*(f"{m}/{t}" for m, t in CONFIGS), chaos_pg.MULTI]),
                        help="comma-separated soak configurations (mode/transport)")
    parser.add_argument("--seed", type=int, default=20261125)
    parser.add_argument("--output", type=Path, default=REPORT)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse(sys.argv[1:] if argv is None else argv)
    if args.quick:
        args.kills = min(args.kills, 8)
    wanted = set(args.only.split(","))
    started = time.monotonic()
    rng = random.Random(args.seed)
    report: dict[str, Any] = {"started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                              "args": {k: str(v) for k, v in vars(args).items()}}
    # raw front: the runner under test must set the pace, not the fake's framework
    configs, multi = _configs(args.configs)
    with tempfile.TemporaryDirectory(prefix="agentflow-chaos-") as tmp, \
            FakeProviderProcess(latency_ms=2, front="raw") as fake, \
            FakeAnthropicProcess(latency_ms=2) as claude, \
            chaos_pg.pg_database("soak" in wanted and chaos_pg.SYNC in configs) as pg:
        global PG_URL
        PG_URL = pg
        base = Path(tmp)
        soak = Soak()
        if "soak" in wanted:
            print("soak: kill -9 rounds", file=sys.stderr, flush=True)
            soak = run_soak(base, fake, args.kills, args.items, rng, started + args.budget_s,
                            configs, claude)
        if "soak" in wanted and multi:
            print(f"{chaos_pg.MULTI}: kill -9 two of three serve instances", file=sys.stderr)
            report["multi"] = chaos_pg.multi_figures(
                base, fake, provider_block(fake), runs=1 if args.quick else MULTI_RUNS,
                items=args.items, window=WINDOW, rng=rng)
        if "crash" in wanted:
            print("crash points", file=sys.stderr, flush=True)
            run_crash_points(base, fake, min(args.items, 2000), soak, claude)
        report["soak"] = soak_figures(soak, args.kills if "soak" in wanted else 0)
        _save(args.output, report)
        fake.reset()
        if "storm" in wanted:
            report["storm"] = scenarios.provider_storm(base, fake, items=1000)
            _save(args.output, report)
        if "torn" in wanted:
            report["torn"] = scenarios.torn_files(base, fake, items=2000)
            _save(args.output, report)
    if "fuzz" in wanted:
        report["fuzz"] = fuzzing.fuzz_all(200 if args.quick else 3000)
    report["seconds"] = round(time.monotonic() - started, 1)
    report["summary"] = summary(report)
    _save(args.output, report)
    print(json.dumps(report["summary"], indent=2))
    return 0 if report["summary"]["ok"] else 1


def _configs(text: str) -> tuple[tuple[tuple[str, str], ...], bool]:
    """The soak configurations named, and whether ``batch/postgres-multi`` is one of them."""
    known = {f"{mode}/{transport}": (mode, transport) for mode, transport in CONFIGS}
    wanted = [part.strip() for part in text.split(",") if part.strip()]
    if not wanted or any(name not in known and name != chaos_pg.MULTI for name in wanted):
        raise SystemExit(f"--configs: expected some of {', '.join([*known, chaos_pg.MULTI])}")
    return tuple(known[name] for name in wanted if name in known), chaos_pg.MULTI in wanted


def summary(report: dict[str, Any]) -> dict[str, Any]:
    soak = report.get("soak", {})
    checks = {
        "kills_landed_reach_target": soak.get("kills_landed", 0) >= soak.get("kill_target", 0),
        "crash_points_all_hit": soak.get("crash_points_hit", 0) == soak.get("crash_points", 0),
        "no_items_lost": soak.get("items_lost_total", 0) == 0,
        "no_items_duplicated": soak.get("items_duplicated_total", 0) == 0,
        "resent_within_window": soak.get("max_resent_per_round", 0) <= WINDOW,
        "every_job_completed": soak.get("jobs_not_completed", 0) == 0,
        "no_duplicate_batches": soak.get("duplicate_batch_submissions", 0) == 0,
        "no_duplicate_provider_batches": soak.get("duplicate_provider_batches", 0) == 0,
        "native_lines_run_once": soak.get("native_lines_rerun", 0) == 0,
    }
    for name in ("storm", "torn", "fuzz", "multi"):
        if name in report:
            checks[f"{name}_ok"] = bool(report[name].get("ok"))
    storm, torn = report.get("storm", {}), report.get("torn", {})
    return {
        "rounds": soak.get("rounds", 0),
        "kills_landed": f"{soak.get('kills_landed', 0)}/{soak.get('kill_rounds', 0)}",
        "kill_target": soak.get("kill_target", 0),
        "crash_points_hit": f"{soak.get('crash_points_hit', 0)}/{soak.get('crash_points', 0)}",
        "storm_targeted_ok": f"{storm.get('targeted_ok', 0)}/{storm.get('targeted_total', 0)}",
        "full_disk_message": torn.get("full_disk", {}).get("full_stderr_tail", ""),
        "items_lost_total": soak.get("items_lost_total", 0),
        "items_duplicated_total": soak.get("items_duplicated_total", 0),
        "duplicate_provider_batches": soak.get("duplicate_provider_batches", 0),
        "max_resent_per_round": soak.get("max_resent_per_round", 0),
        "max_resent_per_round_by_config": soak.get("max_resent_per_round_by_config", {}),
        "postgres_multi": {k: v for k, v in report.get("multi", {}).items() if k != "runs"},
        "window": WINDOW,
        "seconds": report.get("seconds"),
        "checks": checks,
        "ok": all(checks.values()),
    }


def _save(path: Path, report: dict[str, Any]) -> None:
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    os.replace(tmp, path)


if __name__ == "__main__":
    sys.exit(main())
