"""``edgekit fleet``: every device on a broker at once."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from edgekit.cli.help import EdgekitCommand
from edgekit.cli.output import emit_json, print_wide, stdout
from edgekit.errors import ConfigError, require_extra

app = typer.Typer(
    help="Every device on a broker: their state, from what each keeps retained there.", no_args_is_help=True
)
COLUMNS = (
    "device", "status", "model", "sha256", "fps", "p99 ms", "buffered", "last seen", "deploy", "edgekit", "profile",
)  # fmt: skip


# The options the fleet's commands share (typer reads one Option object in as many commands as use it).
BROKER = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="mqtt://HOST:PORT.")
DEVICES = typer.Option(None, "--devices", help="Comma-separated device ids.")
EVERYONE = typer.Option(False, "--all", help="Every edgekit device online on the broker.")
KEY = typer.Option(..., "--key", help="The deployment private key (edgekit fleet keygen).")
USERNAME = typer.Option(
    None, "--username", help="Broker user (password from EDGEKIT_MQTT_PASSWORD or --password-file)."
)
PASSWORD_FILE = typer.Option(None, "--password-file", help="File holding the broker password.")
AS_JSON = typer.Option(False, "--json", help="Print one JSON document on stdout.")


def _login(username: str | None, password_file: Path | None) -> tuple[str, str | None] | None:
    """The broker login these commands use, as `edgekit run` takes it: never a password on the command line."""
    import os

    if username is None:
        return None
    if password_file is not None:
        try:
            return username, password_file.read_text().splitlines()[0]
        except (OSError, IndexError) as exc:
            raise ConfigError(f"cannot read the password from {password_file}") from exc
    return username, os.environ.get("EDGEKIT_MQTT_PASSWORD") or None


def _table(rows: list[dict[str, Any]]) -> Table:
    from edgekit.fleet.status import summary_line

    table = Table(title=summary_line(rows))
    for column in COLUMNS:
        table.add_column(column)

    def shown(value: Any, suffix: str = "") -> str:
        return "—" if value is None else f"{value:g}{suffix}" if isinstance(value, float) else f"{value}{suffix}"

    for r in rows:
        table.add_row(
            r["device_id"], r["status"], shown(r["model"]), (r["sha256"] or "—")[:12], shown(r["fps"]),
            shown(r["p99_ms"]), shown(r["buffered"]), shown(r["last_seen_s"], " s ago"), shown(r["deploy"]),
            shown(r["edgekit"]), shown(r["profile"]),
        )  # fmt: skip
    return table


@app.command("status", cls=EdgekitCommand)
def status(
    broker: str = BROKER,
    as_json: bool = AS_JSON,
    watch: bool = typer.Option(False, "--watch", help="Keep the table live until Ctrl-C."),
    wait: float = typer.Option(5.0, "--wait", help="Seconds to wait for the broker's retained messages."),
    username: str = USERNAME,
    password_file: Path = PASSWORD_FILE,
) -> None:
    """Every device: online, model, fps, p99, buffered, last seen — from retained topics alone."""
    require_extra("paho", "device")
    from edgekit.daemon.broker_address import BrokerAddress
    from edgekit.daemon.mqtt_protocol import connect_with_fallback, new_client
    from edgekit.fleet.status import FleetView

    address = BrokerAddress.parse(broker)
    if wait <= 0:
        raise ConfigError(f"--wait must be more than 0 seconds, got {wait:g}")
    view = FleetView()
    login = _login(username, password_file)

    def make_client(protocol: int) -> Any:
        client = new_client(protocol)
        if login is not None:
            client.username_pw_set(*login)
        client.on_connect = view.on_connect
        client.on_subscribe = view.on_subscribe
        client.on_message = view.on_message
        return client

    client = connect_with_fallback(make_client, address.host, address.port)
    try:
        view.wait_settled(wait)
        unfinished = view.unfinished_rollouts()
        if as_json:
            emit_json({"broker": f"{address.host}:{address.port}", "devices": view.rows(), "rollouts": unfinished})
        elif not watch:
            print_wide(_table(view.rows()), min_width=150)
            for line in rollout_lines(unfinished):
                stdout.print(line, markup=False, highlight=False)
        else:
            from rich.live import Live

            with Live(_table(view.rows()), console=stdout, refresh_per_second=2) as live:
                while True:
                    time.sleep(1.0)
                    live.update(_table(view.rows()))
    except KeyboardInterrupt:
        pass
    finally:
        client.disconnect()
        client.loop_stop()


def rollout_lines(unfinished: list[dict[str, Any]]) -> list[str]:
    """One line per rollout left half-applied: what it reached and the two ways on."""
    lines = []
    for record in unfinished:
        devices = record.get("devices") or []
        active = [d["device_id"] for d in devices if d["state"] == "active"]
        left = [d["device_id"] for d in devices if d["state"] == "not offered"]
        lines.append(
            f"rollout {record.get('deployment')} of {record.get('artifact')} was {record.get('state')}: "
            f"{len(active)} of {len(devices)} devices active, {len(left)} not offered; run the same "
            "`edgekit deploy` again to finish it"
            + (f", or `edgekit rollback --devices {','.join(active)}` to undo it" if active else "")
        )
    return lines


@app.command("keygen", cls=EdgekitCommand)
def keygen(
    out: Path = typer.Option(..., "--out", help="Private key file to write; its public key goes beside it (.pub)."),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
) -> None:
    """A deployment key pair: sign with the private key, give devices the .pub (edgekit run --trust-key)."""
    from edgekit.daemon.signing import generate_key_pair, key_id

    private, public = generate_key_pair(out, force=force)
    stdout.print(f"wrote {private} (keep it on the deploying machine) and {public} (key {key_id(public.read_bytes())})")


def _targets(deployer: Any, devices: str | None, everyone: bool) -> list[str]:
    if bool(devices) == everyone:
        raise ConfigError("name the devices with --devices ID,ID… or pass --all")
    known = {row["device_id"]: row for row in deployer.view.rows()}
    if everyone:
        chosen = [name for name, row in known.items() if row["online"] and row["edgekit"]]
        if not chosen:
            raise ConfigError("no edgekit device is online on this broker", hint="see `edgekit fleet status`")
        return chosen
    chosen = [d.strip() for d in (devices or "").split(",") if d.strip()]
    unknown = [d for d in chosen if d not in known]
    if unknown:
        raise ConfigError(f"no device {unknown[0]!r} on this broker", hint="see `edgekit fleet status` for their ids")
    return chosen


def _report(result: dict[str, Any], as_json: bool, title: str) -> None:
    if as_json:
        emit_json(result)
    else:
        table = Table(title=title)
        table.add_column("device")
        table.add_column("state")
        for row in result["devices"]:
            table.add_row(row["device_id"], row["state"])
        print_wide(table, min_width=80)
    _raise_unfinished(result)


def _raise_unfinished(result: dict[str, Any]) -> None:
    """Exit 18 with the first device that did not finish, after every device's state was printed."""
    from edgekit.errors import DeploymentError

    if not result["complete"]:
        failed = [r for r in result["devices"] if r["state"] not in ("active", "rolled back", "benched")]
        first = f"{failed[0]['device_id']}: {failed[0]['state']}" if failed else "incomplete"
        stopped = f" (stopped: {result['aborted']})" if result.get("aborted") else ""
        raise DeploymentError(f"{len(failed)} of {len(result['devices'])} devices did not finish; {first}{stopped}")


@app.command("bench", cls=EdgekitCommand)
def bench(
    artifact: Path = typer.Argument(..., help="The model every device times (.tflite, .onnx, .xml)."),
    broker: str = BROKER,
    devices: str = DEVICES,
    everyone: bool = EVERYONE,
    key: Path = KEY,
    runs: int = typer.Option(100, "--runs", help="Timed calls on each device."),
    warmup: int = typer.Option(10, "--warmup", help="Untimed calls first."),
    threads: int = typer.Option(1, "--threads", help="Threads the model runs with on each device."),
    paused: bool = typer.Option(
        False, "--paused/--between-frames", help="Pause the camera's inference while timing (faster; frames skipped)."
    ),
    record: Path = typer.Option(
        None, "--record", metavar="FILE", help="Append what the devices measured (for edgekit profiles refit)."
    ),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds the devices may take."),
    username: str = USERNAME,
    password_file: Path = PASSWORD_FILE,
    as_json: bool = AS_JSON,
) -> None:
    """Every device times a model itself, beside what its profile predicts; --record keeps the runs."""
    require_extra("paho", "device")
    import tempfile

    from edgekit.daemon.bundle import build_bundle
    from edgekit.daemon.signing import Signer
    from edgekit.fleet.bench import fleet_bench
    from edgekit.fleet.deployer import open_deployer

    if runs < 1 or warmup < 0 or threads < 1 or timeout <= 0:
        raise ConfigError("--runs and --threads must be at least 1, --warmup 0 or more, --timeout more than 0")
    if record is not None:
        from edgekit.predict.profiles.measurements import check_record_file

        check_record_file(record)
    signer = Signer(key)
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as folder:
        bundle = build_bundle(artifact, Path(folder))
        deployer = open_deployer(broker, _login(username, password_file))
        try:
            result = fleet_bench(
                deployer, bundle, _targets(deployer, devices, everyone), signer, runs=runs, warmup=warmup,
                threads=threads, paused=paused, timeout_s=timeout, progress=lambda line: print(line, file=sys.stderr),
            )  # fmt: skip
        finally:
            deployer.close()
    records = [row["bench"]["record"] for row in result["devices"] if row["bench"] and row["bench"]["record"]]
    if record is not None:
        from edgekit.predict.profiles.measurements import RecordedRun, append_runs

        if records:
            append_runs(record, [RecordedRun.model_validate(r) for r in records])
            print(f"recorded {len(records)} run{'s' if len(records) > 1 else ''} in {record}", file=sys.stderr)
        else:
            print(f"nothing recorded in {record}: no device's profile predicted its run", file=sys.stderr)
    if as_json:
        emit_json(result)
    else:
        table = Table(title=f"{artifact.name}: timed on each device")
        for column in ("device", "state", "profile", "mode", "p50 ms", "p99 ms", "predicted ms", "error"):
            table.add_column(column)
        for row in result["devices"]:
            b = row["bench"] or {}
            m, p = b.get("measured") or {}, b.get("predicted") or {}
            error = b.get("error_pct")
            table.add_row(
                row["device_id"], row["state"], str(b.get("profile") or "—"), str(b.get("mode") or "—"),
                f"{m['p50_ms']:.3f}" if m else "—", f"{m['p99_ms']:.3f}" if m else "—",
                f"{p['latency_ms']:.3f}" if p else "—", f"{error:+.1f} %" if error is not None else "—",
            )  # fmt: skip
        print_wide(table, min_width=100)
    _raise_unfinished(result)


def deploy(
    artifact: Path = typer.Argument(..., help="The model to deploy (.tflite, .onnx, .xml), its manifest beside it."),
    broker: str = BROKER,
    devices: str = DEVICES,
    everyone: bool = EVERYONE,
    key: Path = KEY,
    canary: int = typer.Option(0, "--canary", help="Devices that get it first; the rest wait until they are fine."),
    max_failures: str = typer.Option("0", "--max-failures", help="Stop at this many failures (a count or N%)."),
    settle: float = typer.Option(10.0, "--settle", help="Seconds the canaries must keep their fps and p99."),
    max_slowdown: float = typer.Option(0.2, "--max-slowdown", help="How much slower a canary may get (0.2: 20 %)."),
    timeout: float = typer.Option(300.0, "--timeout", help="Seconds each wave may take."),
    username: str = USERNAME,
    password_file: Path = PASSWORD_FILE,
    as_json: bool = AS_JSON,
) -> None:
    """Send a model to devices over MQTT: checked on each device, swapped between two frames."""
    require_extra("paho", "device")
    import tempfile

    from edgekit.daemon.bundle import build_bundle
    from edgekit.daemon.signing import Signer
    from edgekit.fleet.deploy import parse_max_failures, rollout
    from edgekit.fleet.deployer import deployer_will, new_deployment_id, open_deployer

    if canary < 0:
        raise ConfigError(f"--canary must be 0 or more, got {canary}")
    if timeout <= 0 or settle < 0 or not 0 <= max_slowdown:
        raise ConfigError("--timeout must be more than 0, --settle and --max-slowdown 0 or more")
    signer = Signer(key)
    deployment = new_deployment_id()
    with tempfile.TemporaryDirectory(prefix="edgekit-deploy-") as folder:
        bundle = build_bundle(artifact, Path(folder))
        # The rollout's record shows it interrupted if this client vanishes.
        deployer = open_deployer(broker, _login(username, password_file), deployer_will(bundle.sha256, deployment))
        try:
            targets = _targets(deployer, devices, everyone)
            limit = parse_max_failures(max_failures, len(targets))
            result = rollout(
                deployer, bundle, targets, signer, canary=canary, max_failures=limit, settle_s=settle,
                max_slowdown=max_slowdown, timeout_s=timeout, progress=lambda line: print(line, file=sys.stderr),
                deployment=deployment,
            )  # fmt: skip
        finally:
            deployer.close()
    _report(result, as_json, f"{artifact.name}: deployment {result['deployment']}")


def rollback(
    broker: str = BROKER,
    devices: str = DEVICES,
    everyone: bool = EVERYONE,
    key: Path = KEY,
    timeout: float = typer.Option(120.0, "--timeout", help="Seconds the devices may take."),
    username: str = USERNAME,
    password_file: Path = PASSWORD_FILE,
    as_json: bool = AS_JSON,
) -> None:
    """Return devices to the model they ran before their last deployment."""
    require_extra("paho", "device")
    from edgekit.daemon.signing import Signer
    from edgekit.fleet.deploy import roll_back
    from edgekit.fleet.deployer import open_deployer

    signer = Signer(key)
    deployer = open_deployer(broker, _login(username, password_file))
    try:
        result = roll_back(deployer, _targets(deployer, devices, everyone), signer, timeout_s=timeout)
    finally:
        deployer.close()
    _report(result, as_json, "rollback")
