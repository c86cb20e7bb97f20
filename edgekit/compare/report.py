"""The compare report: one self-contained HTML file (charts embedded as PNG data URIs, styles
inline, no script, nothing fetched), readable offline and attachable to an issue or an e-mail.
"""

from __future__ import annotations

import base64
from html import escape
from pathlib import Path
from typing import Any

from edgekit.compare import charts
from edgekit.units import human_bytes

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.6rem 0}td,th{border:1px solid #ddd;padding:.25rem .6rem;text-align:right}
th{background:#f4f4f4}td:first-child,th:first-child{text-align:left}.muted{color:#666}.bad{color:#b00}
.good{color:#176}img{max-width:100%;height:auto;display:block;margin:.5rem 0}ul{padding-left:1.2rem}
.summary li{margin:.3rem 0}code{background:#f4f4f4;padding:0 .2rem}
"""


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{escape(alt)}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def _table(header: list[str], rows: list[list[Any]]) -> str:
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def _fraction(value: float | None) -> str:
    return "—" if value is None else f"{value:.2%}"


def _name(edge: dict[str, Any]) -> str:
    return escape(Path(edge["artifact"]).name)


def _summary(document: dict[str, Any]) -> str:
    items = []
    latency = document["server"]["latency"]
    server_ms = latency["with_link"]["p50_ms"]
    for edge in document["edge"]:
        quality, metric = edge["quality"], edge["quality"]["metric"]
        parts = []
        if metric:
            unit = "%" if metric["drop_unit"] == "percent" else " pt"
            parts.append(f"{escape(metric['name'])} {metric['server']:.4f} → {metric['edge']:.4f} "
                         f"(drop {metric['drop']:.2f}{unit})")  # fmt: skip
        if quality["top1_agreement"] is not None:
            parts.append(f"agrees with the server on {quality['top1_agreement']:.2%} of {quality['samples']} samples")
        edge_ms = edge["latency"]["compared_ms"]
        faster = "faster" if edge_ms < server_ms else "slower"
        parts.append(
            f"{edge_ms:.2f} ms {escape(edge['latency']['compared_basis'])} against the server's {server_ms:.2f} ms "
            f"over {escape(latency['link']['described'])} ({faster})"
        )
        server_size = document["server"].get("size_bytes")
        if server_size:
            parts.append(
                f"{human_bytes(edge['size_bytes'])}, {edge['size_bytes'] / server_size:.2f} × the server model"
            )
        items.append(f"<li><b>{_name(edge)}</b>: {'; '.join(parts)}. <b>{escape(edge['verdict'])}</b>.</li>")
    return f'<ul class="summary">{"".join(items)}</ul>'


def _quality(document: dict[str, Any]) -> str:
    rows = []
    notes: list[str] = []
    for edge in document["edge"]:
        q, m = edge["quality"], edge["quality"]["metric"]
        drop = "—"
        if m:
            unit = " %" if m["drop_unit"] == "percent" else " pt"
            drop = f'<span class="{"bad" if m["drop"] > 0.5 else "good"}">{m["drop"]:.2f}{unit}</span>'
        rows.append([
            _name(edge), escape(m["name"]) if m else "—", f"{m['server']:.4f}" if m else "—",
            f"{m['edge']:.4f}" if m else "—", drop, _fraction(q["top1_agreement"]),
            f"{q['max_abs_error']:.4g}", f"{q['mean_abs_error']:.4g}", f"{q['snr_db']:.1f}",
        ])  # fmt: skip
        notes += [f"{_name(edge)}: {escape(n)}" for n in q["notes"]]
    header = ["edge artifact", "metric", "server", "edge", "drop", "top-1 agreement", "max |Δ output|",
              "mean |Δ output|", "SNR dB"]  # fmt: skip
    text = _table(header, rows)
    if notes:
        text += "<p class=muted>Left out: " + "; ".join(notes) + ".</p>"
    return text


def _drift(document: dict[str, Any]) -> str:
    sections = []
    for edge in document["edge"]:
        drift = edge["quality"]["drift"]
        if drift is None:
            continue
        rows = [
            [escape(c["class"]), c["support"], _fraction(c["server_recall"]), _fraction(c["edge_recall"]),
             "—" if c["change_pts"] is None else f"{c['change_pts']:+.2f}", c["changed"]]
            for c in drift["classes"]
        ]  # fmt: skip
        table = _table(["class", "samples", "server recall", "edge recall", "change (pt)", "answers changed"], rows)
        if any(c["changed"] for c in drift["classes"]):
            picture = _img(charts.drift_chart(edge), "confusion difference")
        else:
            picture = "<p class=good>Every sample gets the same class from both sides.</p>"
        sections.append(f"<h3>{_name(edge)}</h3>{table}{picture}")
    if not sections:
        return "<p class=muted>No per-class drift: it needs a classifier and labelled data.</p>"
    return "".join(sections)


def _latency(document: dict[str, Any]) -> str:
    latency = document["server"]["latency"]
    measured, with_link = latency["measured"], latency["with_link"]
    rows = [
        ["server, measured over HTTP", _ms(measured["p50_ms"]), _ms(measured["p90_ms"]), _ms(measured["p99_ms"]),
         f"{measured['runs']} requests"],
        [f"server + {escape(latency['link']['described'])}", _ms(with_link["p50_ms"]), _ms(with_link["p90_ms"]),
         _ms(with_link["p99_ms"]), f"+ {latency['link']['transfer_ms']:.2f} ms transfer"],
    ]  # fmt: skip
    for edge in document["edge"]:
        here = edge["latency"]["here"]
        rows.append([f"{_name(edge)} here ({escape(edge['runtime'])})", _ms(here["p50_ms"]), _ms(here["p90_ms"]),
                     _ms(here["p99_ms"]), f"{here['runs']} runs"])  # fmt: skip
        device = edge["latency"]["device"]
        if device:
            rows.append([f"{_name(edge)} on {escape(document['device'])} (predicted)", _ms(device["latency_ms"]),
                         "—", "—", f"band {device['low_ms']:.2f}–{device['high_ms']:.2f} ms"])  # fmt: skip
        elif edge["latency"]["device_note"] and document["device"]:
            rows.append([f"{_name(edge)} on {escape(document['device'])}", "—", "—", "—",
                         escape(edge["latency"]["device_note"])])  # fmt: skip
    payload = (
        f"<p>A single-sample request is {human_bytes(latency['request_bytes'])} of JSON; the answer "
        f"{human_bytes(latency['response_bytes'])}.</p>"
    )
    return (
        _table(["path", "p50 ms", "p90 ms", "p99 ms", ""], rows)
        + payload
        + _img(charts.latency_chart(document), "latency chart")
    )


def _sizes(document: dict[str, Any]) -> str:
    server = document["server"]
    server_size = human_bytes(server["size_bytes"]) if server.get("size_bytes") else "— (remote)"
    server_memory = "—"
    if server.get("load_rss_mb") is not None:
        server_memory = f"{server['load_rss_mb']:.1f} MB to load"
        if server.get("framework_preloaded"):
            server_memory += " (TensorFlow was in memory already)"
    rows = [["server model", server_size, server_memory, "—"]]
    for edge in document["edge"]:
        device = edge["memory"]["device"]
        fits = "—"
        if device:
            verdict = "fits" if device["fits"] else "<span class=bad>does not fit</span>"
            fits = f"{verdict} ({device['need']:.0f} of {device['available']:.0f} MB)"
        memory = f"{edge['memory']['here_load_rss_mb']:.1f} MB to load"
        rows.append([_name(edge), human_bytes(edge["size_bytes"]), memory, fits])
    header = ["model", "file size", "memory here (runtime included)", f"on {escape(document['device'] or 'a device')}"]
    return _table(header, rows)


def _method(document: dict[str, Any]) -> str:
    env = document["environment"]
    return (
        "<ul class=muted>"
        f"<li>Data: {escape(document['data']['source'])}, {document['data']['samples']} samples"
        f"{'' if document['data']['labelled'] else ' (no labels: metric rows left out)'}; "
        f"task {escape(str(document['task']))}.</li>"
        f"<li>Server: {escape(document['server']['url'])}; outputs collected in batched requests, latency from "
        "single-sample requests sent one after another on one keep-alive connection (warm-up excluded). "
        "The emulated link adds the round trip and the payload's time on the wire "
        "(request bytes over the uplink, answer bytes over the downlink when given) to each measured request.</li>"
        "<li>Edge: each artifact run here on every sample, then timed single-sample "
        "(`edgekit bench`'s loop); device figures are `edgekit bench --device` predictions with their band.</li>"
        f"<li>Measured {escape(env['date'])} on {escape(env['processor'])} ({escape(env['machine'])}) "
        f"with edgekit {escape(env['edgekit'])}.</li></ul>"
    )


def render_html(document: dict[str, Any]) -> str:
    device = document["device"] or "this machine"
    title = f"edgekit compare — server versus edge ({escape(device)})"
    sections = [
        ("Where the edge wins", _summary(document)),
        ("Quality: the same samples through both", _quality(document)),
        ("Per-class drift", _drift(document)),
        ("Latency", _latency(document)),
        ("Break-even round-trip time", _img(charts.break_even_chart(document), "break-even chart")),
        ("Size and memory", _sizes(document)),
        ("How these figures were taken", _method(document)),
    ]
    body = "".join(f"<h2>{escape(heading)}</h2>{content}" for heading, content in sections)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="icon" href="data:,">'  # no favicon request, so no 404 in the console
        f"<title>{title}</title><style>{STYLE}</style></head><body>"
        f"<h1>{title}</h1><p class=muted>{escape(document['data']['source'])} · {document['data']['samples']} samples"
        f" · link: {escape(document['link']['described'])}</p>{body}</body></html>\n"
    )
