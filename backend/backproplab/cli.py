"""backproplab run | sweep | experiment | serve | runs | report — the command line."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
import typing
from pathlib import Path
from typing import Any

import numpy as np


def _config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per RunConfig field (record fields as --record-<name>)."""
    from .api.schemas import RecordConfig, RunConfig

    group = parser.add_argument_group("config fields (override --config)")
    for name, field in RunConfig.model_fields.items():
        if name == "record":
            continue
        flag = "--" + name.replace("_", "-")
        if field.annotation is bool:
            group.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                               default=None)
        else:  # Literal fields (the registries' names among them) offer their choices
            choices = typing.get_args(field.annotation) \
                if typing.get_origin(field.annotation) is typing.Literal else None
            group.add_argument(flag, dest=name, default=None, help=field.description,
                               choices=choices)
    for name, field in RecordConfig.model_fields.items():
        group.add_argument("--record-" + name.replace("_", "-"), dest="record__" + name,
                           default=None, help=field.description)


def _config_from_args(args: argparse.Namespace) -> Any:
    import orjson

    from .api.schemas import validate_config
    from .settings import Settings

    data: dict[str, Any] = {}
    if args.config:
        data = orjson.loads(Path(args.config).read_bytes())
        data = data.get("config", data)  # a whole run record works as a config too
    record = dict(data.get("record") or {})
    for key, value in vars(args).items():
        if value is None or key in ("config", "out", "command", "func", "quiet", "name",
                                    "no_store", "no_limits"):
            continue
        if key.startswith("record__"):
            record[key[len("record__"):]] = value
        elif key == "clip" and str(value).lower() == "none":
            data[key] = None
        else:
            data[key] = value
    data["record"] = record
    return validate_config(data, Settings().compute_budget)


class Progress:
    """A one-line progress bar on a terminal; silent otherwise."""

    def __init__(self, total: int, enabled: bool):
        self.total, self.enabled, self.start = max(total, 1), enabled, time.perf_counter()

    def update(self, done: int, note: str = "") -> None:
        if not self.enabled:
            return
        frac = min(done / self.total, 1.0)
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        elapsed = time.perf_counter() - self.start
        sys.stderr.write(f"\r[{bar}] {done}/{self.total} {elapsed:6.1f}s {note[:40]:40s}")
        sys.stderr.flush()

    def close(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def _open_store(data_dir: str | None = None):
    from .runs.manager import store_for
    from .settings import Settings

    settings = Settings()
    if data_dir:
        settings = settings.model_copy(update={"data_dir": data_dir})
    return store_for(settings)


def _train(spec, config: dict, on_step, store, name: str | None,
           steps: list[dict]) -> tuple[dict, str | None]:
    """Train headless, filling `steps`; with a store, every recorded step is stored as
    it is produced (a Ctrl-C leaves the run `stopped` with the steps it had)."""
    from .engines import iter_steps, make_engine, theory_for
    from .engines.runner import SCHEMA, environment
    from .runs.manager import with_overflow_marker

    engine = make_engine(spec)
    env = environment(engine)
    run_id = store.create(config, "headless", name=name, environment=env) if store else None
    theory = None
    diverged = False
    try:
        theory = theory_for(spec)
        for record in iter_steps(spec, threading.Event(), engine):
            record, diverged = with_overflow_marker(record, diverged)
            if store:
                store.append_steps(run_id, [record])
            steps.append(record)
            on_step(record)
    except BaseException as exc:
        if store:
            stopped = isinstance(exc, KeyboardInterrupt)
            store.finish(run_id, "stopped" if stopped else "error", theory=theory,
                         error=None if stopped else str(exc))
        raise
    if store:
        store.finish(run_id, "done", theory=theory)
    return {"schema": SCHEMA, "config": config, "environment": env, "theory": theory,
            "steps": steps}, run_id


def _over_limit(cost, args: argparse.Namespace) -> str | None:
    """The memory limit the server applies, on by default (--no-limits lifts it)."""
    from .runs.budget import OverBudget
    from .settings import Settings

    if args.no_limits:
        return None
    limit = Settings().max_run_bytes
    if cost.bytes <= limit:
        return None
    return f"{OverBudget(cost, limit, 'BACKPROPLAB_MAX_RUN_BYTES')}; --no-limits lifts it"


def cmd_run(args: argparse.Namespace) -> int:
    from .runs.budget import run_cost
    from .runs.codec import encode

    try:
        config = _config_from_args(args)
    except Exception as exc:  # validation errors: a clear message, no traceback
        print(f"invalid config: {exc}", file=sys.stderr)
        return 2
    spec = config.to_spec()
    if (refusal := _over_limit(run_cost(spec), args)) is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    bar = Progress(max(spec.steps, 1), sys.stderr.isatty() and not args.quiet)
    steps: list[dict] = []

    def on_step(record: dict) -> None:
        bad = record.get("overflow")
        note = f"loss {record['loss']:.4g}" + (f"  overflow at layer {bad['layer']}" if bad
                                                else "")
        bar.update(record["step"] + 1, note)

    store = None if args.no_store else _open_store()
    try:
        record, run_id = _train(spec, config.model_dump(), on_step, store, args.name, steps)
    except ValueError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: stop, and keep what was recorded
        bar.close()
        from .engines import SCHEMA

        partial = {"schema": SCHEMA, "config": config.model_dump(), "environment": None,
                   "theory": None, "steps": steps}
        Path(args.out).write_bytes(encode(partial))
        print(f"interrupted: wrote {args.out} with the {len(steps)} steps recorded so far",
              file=sys.stderr)
        return 130
    finally:
        if store:
            store.close()
    bar.close()
    Path(args.out).write_bytes(encode(record))
    last = record["steps"][-1]
    where = f"; stored as {run_id}" if run_id else ""
    print(f"wrote {args.out}: {len(record['steps'])} steps, final loss {last['loss']:.6g}"
          f"{where}")
    return 0


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


def _figure(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "—" if v is None else str(v)


def cmd_runs(args: argparse.Namespace) -> int:
    """backproplab runs list | show | export | rm: the run store from the shell."""
    from .runs.codec import encode
    from .runs.store import NotFound

    if args.action != "list" and not args.ids:
        print(f"runs {args.action} needs a run id", file=sys.stderr)
        return 2
    if args.action == "export" and len(args.ids) != 1:
        print("runs export takes one run id", file=sys.stderr)
        return 2
    store = _open_store(args.data_dir)
    try:
        if args.action == "list" and args.json:  # one JSON object per line, for scripts
            for run in store.list(source=args.source, name=args.name, limit=args.limit):
                sys.stdout.write(encode(run).decode() + "\n")
        elif args.action == "list":
            rows = [["id", "name", "source", "status", "steps", "created", "final loss",
                     "overflow"]]
            runs = store.list(source=args.source, name=args.name, limit=args.limit)
            for run in runs:
                bad = run["summary"].get("first_nonfinite")
                rows.append([run["id"], run["name"] or "", run["source"], run["status"],
                             str(run["steps"]), _when(run["created"]),
                             _figure(run["summary"].get("final_loss")),
                             f"step {bad['step']}, layer {bad['layer']}" if bad else ""])
            widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
            for r in rows:
                print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
            total = store.count(source=args.source, name=args.name)
            print(f"{len(runs)} of {total} runs in {store.path or 'memory'}")
        elif args.action == "show":
            for run_id in args.ids:
                sys.stdout.write(encode(store.get(run_id)).decode() + "\n")
        elif args.action == "export":
            (run_id,) = args.ids
            chunks = store.export_chunks(run_id)
            out = open(args.output, "wb") if args.output else sys.stdout.buffer  # noqa: SIM115
            try:
                for chunk in chunks:
                    out.write(chunk)
            finally:
                if args.output:
                    out.close()
                    print(f"wrote {args.output}", file=sys.stderr)
        elif args.action == "rm":
            for run_id in args.ids:
                store.delete(run_id)
                print(f"deleted {run_id}")
    except NotFound as exc:
        print(f"no stored run {exc.args[0]!r}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from .runs.budget import phase_cost
    from .runs.codec import encode
    from .theory import phase

    cost = phase_cost(args.grid, args.depth, args.width, args.batch, not args.analytic_only)
    if (refusal := _over_limit(cost, args)) is not None:
        print(f"error: {refusal}", file=sys.stderr)
        return 2
    w2 = np.linspace(args.w2_min, args.w2_max, args.grid)
    b2 = np.linspace(args.b2_min, args.b2_max, args.grid)
    result = {"analytic": phase.analytic(args.activation, w2, b2, args.depth)}
    if not args.analytic_only:
        result["measured"] = phase.measured(args.activation, w2, b2, args.depth, args.width,
                                            args.batch, seed=args.seed, device=args.device)
    Path(args.out).write_bytes(encode(result))
    print(f"wrote {args.out}")
    if args.html or args.png:
        from .report import figure_div, page_html, phase_figure, write_page

        fig = phase_figure(result)
        if args.html:
            write_page(page_html("backproplab phase diagram", figure_div(fig, "phase")),
                       args.html)
            print(f"wrote {args.html}")
        if args.png:
            import shutil

            if "BROWSER_PATH" not in os.environ and shutil.which("chromium"):
                os.environ["BROWSER_PATH"] = shutil.which("chromium")  # kaleido's browser
            try:
                fig.write_image(args.png)
            except Exception as exc:  # kaleido missing or no browser for it
                print(f"could not write PNG ({exc}); the HTML and JSON are written",
                      file=sys.stderr)
                return 1
            print(f"wrote {args.png}")
    return 0


def cmd_experiment(args: argparse.Namespace) -> int:
    """A paper reproduction: its runs, its figures and checks → DIR/result.json, report."""
    from .experiments import registry, run_experiment
    from .experiments.report import duration, executed_where, write_outputs

    experiments = registry()
    if args.list or not args.name:
        for name, ex in experiments.items():
            print(f"{name:16s} {ex.title}")
        return 0 if args.list else 2
    if args.name not in experiments:
        print(f"unknown experiment {args.name!r}; one of: {', '.join(experiments)}",
              file=sys.stderr)
        return 2
    tty = sys.stderr.isatty() and not args.quiet
    bar = Progress(1, tty)

    def on_progress(done: int, total: int, task: dict) -> None:
        bar.total = total
        bar.update(done, task.get("label", ""))
        if not tty and not args.quiet and done:
            print(f"[{done}/{total}] {task.get('label', '')}", file=sys.stderr, flush=True)

    try:
        result = run_experiment(args.name, quick=args.quick, seed=args.seed,
                                workers=args.workers, ray_address=args.ray,
                                on_progress=on_progress, ship_code=args.ray_ship_code)
    except ValueError as exc:
        bar.close()
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bar.close()
    for path in write_outputs(result, args.out, png=not args.no_png):
        print(f"wrote {path}" if not path.startswith("(") else path)
    for c in result["checks"]:
        print(f"{'PASS' if c['pass'] else 'FAIL'}  {c['name']}: measured {c['measured']:.4g}, "
              f"published {c['published']:.4g} ({c['relation']} ±{c['tolerance']:.3g})")
    ex = result["execution"]
    print(f"{len(result['runs'])} runs, {executed_where(ex, 'in this process')}, in "
          f"{duration(ex['seconds'])}; "
          f"{sum(c['pass'] for c in result['checks'])}/{len(result['checks'])} checks pass")
    return 0 if result["passed"] else 1


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .api.app import create_app
    from .settings import Settings

    settings = Settings()
    url = f"http://{args.host}:{args.port}"
    print(f"backproplab serving at {url}  (Ctrl+C to stop)", flush=True)
    if args.open:
        import webbrowser

        threading.Timer(1.0, lambda: webbrowser.open(url)).start()
    app = create_app(settings)

    class Server(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            # measurements in flight stop now, so their requests end within the
            # graceful shutdown below (a 503 in words, not a cancelled task's 500)
            app.state.stop_measuring()
            super().handle_exit(sig, frame)

    # connections are limited by the app (HTTP and WebSockets apart), not by uvicorn's
    # --limit-concurrency, which counts idle WebSockets against page requests
    Server(uvicorn.Config(app, host=args.host, port=args.port, log_level="warning",
                          ws_max_size=settings.max_message_bytes,
                          timeout_graceful_shutdown=3)).run()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .report import RecordError, write_report
    from .runs.jsonl import RecordFormatError, parse_record

    try:  # one JSON document, or JSON lines (backproplab.watch's out file, even cut short)
        record = parse_record(Path(args.run).read_bytes())
    except (OSError, RecordFormatError) as exc:
        print(f"cannot read {args.run}: {exc}", file=sys.stderr)
        return 2
    try:
        written = write_report(record, args.output, args.plotly_js)
    except RecordError as exc:
        print(f"cannot make a report of {args.run}: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="backproplab",
                                     description="A live laboratory for backpropagation.")
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser("run", help="train headless and write the run record")
    run_p.add_argument("--config", help="a JSON config (or a run record)")
    run_p.add_argument("--out", default="run.json")
    run_p.add_argument("--quiet", action="store_true", help="no progress bar")
    run_p.add_argument("--name", help="a name for the stored run (named runs are never pruned)")
    run_p.add_argument("--no-store", action="store_true",
                       help="do not keep the run in the run store (BACKPROPLAB_DATA_DIR)")
    run_p.add_argument("--no-limits", action="store_true",
                       help="lift the memory limit (BACKPROPLAB_MAX_RUN_BYTES)")
    _config_flags(run_p)
    run_p.set_defaults(func=cmd_run)

    sweep = sub.add_parser("sweep", help="a phase diagram over (σ_w², σ_b²)")
    sweep.add_argument("--activation", default="tanh")
    sweep.add_argument("--depth", type=int, default=50)
    sweep.add_argument("--width", type=int, default=128)
    sweep.add_argument("--batch", type=int, default=16)
    sweep.add_argument("--grid", type=int, default=16)
    sweep.add_argument("--w2-min", type=float, default=0.5)
    sweep.add_argument("--w2-max", type=float, default=4.0)
    sweep.add_argument("--b2-min", type=float, default=0.0)
    sweep.add_argument("--b2-max", type=float, default=0.5)
    sweep.add_argument("--seed", type=int, default=0)
    sweep.add_argument("--device", default="auto")
    sweep.add_argument("--analytic-only", action="store_true")
    sweep.add_argument("--no-limits", action="store_true",
                       help="lift the memory limit (BACKPROPLAB_MAX_RUN_BYTES)")
    sweep.add_argument("--out", default="phase.json")
    sweep.add_argument("--html", help="also write an interactive HTML figure")
    sweep.add_argument("--png", help="also write a PNG (needs kaleido)")
    sweep.set_defaults(func=cmd_sweep)

    exp = sub.add_parser("experiment", help="reproduce a paper's figure and check its numbers")
    exp.add_argument("name", nargs="?", help="glorot2010, he2015, chen2016, schoenholz2017, "
                                             "pennington2017 (--list)")
    exp.add_argument("--list", action="store_true", help="list the experiments")
    exp.add_argument("--quick", action="store_true",
                     help="the reduced size (under a minute on 2 cores)")
    exp.add_argument("--seed", type=int, default=0)
    where = exp.add_mutually_exclusive_group()
    where.add_argument("--workers", type=int, default=0,
                       help="a local pool of N processes (default: in this process)")
    where.add_argument("--ray", metavar="ADDRESS",
                       help="Ray core tasks on a cluster: 'auto' or the head's host:port")
    exp.add_argument("--ray-ship-code", action="store_true",
                     help="upload this backproplab to the Ray workers (runtime_env)")
    exp.add_argument("--out", default="experiment", help="output directory")
    exp.add_argument("--no-png", action="store_true", help="skip the PNG figures")
    exp.add_argument("--quiet", action="store_true", help="no progress on stderr")
    exp.set_defaults(func=cmd_experiment)

    serve = sub.add_parser("serve", help="start the web app")
    serve.add_argument("--host", default=os.environ.get("BACKPROPLAB_HOST", "127.0.0.1"),
                       help="bind address (default 127.0.0.1; the Docker image uses 0.0.0.0)")
    serve.add_argument("--port", type=int, default=int(os.environ.get("BACKPROPLAB_PORT", 8000)))
    serve.add_argument("--open", action="store_true", help="open a browser")
    serve.set_defaults(func=cmd_serve)

    runs = sub.add_parser("runs", help="the run store: list, show, export, rm")
    runs.add_argument("action", choices=["list", "show", "export", "rm"])
    runs.add_argument("ids", nargs="*", help="run ids (show, export, rm)")
    runs.add_argument("--source", choices=["live", "headless", "imported", "watched",
                                           "experiment"])
    runs.add_argument("--name", help="runs whose name contains this (list)")
    runs.add_argument("--limit", type=int, default=50, help="newest runs listed (list)")
    runs.add_argument("--json", action="store_true", help="list: one JSON object per line")
    runs.add_argument("-o", "--output", help="file to export to (default: stdout)")
    runs.add_argument("--data-dir", help="the store's folder (default BACKPROPLAB_DATA_DIR)")
    runs.set_defaults(func=cmd_runs)

    report = sub.add_parser("report", help="a self-contained HTML report of a run")
    report.add_argument("run", help="a run record (JSON)")
    report.add_argument("-o", "--output", default="report.html")
    report.add_argument("--plotly-js", choices=["embed", "directory", "inline"],
                        default="embed",
                        help="embed: plotly.js compressed inside the file (about 2 MB, "
                             "one file); directory: one shared plotly.min.js written "
                             "beside the report (a few tens of kB a report); inline: "
                             "uncompressed (4.8 MB, for browsers without "
                             "DecompressionStream)")
    report.set_defaults(func=cmd_report)
    return parser


def main(argv: list[str] | None = None) -> int:
    from .runs.manager import StoreUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except StoreUnavailable as exc:  # a clear sentence, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C before a run started (or in another command)
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
