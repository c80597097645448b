"""The capacity section (``capacity.md`` and the report's section): a
capacity search's document rendered as markdown and HTML."""

from __future__ import annotations

import html

from bench.report.fmt import ms, ratio_pct
from bench.results.schema import CapacityDocument


def _ms1(us: float | None) -> str:
    return ms(us, digits=1)


def _criteria_text(doc: CapacityDocument) -> str:
    p = doc.get("parameters", {})
    rate = p.get("rate")
    return (
        f"Client count raised until p95 latency passed {doc['criteria']['p95_bound_ms']:g} ms, a delivery was "
        f"lost (or any other integrity fault), or a client failed to connect; {p.get('senders')} concurrent "
        f"senders, {rate:g} msg/s in total, {p.get('duration_s'):g} s measured per point, "
        f"{p.get('payload_bytes')} B payload. A point that failed on latency alone was run again "
        f"(up to {doc['search'].get('confirm', 0)} times) and passes if any attempt passed."
        if rate
        else "Client count raised until a point failed."
    )


def render_markdown(doc: CapacityDocument, heading: str = "#") -> str:
    lines = [f"{heading} Capacity", "", _criteria_text(doc), ""]
    for s in doc["searches"]:
        r = s["result"]
        largest = r["largest_passing"]
        lines.append(f"- **{s['label']}: {largest if largest is not None else 'none'}** — {r['summary']}.")
    lines.append("")
    for s in doc["searches"]:
        lines += [
            f"{heading}# Steps: {s['label']}",
            "",
            "| clients | result | p50 ms | p95 ms | p99 ms | max ms | delivered | why |",
            "|---:|---|---:|---:|---:|---:|---:|---|",
        ]
        for st in s["steps"]:
            delivered = ratio_pct(st.get("delivered_ratio"))
            verdict = "pass" if st["passed"] else "FAIL"
            if st.get("attempt", 1) > 1:
                verdict += f" (attempt {st['attempt']})"
            if st.get("saturated"):
                verdict += " (load generator saturated)"
            why = "; ".join(st["reasons"]).replace("|", "\\|")
            lines.append(
                f"| {st['clients']} | {verdict} | {_ms1(st.get('p50_us'))} | {_ms1(st.get('p95_us'))} | "
                f"{_ms1(st.get('p99_us'))} | {_ms1(st.get('max_us'))} | {delivered} | {why} |"
            )
        lines.append("")
    return "\n".join(lines).rstrip()


def render_html(doc: CapacityDocument) -> str:
    e = html.escape
    out = ["<h2>Capacity</h2>", f"<p>{e(_criteria_text(doc))}</p><ul>"]
    for s in doc["searches"]:
        r = s["result"]
        largest = r["largest_passing"]
        out.append(
            f"<li><strong>{e(s['label'])}: {largest if largest is not None else 'none'}</strong> — "
            f"{e(r['summary'])}.</li>"
        )
    out.append("</ul>")
    for s in doc["searches"]:
        out.append(f"<h3>Steps: {e(s['label'])}</h3><table><tr>")
        out.append("".join(f"<th>{h}</th>" for h in ("clients", "result", "p50 ms", "p95 ms", "p99 ms", "why")))
        out.append("</tr>")
        for st in s["steps"]:
            verdict = ("pass" if st["passed"] else "FAIL") + (" (saturated)" if st.get("saturated") else "")
            out.append(
                f'<tr><td class="n">{st["clients"]}</td><td>{verdict}</td><td class="n">{_ms1(st.get("p50_us"))}</td>'
                f'<td class="n">{_ms1(st.get("p95_us"))}</td><td class="n">{_ms1(st.get("p99_us"))}</td>'
                f"<td>{e('; '.join(st['reasons']))}</td></tr>"
            )
        out.append("</table>")
    return "\n".join(out)
