"""`leadflow run` (= `make run`): the main job a newcomer runs, and the simulator
commands behind it.

1. serve Prometheus `/metrics` for the whole run;
2. simulate a month of the business (deterministic: same file every time);
3. replay it through the embedded broker and every stage into the warehouse,
   with a live progress line;
4. write the HTML report and print the terminal report.

The warehouse is the default one (`var/warehouse`), so `leadflow kpis`,
`leadflow report` and `leadflow deadletters` read the same data afterwards.
Running it again replays the same file: every event is a duplicate, nothing
changes, the same report is printed. `--fresh` starts from an empty warehouse.
"""
from __future__ import annotations

import asyncio
import shutil
import signal
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from leadflow.config import Settings

REPO = Path(__file__).resolve().parents[1]
DASHBOARDS_DIR = REPO / "deploy" / "grafana"

# The month `make run` simulates: ~1.7 lines per visitor and day, so about 50,000 events.
RUN_DAYS = 30
RUN_VISITORS_PER_DAY = 1000
RUN_SEED = 7
RUN_START = date(2026, 5, 1)
DEFAULT_METRICS_PORT = 9464


@dataclass
class MetricsServer:
    url: str
    server: object | None = None

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


def start_metrics(port: int | None, host: str = "127.0.0.1") -> MetricsServer:
    """prometheus_client's HTTP server on `port` (None: the default port, or a free one when it is
    taken; 0: a free port)."""
    from prometheus_client import start_http_server

    wanted = DEFAULT_METRICS_PORT if port is None else port
    try:
        server, _thread = start_http_server(wanted, addr=host)
    except OSError:
        if port is not None and port != 0:
            raise
        server, _thread = start_http_server(0, addr=host)
    bound = server.server_address[1]
    return MetricsServer(url=f"http://{host}:{bound}/metrics", server=server)


def simulation_config(days: int, visitors_per_day: int, seed: int, start: date):
    from leadflow.simulator import SimulationConfig

    return SimulationConfig(days=days, seed=seed, start=start, visitors_per_day=visitors_per_day)


def simulate_to_file(cfg, path: Path) -> dict:
    from leadflow.simulator import write_jsonl

    path.parent.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    counts = write_jsonl(cfg, path)
    counts["seconds"] = round(time.perf_counter() - t0, 2)
    return counts


def render_counts(counts: dict, path: Path) -> str:
    return (f"simulated {counts['lines']:,} lines into {path}: {counts['valid']:,} valid events, "
            f"{counts['duplicates']:,} exact duplicates, {counts['invalid']:,} invalid lines "
            f"({counts['seconds']:.1f}s)")


def main_job(settings: Settings, *, days: int = RUN_DAYS, visitors_per_day: int = RUN_VISITORS_PER_DAY,
             seed: int = RUN_SEED, start: date = RUN_START, out_dir: Path = Path("var"),
             metrics_port: int | None = None, fresh: bool = False, show_progress: bool = True,
             model: str = "linear") -> int:
    from leadflow import warehouse
    from leadflow.report import collect, render_terminal, write_html
    from leadflow.replay import replay

    t0 = time.monotonic()
    if fresh and not settings.clickhouse_url and settings.warehouse_dir.exists():
        warehouse.close_all()
        shutil.rmtree(settings.warehouse_dir)
        print(f"--fresh: removed {settings.warehouse_dir}")
    metrics = start_metrics(metrics_port)
    try:
        print(f"leadflow run: metrics at {metrics.url} while this runs")
        cfg = simulation_config(days, visitors_per_day, seed, start)
        sim_path = out_dir / f"simulated-{start:%Y%m%d}-{days}d-{visitors_per_day}v-seed{seed}.jsonl"
        counts = simulate_to_file(cfg, sim_path)
        print(render_counts(counts, sim_path), flush=True)
        print("replaying it through the embedded broker (ingest -> warehouse-sink -> enrich -> attribution)...",
              flush=True)
        summary = asyncio.run(replay(settings, [sim_path], show_progress=show_progress))
        print(summary.render())
        if summary.accepted == 0 and summary.duplicates:
            print("(every event was already in the warehouse from an earlier run: nothing changed; "
                  "`leadflow run --fresh` starts over)")
        client = warehouse.connect(settings)
        data = collect(client, settings, model=model)
        html = write_html(data, out_dir / "report.html").resolve()
        dashboards = (f"{DASHBOARDS_DIR}/dashboards/*.json (provision with deploy/grafana/provisioning, or "
                      f"`leadflow grafana push --url URL --token T`)")
        print()
        print(render_terminal(data, html_path=str(html), dashboards=dashboards, metrics_url=metrics.url))
        print(f"\nleadflow run finished in {time.monotonic() - t0:.0f}s")
    finally:
        metrics.stop()
    return 0


async def live(settings: Settings, cfg, rate: float, *, duration_s: float | None = None,
               metrics_port: int | None = None) -> dict:
    """Produce the simulated business to the raw ingest path (validation, dead letters, raw topic)
    at `rate` events per second, with the pipeline running behind it, until the simulation ends,
    `duration_s` passes, or Ctrl-C. Events keep their simulated timestamps."""
    from leadflow import warehouse
    from leadflow.broker import broker_for
    from leadflow.pipeline import Pipeline, wait_for_workers
    from leadflow.progress import Progress
    from leadflow.simulator import iter_batches
    from services.ingest.publish import Publisher
    from services.ingest.validate import InputOccurrences, Validator

    client = warehouse.connect(settings)
    warehouse.migrate(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    metrics = start_metrics(metrics_port)
    print(f"leadflow simulate --live: {rate:g} events/s; metrics at {metrics.url}; Ctrl-C stops", flush=True)
    progress = Progress("live", unit="lines")
    tick = 0.2
    per_tick = max(1, round(rate * tick))
    started = time.monotonic()
    try:
        with broker_for(settings) as bootstrap:
            # against shared Kafka and warehouse the `leadflow worker` processes do the processing
            by_workers = settings.processing_by_workers
            async with (Pipeline(settings, bootstrap, client, single_process=False, stages=()) if by_workers
                        else Pipeline(settings, bootstrap, client)) as pipe:
                publisher = Publisher(Validator(settings), pipe.producer, pipe.topics,
                                      max_event_bytes=settings.max_event_bytes)
                occurrences = InputOccurrences()
                sent = 0
                pending: list[bytes] = []
                batches = iter_batches(cfg)
                done = False
                while not stop.is_set() and not done:
                    while len(pending) < per_tick:
                        try:
                            pending.extend(item[3] for item in next(batches))
                        except StopIteration:
                            break
                    chunk, pending = pending[:per_tick], pending[per_tick:]
                    if chunk:
                        await publisher.publish(chunk, origin=f"simulate:live:seed{cfg.seed}",
                                                default_source="simulator", occurrences=occurrences)
                        sent += len(chunk)
                        progress.update(sent, note=f"{publisher.totals.rejected:,} rejected")
                    done = not chunk or (duration_s is not None and time.monotonic() - started >= duration_s)
                    # pace: the next chunk is due at sent / rate seconds after the start
                    delay = started + sent / rate - time.monotonic()
                    if delay > 0 and not done:
                        try:
                            await asyncio.wait_for(stop.wait(), timeout=delay)
                        except asyncio.TimeoutError:
                            pass
                if by_workers:
                    await wait_for_workers(bootstrap, pipe.topics, publisher.tracker)
                else:
                    await pipe.drain(publisher.tracker)
                totals = publisher.totals
                result = {"read": totals.read, "published": totals.published, "rejected": totals.rejected,
                          "stored": totals.published if by_workers else pipe.raw_sink.stored.total(),
                          "duplicates": 0 if by_workers else pipe.raw_sink.duplicates.total(),
                          "seconds": round(time.monotonic() - started, 1)}
    finally:
        progress.finish()
        metrics.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return result
