"""Pages as HTML with SVG charts, JSON and CSV; the routes and their refusals."""

from __future__ import annotations

import csv
import io
import json

from lxml import etree, html
from twisted.web.test.requesthelper import DummyRequest

from indicators import render
from indicators.access import Identity
from indicators.compute import Snapshot
from indicators.model import DailyCounts, Observations
from indicators.web import PagesResource

A, B = "990000028", "990000044"
NOW = 1_780_000_000.0


def snapshot() -> Snapshot:
    return Snapshot(
        Observations(
            at=NOW,
            window_days=30,
            exchanges={
                (A, "IDB", "ok"): 6.0,
                (A, "IDB", "refused"): 2.0,
                (A, "CLC", "timeout"): 1.0,
                (B, "IDB", "ok"): 3.0,
            },
            daily=(
                DailyCounts("2026-05-27", {(A, "IDB"): 5.0}),
                DailyCounts("2026-05-28", {(A, "IDB"): 3.0, (A, "CLC"): 1.0}),
            ),
            codes={(A, "02"): 2.0, (A, "<script>"): 1.0},
            amc_latency={"990000101": (0.2, 0.9)},
            amc_exchanges={"990000101": 9.0},
            certificate_expiry={A: NOW + 86400 * 40},
            last_success={A: NOW - 60},
        )
    )


def test_html_page_has_each_chart_with_the_counts_it_shows() -> None:
    snap = snapshot()
    tree = html.fromstring(render.report_html(snap.report(A), snap))
    bars = tree.xpath("//svg[@id='daily-volume']/rect")
    assert [(b.get("data-day"), b.get("data-service"), b.get("data-count")) for b in bars] == [
        ("2026-05-27", "IDB", "5"),
        ("2026-05-28", "IDB", "3"),
        ("2026-05-28", "CLC", "1"),
    ]
    segments = tree.xpath("//svg[@id='outcomes']/rect")
    assert {s.get("data-class"): s.get("data-count") for s in segments} == {
        "ok": "6",
        "refused": "2",
        "technical": "1",
    }
    assert tree.xpath("//svg[@id='latency']/rect[@data-quantile='p95']/@data-seconds") == ["0.9000"]
    assert len(tree.xpath("//svg[contains(@class, 'compare')]")) == 8
    assert tree.xpath("string(//tr[@id='totals']/td[@data-class='all'])") == "9"
    value = tree.xpath("string(//tr[@data-indicator='success_rate']/td[contains(@class,'value')])")
    assert value == "66.7 %"


def test_svg_charts_are_well_formed_xml() -> None:
    snap = snapshot()
    report = snap.report(A)
    for chart in (
        render.daily_chart(report),
        render.outcome_chart(report),
        render.latency_chart(snap.amc_latency),
        render.comparison_chart("x", 1.0, 2.0, [1.0, 2.0, 3.0]),
    ):
        assert etree.fromstring(chart.encode()).tag == "{http://www.w3.org/2000/svg}svg"


def test_values_read_from_prometheus_are_escaped() -> None:
    snap = snapshot()
    page = render.report_html(snap.report(A), snap)
    assert b"<script>" not in page and b"&lt;script&gt;" in page


def test_json_and_csv_carry_the_same_counts_as_the_page() -> None:
    snap = snapshot()
    document = json.loads(render.to_json(render.report_document(snap.report(A), snap)))
    assert document["totals"] == {
        "ok": 6,
        "refused": 2,
        "technical": 1,
        "rejected": 0,
        "abandoned": 0,
        "all": 9,
    }
    assert document["indicators"]["exchanges"]["national_median"] == 6.0
    assert document["certificate_expiry"].endswith("+00:00")
    rows = list(csv.DictReader(io.StringIO(render.to_csv([snap.report(A)]).decode())))
    assert {
        (r["key"], r["dimension"], r["value"]) for r in rows if r["section"] == "exchanges"
    } >= {("IDB", "ok", "6"), ("CLC", "technical", "1")}
    assert {r["finess"] for r in rows} == {A}


def render_path(path: bytes, reader: Identity, snap: Snapshot | None = None) -> DummyRequest:
    resource = PagesResource(lambda: snap, lambda cert: reader)
    request = DummyRequest([p for p in path.split(b"/") if p])
    body = resource.render(request)
    request.write(body)
    return request


def test_an_unknown_path_is_not_found_and_no_snapshot_yet_is_unavailable() -> None:
    reader = Identity(finess=A)
    assert render_path(b"/nothing", reader, snapshot()).responseCode == 404
    assert render_path(b"/establishments/nonsense", reader, snapshot()).responseCode == 404
    assert render_path(b"/establishments/" + A.encode(), reader).responseCode == 503


def test_refusals_never_reveal_another_establishment_page() -> None:
    request = render_path(f"/establishments/{B}.json".encode(), Identity(finess=A), snapshot())
    assert request.responseCode == 403
    assert B.encode() not in b"".join(request.written)


def test_content_types_and_headers() -> None:
    request = render_path(f"/establishments/{A}.csv".encode(), Identity(finess=A), snapshot())
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/csv; charset=utf-8"]
    assert request.responseHeaders.getRawHeaders(b"cache-control") == [b"no-store"]
    agency = render_path(b"/agency.json", Identity(agency=True), snapshot())
    document = json.loads(b"".join(agency.written))
    assert [e["finess"] for e in document["establishments"]] == [A, B]


def test_agency_page_lists_every_establishment_with_a_link_and_the_medians() -> None:
    tree = html.fromstring(render.agency_html(snapshot()))
    rows = tree.xpath("//table[@id='establishments']/tr[@data-finess]")
    assert [r.get("data-finess") for r in rows] == [A, B]
    assert rows[0].xpath("string(td/a/@href)") == f"establishments/{A}"
    assert tree.xpath("//tr[@id='national-median']")
