"""``dmbench``: the command line. Errors meant for users print as one message (exit 2)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any, NoReturn

from benchmark import __version__
from benchmark.cache import STAGES
from benchmark.console import one_line_warnings
from benchmark.device import DevicePlan
from benchmark.errors import DmbenchError, UsageError
from benchmark.pipeline.executor import EXECUTORS, Executor, check_workers, make_executor
from benchmark.settings import progress_bars


def cmd_assets(args: argparse.Namespace) -> int:
    from benchmark.assets import AssetStore

    usage = {
        "fetch": "dmbench assets fetch NAME",
        "import": "dmbench assets import NAME PATH",
        "convert": "dmbench assets convert ringnet [OUT_DIR]",
    }.get(args.action)
    needs_path = args.action == "import"
    if usage and (not args.name or (needs_path and not args.path)):
        lacking = "NAME" if not args.name else "PATH"
        raise UsageError(f"`assets {args.action}` needs {lacking}; usage: {usage}")

    store = AssetStore()
    if args.action == "list":
        rows = []
        for asset in store:
            if asset.access == "package" and store._package_dir(asset) is None:
                status = "no package"
            elif store.present(asset.name):
                status = "local" if asset.kind == "dataset" else "ok"
            else:
                status = "missing"
            rows.append(
                {"name": asset.name, "kind": asset.kind, "access": asset.access}
                | {"files": len(asset.files), "status": status, "license": asset.license}
            )
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'name':28} {'kind':16} {'access':12} {'files':>6}  {'status':10} licence")
        for r in rows:
            print(
                f"{r['name']:28} {r['kind']:16} {r['access']:12} {r['files']:>6}  "
                f"{r['status']:10} {r['license'][:50]}"
            )
        return 0
    if args.action == "verify":
        # Exit 1 on any FAIL. Without a NAME an asset that is simply not installed (often a
        # registration-only one) prints as MISSING with how to get it and does not fail the
        # command; an asset asked for by NAME must be there.
        names = [args.name] if args.name else [a.name for a in store if a.kind != "dataset"]
        failed = 0
        for name in names:
            report = store.verify(name)
            status = "FAIL" if report.status == "MISSING" and args.name else report.status
            extra = (
                f" (trusted on first use: {', '.join(report.trusted_on_first_use)})"
                if report.trusted_on_first_use
                else ""
            )
            summary = {
                "OK": report.where,
                "FAIL": "does not verify",
                "MISSING": "not found locally",
            }[report.status]
            print(f"{status:4} {name}: {summary}{extra}")
            for problem in report.problems:
                print(f"     {problem}")
            if report.status == "MISSING":
                print(f"     to obtain: {store[name].obtain_hint()}")
            failed += status == "FAIL"
        return 1 if failed else 0
    if args.action == "fetch":
        path = store.fetch(args.name)
        print(f"{args.name}: {path}")
        return 0
    if args.action == "import":
        path = store.import_path(args.name, Path(args.path))
        print(f"imported {args.name} into {path}")
        return 0
    if args.action == "convert":
        if args.name != "ringnet":
            raise UsageError("only 'ringnet' is converted (to ONNX, for ringnet-onnx)")
        from benchmark.pipeline.mask.ringnet import convert_to_onnx

        path, record = convert_to_onnx(store, Path(args.path) if args.path else None)
        print(
            f"converted ringnet to {path} (sha256 {record['onnx_sha256'][:12]}…); TensorFlow "
            f"and onnxruntime vertices differ by at most {record['max_abs_vertex_diff_m']:.1e} m"
        )
        return 0
    raise UsageError(f"unknown assets action {args.action}")


def cmd_data(args: argparse.Namespace) -> int:
    from benchmark.assets import AssetStore
    from benchmark.datasets import fetch_dataset, resolve_dataset

    store = AssetStore()
    if args.action == "fetch":
        path = fetch_dataset(store, args.name, args.identities, args.seed)
        print(f"{args.name}: {path}")
        return 0
    dataset = resolve_dataset(args.name, store)
    sessions = dataset.sessions()
    info = {
        "name": dataset.name,
        "root": str(dataset.root),
        "layout": dataset.layout,
        "identities": len(sessions),
        "sessions": sum(len(v) for v in sessions.values()),
        "frames": len(dataset.frames),
        "identities_with_2_sessions": sum(len(v) >= 2 for v in sessions.values()),
        "layout_problems": len(dataset.problems),
    }
    if dataset.layout == "youtube-faces":  # <Name>.labeled_faces.txt boxes
        labelled = dataset.labelled_frames()
        info["labelled_frames"] = labelled
        info["unlabelled_frames"] = len(dataset.frames) - labelled
    print(json.dumps(info, indent=2))
    return 0


def cmd_cache(args: argparse.Namespace) -> int:
    from benchmark.cache import Cache

    cache = Cache()
    if args.action == "info":
        stats = cache.stats()
        if args.json:
            info = {"root": str(stats.root), "entries": stats.entries, "bytes": stats.bytes}
            info |= {"unreachable": stats.unreachable, "by_stage": stats.by_stage}
            info |= {"disk_bytes_by_stage": stats.disk_by_stage}
            print(json.dumps(info, indent=2))
            return 0
        print(f"cache: {stats.root}\nentries: {stats.entries} ({stats.bytes / 1e6:.1f} MB)")
        for stage, count in stats.by_stage.items():
            used = stats.disk_by_stage.get(stage, 0) / 1e6
            print(f"  {stage}: {count} entries, {used:.1f} MB on the disk")
        print(
            f"unreachable: {stats.unreachable} (computed by code or libraries other than "
            "those installed; `dmbench cache prune` removes them)"
        )
        return 0
    if args.action == "prune":
        print(f"pruned {cache.prune()} unreachable entries from {cache.root}")
        return 0
    if args.stage is None and not args.yes:
        what = f"every cached intermediate in {cache.root}"
        if not sys.stdin.isatty():
            raise UsageError(f"`cache clear` would delete {what}; add --yes to confirm")
        try:
            answer = input(f"Delete {what}? [y/N] ")
        except EOFError:  # Ctrl-D: no
            answer = ""
        if answer.strip().lower() not in {"y", "yes"}:
            print("nothing removed")
            return 1
    print(f"removed {cache.clear(args.stage)} entries from {cache.root}")
    return 0


def _prep(args: argparse.Namespace, dataset_spec: str, out: Path):
    from benchmark.assets import AssetStore
    from benchmark.cache import Cache
    from benchmark.datasets import resolve_dataset
    from benchmark.imageio import ensure_folder
    from benchmark.pipeline.prep.stage import PrepParams, PrepStage, run_prep
    from benchmark.pipeline.recognize.pairing import MIN_SESSIONS

    store = AssetStore()
    dataset = resolve_dataset(dataset_spec, store)
    if args.identities:
        dataset = dataset.subset(args.identities, seed=args.seed, min_sessions=MIN_SESSIONS)
    params = PrepParams(
        min_best_score=args.min_best_score,
        other_face_score=args.other_face_score,
        max_yaw=args.max_yaw,
        max_pitch=args.max_pitch,
        seed=args.seed,
        reference_quirks=args.reference_quirks,
    )
    stage = PrepStage.from_names(
        args.detector,
        args.pose,
        store=store,
        device=DevicePlan.parse(args.device),
        params=params,
        cache=Cache(enabled=not args.no_cache),
    )
    with _executor(args) as executor:  # its options are checked before a folder is made
        # Made (and found writable) only once the data and the models are known to be usable.
        dataset.check_outside(out)
        out = ensure_folder(out, "--out folder")
        lazy = args.selection == "lazy"
        run = run_prep(
            dataset, out, stage, progress=progress_bars(args.quiet), lazy=lazy, executor=executor
        )
    counts = run.counts()
    print(
        f"prep {stage.backend} on {dataset.name} ({len(dataset.identities())} identities, "
        f"{len(dataset.frames)} frames): kept {counts.get('kept', 0)}, dropped "
        f"{counts.get('dropped', 0)}, errors {counts.get('error', 0)}; "
        f"{len(run.selections)} sessions selected; {run.seconds:.1f} s "
        f"(cache hits {stage.cache.hits}) → {out}"
    )
    for reason, count in list(run.reasons().items())[:8]:
        print(f"  {count:6d}  {reason}")
    return run


def cmd_prep(args: argparse.Namespace) -> int:
    run = _prep(args, args.dataset, Path(args.out))
    if not run.counts().get("kept"):
        raise DmbenchError(
            f"{run.out_dir}: nothing usable: no frame of {len(run.results)} was kept "
            "(their reasons are in frames.csv)"
        )
    return 0


def _mask(args: argparse.Namespace, run_dir: Path) -> None:
    from benchmark.assets import AssetStore
    from benchmark.cache import Cache
    from benchmark.datasets import single_frame_layout
    from benchmark.imageio import write_bytes_atomic
    from benchmark.leakage import probe_mask_run
    from benchmark.pipeline.mask.stage import MaskStage, run_mask
    from benchmark.pipeline.prep.stage import read_layout, read_selection
    from benchmark.report import contact_sheet

    common = {
        "store": AssetStore(),
        "device": DevicePlan.parse(args.device),
        "cache": Cache(enabled=not args.no_cache),
    }
    # The prep run's tables are read before anything is written: a bad one writes nothing.
    if not (run_dir / "frames.csv").exists():
        raise DmbenchError(
            f"{run_dir}: no frames.csv; run `dmbench prep DATASET --out {run_dir}` first"
        )
    layout, selections = read_layout(run_dir), read_selection(run_dir)
    chosen = [o for o in ("control", "anonymizer", "anonymized") if getattr(args, o)]
    if len(chosen) > 1:
        raise UsageError(f"choose one of --{' or --'.join(chosen)}, not {len(chosen)}")
    stage = MaskStage.from_names(
        args.reconstruct,
        args.render,
        args.cut,
        control=args.control,
        anonymizer=args.anonymizer,
        anonymized=args.anonymized,
        **common,
    )
    with _executor(args) as executor:
        run = run_mask(run_dir, stage, progress=progress_bars(args.quiet), executor=executor)
    counts = run.counts()
    print(
        f"mask {stage.backend}: masked {counts.get('masked', 0)}, failed "
        f"{counts.get('failed', 0)} of {len(run.frames)} crops; {run.seconds:.1f} s "
        f"(cache hits {stage.cache.hits}) → {run.out_dir}"
    )
    for reason, count in list(run.reasons().items())[:8]:
        print(f"  {count:6d}  {reason}")
    if not counts.get("masked"):
        raise DmbenchError(
            f"{run.out_dir}: nothing usable: no crop of {len(run.frames)} was masked "
            "(their reasons are in masks.csv)"
        )
    sheet = contact_sheet(run_dir, run, run.out_dir / "contact_sheet.png")
    print(f"contact sheet: {sheet}")
    protocol = "cross-session" if single_frame_layout(layout) else "same-session"
    summary = probe_mask_run(run, selections, protocol, args.seed)
    if summary is not None:
        print(f"geometry-only re-identification ({protocol}): {summary.describe()}")
        write_bytes_atomic(
            run.out_dir / "leakage_probe.json",
            json.dumps(
                {"protocol": protocol, **summary.__dict__}, indent=2, allow_nan=False
            ).encode(),
        )


def cmd_mask(args: argparse.Namespace) -> int:
    _mask(args, Path(args.run_dir))
    return 0


def _study(args: argparse.Namespace, profile, default_out: str):
    """What ``reproduce`` and ``evaluate`` share: the assets checked, the study run into
    ``--out`` (default ``default_out``). Returns the results and the folder."""
    from benchmark.assets import AssetStore
    from benchmark.study import StudyOptions, missing_assets, run_study

    store = AssetStore()
    missing = missing_assets(profile, store)
    if args.data:  # the data come from --data; every model must still be here
        missing = [name for name in missing if store[name].kind != "dataset"]
    if missing:
        raise DmbenchError(
            f"profile '{profile.name}' needs assets that are not available: "
            f"{', '.join(missing)}\n\n" + "\n\n".join(store[m].how_to_obtain() for m in missing)
        )
    out = Path(args.out or default_out)  # made by run_study once the data are known
    print(f"dmbench {__version__} {args.command}: profile '{profile.name}' → {out}")
    options = StudyOptions(
        data=args.data,
        identities=args.identities,
        device=args.device,
        use_cache=not args.no_cache,
        progress=progress_bars(args.quiet),
        lazy_selection=args.selection == "lazy",
        workers=args.workers,
        executor=args.executor,
        address=args.address,
        command=("dmbench", *sys.argv[1:]) if args.argv is None else ("dmbench", *args.argv),
        attacker_people=getattr(args, "attacker_people", None),
    )
    return run_study(profile, out, options, store), out


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Any anonymizer through the study's attacks: results.json, report and leaderboard."""
    from dataclasses import replace

    from benchmark.leaderboard import strongest_attacks, write_leaderboard
    from benchmark.report import write_report
    from benchmark.specs import load_profiles

    specs = [*(args.anonymizer or []), *(f"folder:{d}" for d in args.anonymized or [])]
    if not specs:
        raise UsageError("evaluate needs --anonymizer NAME or --anonymized DIR (one or more)")
    profile = replace(load_profiles()[args.profile], reconstruct=(), anonymizers=tuple(specs))
    if args.attacker_people < 0:
        raise UsageError(f"--attacker-people must be 0 or more, not {args.attacker_people}")
    if args.attacker_people:  # before the study, not after it: the attacker's people are here
        from benchmark.assets import AssetStore
        from benchmark.attacker import training_data

        training_data(AssetStore())
    results, out = _study(args, profile, "results/evaluate")
    report = write_report(results, out)
    files = write_leaderboard(results, out)
    print(f"\nresults: {out / 'results.json'}\nreport:  {report}\nleaderboard: {files['md']}")
    print(f"identities: {results.counts['draw']['outcome']}")
    print("strongest attack per anonymizer (rank-1, lower is better privacy):")
    for row in strongest_attacks(_leaderboard_rows(files["json"])):
        print(
            f"  {row['anonymizer']:44} {100 * row['rank1']:5.1f} % "
            f"[{100 * row['ci_low']:.1f}–{100 * row['ci_high']:.1f}]  chance "
            f"{100 * row['chance']:.2f} %, {row['attack']} ({row['alignment']}), "
            f"{row['embedder']}, n = {row['n']}"
        )
    return 0


def _leaderboard_rows(path: Path) -> list[dict[str, Any]]:
    return json.loads(Path(path).read_text())["rows"]


def cmd_reproduce(args: argparse.Namespace) -> int:
    """The main job: the whole study on a profile, its report, and its claims."""
    from benchmark.report import OUTCOME_WORDS, write_report
    from benchmark.specs import load_profiles
    from benchmark.study import load_results

    profile = load_profiles()[args.profile]
    results, out = _study(args, profile, f"results/{profile.name}")
    companions = tuple(
        load_results(out.parent / other / "results.json")
        for other in PAPER_TWINS.get(profile.name, ())
        if (out.parent / other / "results.json").exists()
    )
    report = write_report(results, out, companions)
    print(f"\nresults: {out / 'results.json'}\nreport:  {report}")
    print(f"identities: {results.counts['draw']['outcome']}")
    for embedder in profile.embedders:
        for scenario in ("Face2Face", "Overlay2Face", "Overlay2Overlay"):
            row = results.find(scenario, embedder)
            lo, hi = row["rank1_ci"]
            print(
                f"  {embedder:22} {scenario:16} rank-1 {100 * row['rank1']:5.1f} % "
                f"[{100 * lo:.1f}–{100 * hi:.1f}]  n = {row['n']}, chance "
                f"{100 * row['chance']:.2f} %"
            )
    for c in results.control_comparisons:
        if c["alignment"] == "photo" and c["mask"] == results.config["mask_sources"][0]:
            lo, hi = c["difference_ci"]
            print(
                f"  {c['embedder']:22} {c['scenario']:18} mask {100 * c['mask_rank1_all']:5.1f} %"
                f" vs {c['control'].split('+')[0]} {100 * c['control_rank1_all']:5.1f} %: "
                f"{100 * c['difference']:+.1f} points [{100 * lo:+.1f}, {100 * hi:+.1f}]"
            )
    print("claims:")
    failed = []
    for record in results.claims:  # judged once, by the study, and stored in results.json
        print(
            f"  [{OUTCOME_WORDS[record['outcome']].strip('*')}] {record['claim']} "
            f"({record['case']}): {record['measured']}"
        )
        if record["outcome"] == "fail":  # a recorded finding is "xfail", not a failure
            failed.append(f"{record['claim']} ({record['case']})")
    from benchmark.reproduction import RunNumbers, check

    # Against the numbers recorded for this size (`nox -s reproduce` asserts it in a test).
    print(f"reproduction: {check(RunNumbers.of(results)).message}")
    if failed:
        print(f"dmbench: {len(failed)} claim(s) do not hold: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def _listing(what: str) -> list[dict[str, Any]]:
    """What ``dmbench list WHAT`` shows, as records (read from the maps and TOML files
    only: listing backends imports none of them)."""
    from benchmark.specs import load_claims, load_profiles, load_scenarios

    if what == "backends":
        from benchmark.pipeline import all_registries

        rows = []
        for registry in all_registries():
            for name in registry.names():
                path = registry.path(name)
                rows.append(
                    {
                        "role": registry.role,
                        "name": name,
                        "default": name == registry.default,
                        "class": path.target if path else "(plug-in)",
                        "extra": path.extra if path else "",
                    }
                )
        return rows
    if what == "anonymizers":
        from benchmark.pipeline.mask.anonymizers import entry_points
        from benchmark.pipeline.mask.types import CONTROLS, RECONSTRUCTORS

        return (
            [
                {"name": n, "kind": "reconstruction", "source": RECONSTRUCTORS.path(n).target}
                for n in RECONSTRUCTORS.names()
            ]
            + [
                {"name": n, "kind": "control", "source": CONTROLS.path(n).target}
                for n in CONTROLS.names()
            ]
            + [
                {"name": n, "kind": "plugin", "source": ep.value}
                for n, ep in sorted(entry_points().items())
            ]
        )
    if what == "profiles":
        keys = ("name", "dataset", "identities", "protocol", "detector", "pose")
        return [
            {k: getattr(p, k) for k in keys}
            | {"reconstruct": list(p.reconstruct), "embedders": list(p.embedders)}
            | {"controls": list(p.controls), "description": " ".join(p.description.split())}
            for p in load_profiles().values()
        ]
    if what == "scenarios":
        return [
            {"name": s.name, "family": s.family, "query": s.query, "database": s.database}
            for s in load_scenarios()
        ]
    return [
        {"id": c.id, "profile": c.profile, "kind": c.kind, "min_n": c.min_n}
        | {"statement": c.statement, "citation": c.citation}
        for c in load_claims()
    ]


def cmd_list(args: argparse.Namespace) -> int:
    rows = _listing(args.what)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    columns = {
        "backends": ("role", "name", "default", "extra", "class"),
        "anonymizers": ("name", "kind", "source"),
        "profiles": ("name", "dataset", "identities", "protocol", "embedders"),
        "scenarios": ("name", "family", "query", "database"),
        "claims": ("id", "profile", "kind", "min_n", "statement"),
    }[args.what]
    cells = [[_cell(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip())
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    return 0


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else ""
    if isinstance(value, list):
        return ",".join(map(str, value))
    return "" if value is None else str(value)


def cmd_report(args: argparse.Namespace) -> int:
    """report.md (and its figures) again from a finished results.json; nothing is re-run."""
    from benchmark.report import write_report
    from benchmark.study import load_results

    path = Path(args.results)
    if path.is_dir():  # a run folder: its results.json
        path = path / "results.json"
    if not path.exists():
        raise DmbenchError(f"{path}: no such results file (written by `dmbench reproduce`)")
    if not path.is_file():
        raise DmbenchError(f"{path}: not a regular file (a pipe, device or socket), not read")
    try:
        results = load_results(path)
    except (ValueError, TypeError, KeyError) as exc:
        raise DmbenchError(f"{path}: not a dmbench results.json ({exc})") from exc
    companions = tuple(
        load_results(path.parent.parent / other / "results.json")
        for other in PAPER_TWINS.get(results.profile, ())
        if (path.parent.parent / other / "results.json").exists()
    )
    print(f"report: {write_report(results, path.parent, companions)}")
    return 0


# The original exactly, and the same study corrected: each report shows the other's claims.
PAPER_TWINS = {"paper": ("paper-fixed",), "paper-fixed": ("paper",)}


DEVICE_HELP = (
    "cpu (default), cuda, or cuda with per-role exceptions, e.g. cuda,detector=cpu "
    "or embedder:dlib-resnet=cpu for one backend (roles: detector, pose, reconstruct, "
    "render, cut, embedder). Under cuda, CPU-only "
    "backends run on the CPU by design; any other that cannot load CUDA is an error."
)


def _device_spec(spec: str) -> str:
    try:
        return str(DevicePlan.parse(spec))
    except DmbenchError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _executor(args: argparse.Namespace) -> Executor:
    """The executor that --workers, --executor, --address and --device ask for."""
    return make_executor(
        args.workers,
        executor=args.executor,
        address=args.address,
        device=DevicePlan.parse(args.device),
    )


def _workers(value: str) -> int:
    try:
        return check_workers(int(value))
    except (ValueError, UsageError) as exc:
        raise argparse.ArgumentTypeError(f"{value!r}: {exc}") from None


def _whole(minimum: int, what: str = "a whole number"):
    """An argparse type: an integer of at least ``minimum``."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not {what}") from None
        if number < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, not {number}")
        return number

    return parse


def _seed(value: str) -> int:
    number = _whole(0, "a seed (a whole number ≥ 0)")(value)
    if number >= 2**32:
        raise argparse.ArgumentTypeError(f"a seed must be below 2**32, not {number}")
    return number


def _between(low: float, high: float):
    """An argparse type: a finite number from ``low`` to ``high`` (NaN and inf refused:
    a NaN threshold compares false and switches its filter off)."""

    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number") from None
        if not math.isfinite(number) or not low <= number <= high:
            raise argparse.ArgumentTypeError(
                f"must be a finite number from {low:g} to {high:g}, not {value}"
            )
        return number

    return parse


class _Parser(argparse.ArgumentParser):
    """Usage errors as every other error: one line, ``dmbench: error: ...``, exit 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("dmbench").strip()
        where = f"{command}: " if command else ""
        self.exit(2, f"dmbench: error: {where}{message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="dmbench", description=__doc__)
    parser.add_argument("--version", action="version", version=f"dmbench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    assets = sub.add_parser(
        "assets", help="list, verify, fetch, import or convert models and meshes"
    )
    assets.add_argument("action", choices=["list", "verify", "fetch", "import", "convert"])
    assets.add_argument("name", nargs="?", help="asset name (needed by fetch, import, convert)")
    assets.add_argument(
        "path", nargs="?", help="import: the file or folder to import; convert: output folder"
    )
    assets.add_argument("--json", action="store_true", help="list: print JSON records")
    assets.set_defaults(func=cmd_assets)

    data = sub.add_parser("data", help="fetch or describe a dataset")
    data.add_argument("action", choices=["fetch", "info"])
    data.add_argument("name", help="lfw, youtube-faces, or a folder")
    data.add_argument(
        "--identities",
        type=_whole(1),
        default=None,
        help="fetch only this many identities (with ≥ 2 photos), drawn with --seed",
    )
    data.add_argument("--seed", type=_seed, default=42)
    data.set_defaults(func=cmd_data)

    cache = sub.add_parser(
        "cache",
        help="inspect, prune (entries of older code) or clear the cache of intermediates",
    )
    cache.add_argument("action", choices=["info", "prune", "clear"])
    cache.add_argument(
        "--stage", default=None, choices=STAGES, help="clear only this stage's entries"
    )
    cache.add_argument(
        "--yes", action="store_true", help="clear everything without asking (scripts, CI)"
    )
    cache.add_argument("--json", action="store_true", help="info: print JSON")
    cache.set_defaults(func=cmd_cache)

    def add_workers(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--workers",
            type=_workers,
            default=None,
            metavar="N",
            help="processes for the per-item work, each loading the models once (default: "
            "$DMBENCH_WORKERS, else every core; under --device cuda one per visible GPU; "
            "with --executor ray one per CPU, or GPU, of the cluster); results do not "
            "depend on N",
        )
        p.add_argument(
            "--executor",
            default="local",
            choices=EXECUTORS,
            help="local: a process pool on this machine; ray: actors on a Ray cluster "
            "(pip install 'dmbench[ray]'; the cache, data and assets on paths every node "
            "can reach)",
        )
        p.add_argument(
            "--address",
            default=None,
            metavar="ADDR",
            help="with --executor ray: the cluster to join (host:port, or 'auto' for the "
            "one `ray start` made here); default: a new Ray runtime on this machine",
        )

    def add_prep_options(p: argparse.ArgumentParser) -> None:
        from benchmark.pipeline.prep.stage import PrepParams
        from benchmark.pipeline.prep.types import DETECTORS, POSES

        p.add_argument("--detector", default=DETECTORS.default, choices=DETECTORS.names())
        p.add_argument("--pose", default=POSES.default, choices=POSES.names())
        p.add_argument("--device", default="cpu", type=_device_spec, help=DEVICE_HELP)
        add_workers(p)
        p.add_argument(
            "--identities",
            type=_whole(1),
            default=None,
            help="draw this many identities (seeded) instead of all",
        )
        p.add_argument("--seed", type=_seed, default=42)
        defaults = PrepParams()
        p.add_argument(
            "--min-best-score",
            type=_between(0, 1),
            default=defaults.min_best_score,
            help="keep a frame only if its best face scores above this (default: the "
            "detector's calibrated value in benchmark/specs/detectors.toml; the original's "
            "0.9 for retinaface-caffe)",
        )
        p.add_argument(
            "--other-face-score",
            type=_between(0, 1),
            default=defaults.other_face_score,
            help="... and exactly one face scores at least this (default: the detector's "
            "calibrated value; the original's 0.1 for retinaface-caffe)",
        )
        p.add_argument("--max-yaw", type=_between(0, 180), default=defaults.max_yaw)
        p.add_argument("--max-pitch", type=_between(0, 180), default=defaults.max_pitch)
        p.add_argument(
            "--selection",
            choices=["exhaustive", "lazy"],
            default="exhaustive",
            help="lazy: per video, visit frames in a seeded random order and stop at two "
            "kept ones (same distribution, far fewer model calls)",
        )
        p.add_argument(
            "--reference-quirks",
            action="store_true",
            help="also drop frames the original dropped by its crash on boxes "
            "that leave the image (off: we zero-pad)",
        )
        p.add_argument("--no-cache", action="store_true", help="neither read nor write the cache")
        p.add_argument("--quiet", action="store_true", help="no progress bar")

    def add_mask_options(p: argparse.ArgumentParser) -> None:
        from benchmark.pipeline.mask.types import CONTROLS, CUTS, RECONSTRUCTORS, RENDERERS

        p.add_argument(
            "--reconstruct", default=RECONSTRUCTORS.default, choices=RECONSTRUCTORS.names()
        )
        p.add_argument("--render", default=RENDERERS.default, choices=RENDERERS.names())
        p.add_argument("--cut", default=CUTS.default, choices=CUTS.names())
        p.add_argument(
            "--control",
            default=None,
            choices=CONTROLS.names(),
            help="instead of a reconstruction, fill the cut's region with a control: "
            "blank (flat grey), blur (σ 8 px), pixelate (16 px blocks) or blackout",
        )
        p.add_argument(
            "--anonymizer",
            default=None,
            metavar="NAME",
            help="any anonymizer: a reconstruction or control above, an installed plug-in "
            "(`dmbench list anonymizers`) or module:callable (README: Your own anonymizer)",
        )
        p.add_argument(
            "--anonymized",
            default=None,
            metavar="DIR",
            help="images anonymized elsewhere, in a folder that mirrors the run's crops/ "
            "(DIR/<identity>/<session>/<frame>_prep.png; an optional <frame>_prep.region.png "
            "beside one gives the region it changed, else the cut's region)",
        )

    mask = sub.add_parser("mask", help="3D-reconstruct, render and cut every selected crop")
    mask.add_argument("run_dir", help="a folder written by `dmbench prep`")
    mask.add_argument("--device", default="cpu", type=_device_spec, help=DEVICE_HELP)
    add_workers(mask)
    mask.add_argument("--seed", type=_seed, default=42)
    mask.add_argument("--no-cache", action="store_true")
    mask.add_argument("--quiet", action="store_true")
    add_mask_options(mask)
    mask.set_defaults(func=cmd_mask)

    prep = sub.add_parser("prep", help="detect, filter by pose, crop and select frames")
    prep.add_argument("dataset", help="a dataset folder, or lfw / youtube-faces")
    prep.add_argument("--out", required=True, help="run folder to write")
    add_prep_options(prep)
    prep.set_defaults(func=cmd_prep)

    from benchmark.specs import load_profiles

    def add_study_options(p: argparse.ArgumentParser, out_help: str) -> None:
        p.add_argument("--profile", default="lfw", choices=sorted(load_profiles()))
        p.add_argument("--data", default=None, help="dataset folder (default: the profile's)")
        p.add_argument("--out", default=None, help=out_help)
        p.add_argument(
            "--identities",
            type=_whole(2),  # a gallery of one scores 100 % by construction
            default=None,
            help="score this many VALID identities (at least 2), drawing (seeded) until that "
            "many are valid or the data run out (default: the profile's: lfw 555, paper all)",
        )
        p.add_argument(
            "--selection",
            choices=["exhaustive", "lazy"],
            default="exhaustive",
            help="lazy: per video, stop at the first two frames that pass prep's filters in "
            "a seeded random order (same distribution of pairs, far fewer model calls)",
        )
        p.add_argument("--device", default="cpu", type=_device_spec, help=DEVICE_HELP)
        add_workers(p)
        p.add_argument("--no-cache", action="store_true")
        p.add_argument("--quiet", action="store_true")

    reproduce = sub.add_parser("reproduce", help="run the whole study on a profile")
    add_study_options(reproduce, "results folder (results/<profile>)")
    reproduce.set_defaults(func=cmd_reproduce)

    compare = sub.add_parser(
        "compare",
        help="every figure two runs' results.json differ in, and the identities that changed; "
        "exit 1 beyond tolerance (a verdict changed, or a rank-1 moved by more than 1 hit)",
    )
    compare.add_argument("a", metavar="A.json", help="results.json of the reference run")
    compare.add_argument("b", metavar="B.json", help="results.json of the run to compare")
    compare.set_defaults(func=cmd_compare)

    evaluate = sub.add_parser(
        "evaluate",
        help="score any anonymizer with the study's attacks: results, report, leaderboard",
    )
    evaluate.add_argument(
        "--anonymizer",
        action="append",
        metavar="NAME",
        help="a built-in (mediapipe-mesh, sfm-eos, blur, ...), an installed plug-in "
        "(`dmbench list anonymizers`) or module:callable; repeat to rank several",
    )
    evaluate.add_argument(
        "--anonymized",
        action="append",
        metavar="DIR",
        help="images anonymized elsewhere, mirroring the run's prep/crops/ (see `dmbench mask`)",
    )
    evaluate.add_argument(
        "--attacker-people",
        type=_whole(0),
        default=1000,
        metavar="N",
        help="train the adaptive attacker on N identities of lfw-train (one photo each, "
        "none in the evaluation; default 1000, at most 4069); 0: no adaptive attacker",
    )
    add_study_options(evaluate, "results folder (results/evaluate)")
    evaluate.set_defaults(func=cmd_evaluate)

    listing = sub.add_parser("list", help="backends, anonymizers, profiles, scenarios or claims")
    listing.add_argument(
        "what", choices=["backends", "anonymizers", "profiles", "scenarios", "claims"]
    )
    listing.add_argument("--json", action="store_true", help="print JSON records")
    listing.set_defaults(func=cmd_list)

    report = sub.add_parser("report", help="render report.md again from a results.json")
    report.add_argument(
        "results", help="a results.json written by `dmbench reproduce`, or its run folder"
    )
    report.set_defaults(func=cmd_report)
    return parser


def cmd_compare(args: argparse.Namespace) -> int:
    """Every figure that differs between two runs; exit 1 beyond tolerance."""
    from benchmark.reproduction import RunNumbers, compare
    from benchmark.study import load_results

    numbers = [RunNumbers.of(load_results(Path(p))) for p in (args.a, args.b)]
    if (numbers[0].profile, numbers[0].identities) != (numbers[1].profile, numbers[1].identities):
        print(
            f"note: different runs ({numbers[0].profile} n = {numbers[0].identities} vs "
            f"{numbers[1].profile} n = {numbers[1].identities})"
        )
    comparison = compare(*numbers)
    print(f"A: {args.a}\nB: {args.b}\n")
    print(comparison.table())
    return 0 if comparison.within_tolerance else 1


def main(argv: list[str] | None = None) -> int:
    one_line_warnings()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = argv  # the command line as given (None: sys.argv), for results.json
    try:
        from benchmark.settings import check_yes_no_variables

        check_yes_no_variables()
        return args.func(args)
    except DmbenchError as exc:
        # One line, whatever the message: its lines (an asset's how-to-obtain) joined.
        message = " ".join(line.strip() for line in str(exc).splitlines() if line.strip())
        print(f"dmbench: error: {message}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("dmbench: interrupted; finished work is in the cache", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `dmbench list backends | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


def entry() -> None:
    """The ``dmbench`` command: ``main`` with native libraries' log lines filtered from the
    console (benchmark/console.py)."""
    from benchmark.console import quiet_native_logs

    quiet_native_logs()
    sys.exit(main())


if __name__ == "__main__":
    entry()
