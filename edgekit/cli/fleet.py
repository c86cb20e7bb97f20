"""``edgekit fleet``: every device on a broker at once."""

from __future__ import annotations

import time
from typing import Any

import typer
from rich.table import Table

from edgekit.cli.help import EdgekitCommand
from edgekit.cli.output import emit_json, print_wide, stdout
from edgekit.errors import ConfigError, require_extra

app = typer.Typer(
    help="Every device on a broker: their state, from what each keeps retained there.", no_args_is_help=True
)
COLUMNS = ("device", "status", "model", "sha256", "fps", "p99 ms", "buffered", "last seen", "edgekit", "profile")


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
            shown(r["p99_ms"]), shown(r["buffered"]), shown(r["last_seen_s"], " s ago"), shown(r["edgekit"]),
            shown(r["profile"]),
        )  # fmt: skip
    return table


@app.command("status", cls=EdgekitCommand)
def status(
    broker: str = typer.Option("mqtt://127.0.0.1:1883", "--broker", help="mqtt://HOST:PORT."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON document on stdout."),
    watch: bool = typer.Option(False, "--watch", help="Keep the table live until Ctrl-C."),
    wait: float = typer.Option(5.0, "--wait", help="Seconds to wait for the broker's retained messages."),
) -> None:
    """Every device: online, model, fps, p99, buffered, last seen — from retained topics alone."""
    require_extra("paho", "device")
    from edgekit.daemon.mqtt import BrokerAddress
    from edgekit.daemon.mqtt_protocol import connect_with_fallback, new_client
    from edgekit.fleet.status import FleetView

    address = BrokerAddress.parse(broker)
    if wait <= 0:
        raise ConfigError(f"--wait must be more than 0 seconds, got {wait:g}")
    view = FleetView()

    def make_client(protocol: int) -> Any:
        client = new_client(protocol)
        client.on_connect = view.on_connect
        client.on_subscribe = view.on_subscribe
        client.on_message = view.on_message
        return client

    client = connect_with_fallback(make_client, address.host, address.port)
    try:
        view.wait_settled(wait)
        if as_json:
            emit_json({"broker": f"{address.host}:{address.port}", "devices": view.rows()})
        elif not watch:
            print_wide(_table(view.rows()), min_width=140)
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
