"""Pages in French with SVG charts, JSON and CSV; the routes and their refusals."""

from __future__ import annotations

import csv
import io
import json

from lxml import etree, html
from twisted.web.test.requesthelper import DummyRequest

from indicators import agency_page, charts, documents, establishment_page
from indicators.access import Identity
from indicators.compute import Snapshot
from indicators.model import Alert, DailyCounts, Observations
from indicators.web import PagesResource

A, B = "990000028", "990000044"
ALPHA, UNREACHABLE = "990000101", "990000404"
NOW = 1_780_000_000.0  # 2026-05-28 22:26:40 Paris time


def snapshot(minimum_peers: int = 1) -> Snapshot:
    return Snapshot(
        Observations(
            at=NOW,
            window_days=30,
            exchanges={
                (A, "IDB", ALPHA, "ok"): 6.0,
                (A, "IDB", ALPHA, "refused"): 2.0,
                (A, "IDB", ALPHA, "invalid_request"): 1.0,
                (A, "CLC", ALPHA, "amc_fault"): 1.0,
                (A, "IDB", UNREACHABLE, "amc_unavailable"): 1.0,
                (B, "IDB", ALPHA, "ok"): 3.0,
            },
            daily=(
                DailyCounts("2026-05-27", {(A, "IDB", "ok"): 5.0}),
                DailyCounts("2026-05-28", {(A, "IDB", "ok"): 3.0, (A, "CLC", "amc_fault"): 1.0}),
            ),
            this_week={(A, "ok"): 8.0, (A, "amc_fault"): 1.0},
            previous_week={(A, "ok"): 4.0},
            codes={
                (A, "IDB", ALPHA, "02"): 2.0,
                (A, "IDB", ALPHA, "MUT-400-DEMANDE"): 1.0,
                (A, "CLC", ALPHA, "AMC-REPONSE-ILLISIBLE"): 1.0,
                (A, "IDB", ALPHA, "<script>"): 1.0,
            },
            amc_latency={ALPHA: (0.2, 0.9)},
            amc_exchanges={(ALPHA, "ok"): 9.0, (UNREACHABLE, "amc_unavailable"): 1.0},
            amc_names={ALPHA: "Mutuelle Alpha (fictive)"},
            breakers={UNREACHABLE: frozenset({"open"}), ALPHA: frozenset({"closed"})},
            certificate_expiry={A: NOW + 86400 * 20},
            last_success={A: NOW - 30},
            alerts=(
                Alert(
                    "RpnEstablishmentInvalidRequestsRising",
                    "invalid_requests",
                    A,
                    "warning",
                    "pending",
                    NOW - 600,
                ),
            ),
        ),
        minimum_peers=minimum_peers,
    )


def page_of(snap: Snapshot, finess: str = A, stale: float | None = None) -> html.HtmlElement:
    return html.fromstring(establishment_page.report_html(snap.report(finess), snap, stale))


def test_the_page_is_french_with_each_chart_and_the_counts_it_shows() -> None:
    tree = page_of(snapshot())
    assert tree.get("lang") == "fr"
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
        "invalid": "1",
        "technical": "2",
    }
    assert tree.xpath("string(//tr[@id='totals']/td[@data-class='all'])") == "11"
    value = tree.xpath("string(//tr[@data-indicator='success_rate']/td[contains(@class,'value')])")
    assert value == "54,5\u202f%"
    assert "28/05/2026 à 22:26" in tree.text_content()


def test_the_trend_chart_has_each_days_success_and_error_rate() -> None:
    tree = page_of(snapshot())
    success = tree.xpath("//svg[@id='daily-rates']/circle[contains(@class,'success')]")
    errors = tree.xpath("//svg[@id='daily-rates']/circle[contains(@class,'error')]")
    assert [(c.get("data-day"), c.get("data-rate")) for c in success] == [
        ("2026-05-27", "1.0000"),
        ("2026-05-28", "0.7500"),
    ]
    assert [c.get("data-rate") for c in errors] == ["0.0000", "0.2500"]
    assert tree.xpath("string(//tr[@data-week='error']/td[1]/@data-rate)") == "0.111111"


def test_codes_show_label_service_amc_and_nature() -> None:
    tree = page_of(snapshot())
    closed = tree.xpath("//table[@id='codes']/tr[@data-code='02']")[0]
    assert closed.get("data-kind") == "normal" and closed.get("data-amc") == ALPHA
    assert "Droits fermés" in closed.text_content() and "Mutuelle Alpha" in closed.text_content()
    invalid = tree.xpath("//table[@id='codes']/tr[@data-code='MUT-400-DEMANDE']")[0]
    assert "erreur (établissement)" in invalid.text_content()
    garbled = tree.xpath("//table[@id='codes']/tr[@data-code='AMC-REPONSE-ILLISIBLE']")[0]
    assert "erreur (AMC)" in garbled.text_content()


def test_technical_errors_per_amc_name_the_amc() -> None:
    rows = page_of(snapshot()).xpath("//table[@id='amc-errors']/tr[@data-amc]")
    assert {r.get("data-amc"): r.get("data-errors") for r in rows} == {
        ALPHA: "1",
        UNREACHABLE: "1",
    }
    alpha = next(r for r in rows if r.get("data-amc") == ALPHA)
    assert alpha.xpath("string(td[@class='name'])") == "Mutuelle Alpha (fictive)"


def test_too_few_peers_show_no_position_and_enough_an_axis_and_a_coloured_verdict() -> None:
    few = page_of(snapshot(minimum_peers=5))
    assert not few.xpath("//svg[contains(@class,'compare')]/circle")
    assert "minimum 5" in few.xpath("string(//tr[@data-indicator='success_rate'])")
    enough = page_of(snapshot(minimum_peers=2))
    dot = enough.xpath("//svg[@id='compare-success_rate']/circle")[0]
    assert dot.get("data-verdict") == "worse" and dot.get("fill") == "#d62728"
    axis = enough.xpath("//svg[@id='compare-success_rate']//text()")
    assert {"moins bon", "médiane", "meilleur"} <= set(axis)


def test_certificate_against_its_deadline_and_last_success_in_words() -> None:
    tree = page_of(snapshot())
    certificate = tree.xpath("//p[@id='certificate']")[0]
    assert certificate.get("data-status") == "warning"
    assert "20 jours" in certificate.text_content()
    assert "à l'instant" in tree.xpath("string(//p[@id='last-success'])")
    assert " h ago" not in tree.text_content()


def test_the_establishment_sees_the_anomalies_the_agency_follows_for_it_only() -> None:
    (item,) = page_of(snapshot()).xpath("//ul[@id='anomalies']/li")
    assert item.get("data-anomaly") == "invalid_requests"
    assert "depuis le 28/05/2026 à 22:16" in item.text_content()
    assert not page_of(snapshot(), B).xpath("//ul[@id='anomalies']")


def test_every_figure_links_to_its_glossary_entry() -> None:
    tree = page_of(snapshot())
    anchors = {a.get("href")[1:] for a in tree.xpath("//a[@class='g']")}
    defined = set(tree.xpath("//dl/dt/@id"))
    assert anchors and anchors <= defined
    for row in tree.xpath("//table[@id='figures']/tr[@data-indicator]"):
        assert row.xpath("th/a[@class='g']"), row.get("data-indicator")


def test_stale_data_banner_and_honest_empty_state() -> None:
    snap = snapshot()
    assert not page_of(snap).xpath("//*[@id='stale']")
    stale = page_of(snap, stale=NOW + 300)
    assert "ne répond pas depuis le 28/05/2026 à 22:31" in stale.xpath("string(//*[@id='stale'])")
    quiet = Snapshot(Observations(at=NOW, window_days=30, certificate_expiry={B: NOW + 9e6}))
    empty = page_of(quiet, B)
    assert empty.xpath("//*[@id='empty']") and not empty.xpath("//svg[@id='daily-rates']")


def test_svg_charts_are_well_formed_xml() -> None:
    snap = snapshot(minimum_peers=2)
    report = snap.report(A)
    for chart in (
        charts.daily_volume(report.daily),
        charts.daily_rates(report.daily),
        charts.outcomes({"ok": 1, "technical": 2}),
        charts.latency([(ALPHA, "Alpha", 0.1, 0.2)]),
        charts.position("success_rate", report.figures["success_rate"]),
    ):
        assert etree.fromstring(chart.encode()).tag == "{http://www.w3.org/2000/svg}svg"


def test_values_read_from_prometheus_are_escaped() -> None:
    snap = snapshot()
    page = establishment_page.report_html(snap.report(A), snap)
    assert b"<script>" not in page and b"&lt;script&gt;" in page


def test_json_and_csv_carry_the_same_counts_as_the_page() -> None:
    snap = snapshot()
    document = json.loads(documents.to_json(documents.report_document(snap.report(A), snap)))
    assert document["totals"] == {
        "ok": 6,
        "refused": 2,
        "invalid": 1,
        "rejected": 0,
        "technical": 2,
        "abandoned": 0,
        "all": 11,
    }
    assert document["certificate"]["expiry"].endswith("+02:00")  # Paris summer time
    assert document["certificate"]["status"] == "warning"
    assert {(c["code"], c["amc"], c["kind"]) for c in document["codes"]} >= {
        ("02", ALPHA, "normal"),
        ("MUT-400-DEMANDE", ALPHA, "error"),
    }
    rows = list(csv.DictReader(io.StringIO(documents.to_csv([snap.report(A)]).decode())))
    assert {
        (r["key"], r["dimension"], r["value"]) for r in rows if r["section"] == "exchanges"
    } >= {("IDB", "ok", "6"), ("CLC", "technical", "1")}


def render_path(
    path: bytes, reader: Identity, snap: Snapshot | None = None, stale: float | None = None
) -> DummyRequest:
    resource = PagesResource(lambda: snap, lambda: stale, lambda cert: reader)
    request = DummyRequest([p for p in path.split(b"/") if p])
    body = resource.render(request)
    request.write(body)
    return request


def body_of(request: DummyRequest) -> bytes:
    return b"".join(request.written)


def test_an_unknown_path_is_not_found_and_no_snapshot_yet_is_unavailable() -> None:
    reader = Identity(finess=A)
    assert render_path(b"/nothing", reader, snapshot()).responseCode == 404
    assert render_path(b"/establishments/nonsense", reader, snapshot()).responseCode == 404
    assert render_path(b"/establishments/" + A.encode(), reader).responseCode == 503


def test_a_refused_json_url_answers_json() -> None:
    for path, reader, snap, status in (
        (f"/establishments/{B}.json", Identity(finess=A), snapshot(), 403),
        (f"/establishments/{A}.json", Identity(finess=A), None, 503),
        ("/agency.json", Identity(finess=A), snapshot(), 403),
        ("/establishments/nonsense.json", Identity(finess=A), snapshot(), 404),
    ):
        request = render_path(path.encode(), reader, snap)
        assert request.responseCode == status, path
        assert request.responseHeaders.getRawHeaders(b"content-type") == [b"application/json"]
        assert json.loads(body_of(request))["error"]["status"] == status


def test_an_unregistered_finess_is_told_so_not_shown_zeros() -> None:
    unknown = "990000999"
    request = render_path(f"/establishments/{unknown}".encode(), Identity(agency=True), snapshot())
    assert request.responseCode == 404
    tree = html.fromstring(body_of(request))
    assert "n'est pas inscrit auprès des relais" in tree.xpath("string(//*[@id='unknown'])")
    assert not tree.xpath("//table")
    as_json = render_path(
        f"/establishments/{unknown}.json".encode(), Identity(agency=True), snapshot()
    )
    assert as_json.responseCode == 404 and "error" in json.loads(body_of(as_json))


def test_refusals_never_reveal_another_establishment_page() -> None:
    request = render_path(f"/establishments/{B}.json".encode(), Identity(finess=A), snapshot())
    assert request.responseCode == 403
    assert B.encode() not in body_of(request)


def test_content_types_and_headers() -> None:
    request = render_path(f"/establishments/{A}.csv".encode(), Identity(finess=A), snapshot())
    assert request.responseHeaders.getRawHeaders(b"content-type") == [b"text/csv; charset=utf-8"]
    assert request.responseHeaders.getRawHeaders(b"cache-control") == [b"no-store"]
    agency = render_path(b"/agency.json", Identity(agency=True), snapshot())
    document = json.loads(body_of(agency))
    assert [e["finess"] for e in document["establishments"]] == [A, B]
    assert document["anomalies"][0]["anomaly"] == "invalid_requests"


def test_agency_page_shows_anomalies_amc_health_and_national_figures() -> None:
    tree = html.fromstring(agency_page.agency_html(snapshot()))
    (anomaly,) = tree.xpath("//table[@id='anomalies']/tr[@data-anomaly]")
    assert (anomaly.get("data-finess"), anomaly.get("data-state")) == (A, "pending")
    assert anomaly.xpath("string(td/a/@href)") == f"establishments/{A}"
    assert "28/05/2026 à 22:16" in anomaly.text_content()
    health = tree.xpath("//table[@id='amc-health']/tr[@data-amc]")
    assert [h.get("data-amc") for h in health] == [UNREACHABLE, ALPHA]
    assert health[0].xpath("string(td[@data-breaker]/@data-breaker)") == "open"
    assert health[1].xpath("string(td[@class='name'])") == "Mutuelle Alpha (fictive)"
    assert tree.xpath("string(//table[@id='national']//td[@data-class='all']/@data-count)") == "14"
    assert tree.xpath("//svg[@id='daily-rates']/circle")
    rows = tree.xpath("//table[@id='establishments']/tr[@data-finess]")
    assert [r.get("data-finess") for r in rows] == [A, B]
    stale = html.fromstring(agency_page.agency_html(snapshot(), NOW))
    assert stale.xpath("//*[@id='stale']")
