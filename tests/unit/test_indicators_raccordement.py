"""The raccordement on the pages: states read from the relays' series, the qualification
progress read from Mutuelle ANS (contract C), the watch, who is stuck, and the promotion form
that prints the ``rpn.lifecycle set`` command (and changes nothing)."""

from __future__ import annotations

import datetime
import json
import shlex
from urllib.parse import parse_qs, urlsplit

import pytest
from lxml import html
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from indicators import agency_page, documents, establishment_page
from indicators.access import Identity
from indicators.compute import Snapshot
from indicators.fetch import observe
from indicators.lifecycle import TRANSITIONS, lifecycles_of
from indicators.model import Alert, DailyCounts, Observations
from indicators.mutuelle_admin import MutuelleAdminApi
from indicators.progress import (
    IProgressSource,
    Progress,
    ProgressError,
    Unavailable,
    parse_progress,
)
from indicators.raccordement import entities, standings
from indicators.refresh import Refresher
from indicators.testing import (
    FakeProgress,
    FakePrometheus,
    lifecycle_sample,
    progress_document,
    sample,
)
from indicators.web import PagesResource, PromotionSettings
from piano.testing import FakeAgent, StrictClock

pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")


def ts(day: str, hour: int = 0) -> float:
    return datetime.datetime.fromisoformat(f"{day}T{hour:02d}:00:00+00:00").timestamp()


NOW = ts("2026-12-03", 10)
#: An entity in qualification with one site that plays the suite, one stuck, one qualified,
#: one under watch (an alert firing), one whose watch ended, one in production.
ENTITY, SITE = "990000010", "990000028"
STUCK, QUALIFIED, WATCHED, ENDED, LIVE = (
    "990000036",
    "990000044",
    "990000051",
    "990000069",
    "990000077",
)
LIFECYCLES = [
    lifecycle_sample(ENTITY, "qualification", ts("2026-12-01")),
    lifecycle_sample(
        SITE, "qualification", ts("2026-12-01"), legal_entity=ENTITY, sectors="MCO,PSY"
    ),
    lifecycle_sample(STUCK, "qualification", ts("2026-11-01")),
    lifecycle_sample(QUALIFIED, "qualification", ts("2026-11-20")),
    lifecycle_sample(WATCHED, "production_sous_surveillance", ts("2026-11-30")),
    lifecycle_sample(ENDED, "production_sous_surveillance", ts("2026-10-01")),
    lifecycle_sample(LIVE, "production", 0),
]
SITE_STEPS = ["passed", "passed", "passed", "failed"] + ["not_played"] * 5


def progress_source() -> FakeProgress:
    return FakeProgress(
        {
            SITE: progress_document(SITE, SITE_STEPS, ("MCO", "PSY")),
            ENTITY: progress_document(ENTITY, ["not_played"] * 9),
            STUCK: progress_document(STUCK, ["not_played"] * 9),
            QUALIFIED: progress_document(QUALIFIED, ["passed"] * 9),
            WATCHED: progress_document(WATCHED, ["passed"] * 9),
            ENDED: progress_document(ENDED, ["passed"] * 9),
        }
    )


def watch_alert(state: str = "firing") -> Alert:
    return Alert("RpnWatchErrorRate", "watch_error_rate", WATCHED, "warning", state, NOW - 1800)


def scenario(
    progress: FakeProgress | None = None, alerts: tuple[Alert, ...] = (watch_alert(),)
) -> Snapshot:
    """One refresh of the service over this scenario, as the refresher builds it."""
    observations = Observations(
        at=NOW,
        window_days=30,
        exchanges={(WATCHED, "IDB", "990000101", "ok"): 40.0},
        daily=(
            DailyCounts("2026-11-29", {(WATCHED, "IDB", "ok"): 9.0}),  # before the watch
            DailyCounts(
                "2026-11-30", {(WATCHED, "IDB", "ok"): 18.0, (WATCHED, "IDB", "timeout"): 2.0}
            ),
            DailyCounts("2026-12-01", {}),
            DailyCounts(
                "2026-12-02",
                {
                    (WATCHED, "IDB", "ok"): 10.0,
                    (WATCHED, "IDB", "invalid_request"): 3.0,
                    (WATCHED, "IDB", "rejected"): 1.0,
                },
            ),
            DailyCounts("2026-12-03", {(WATCHED, "IDB", "ok"): 6.0}),
        ),
        alerts=alerts,
        lifecycles=lifecycles_of(LIFECYCLES),
        watch_days=30,
    )
    source = progress if progress is not None else progress_source()
    refresher = Refresher(
        FakePrometheus(), StrictClock(), 30, 14, 20, 1, progress=source, stuck_days=7
    )
    readings = SynchronousTestCase().successResultOf(
        Deferred.fromCoroutine(refresher._read_progress(observations))
    )
    return Snapshot(
        observations, 20, 1, progress=readings, qualification_configured=True, stuck_days=7
    )


# -- reading --------------------------------------------------------------------------------


def test_states_are_read_from_the_relays_series_with_watch_days() -> None:
    prometheus = FakePrometheus(
        {
            "rpn_establishment_lifecycle_since_timestamp_seconds": LIFECYCLES,
            "rpn_lifecycle_watch_days": [sample(30)],
        }
    )
    observations = SynchronousTestCase().successResultOf(observe(prometheus, NOW, 30, 2))
    site = observations.lifecycles[SITE]
    assert (site.state, site.legal_entity, site.role, site.sectors) == (
        "qualification",
        ENTITY,
        "site",
        ("MCO", "PSY"),
    )
    assert site.since == ts("2026-12-01")
    assert observations.lifecycles[LIVE].since is None  # 0: not given
    assert observations.watch_days == 30


def test_progress_is_asked_for_every_finess_not_in_production_with_its_sectors() -> None:
    source = progress_source()
    scenario(source)
    asked = dict(source.asked)
    assert LIVE not in asked
    assert asked[SITE] == ("MCO", "PSY") and asked[STUCK] == ("MCO",)
    verifyObject(IProgressSource, source)


def test_a_progress_failure_is_that_establishments_unavailable_progress_not_a_crash() -> None:
    source = progress_source()
    source.errors[SITE] = "Mutuelle ANS n'a pas répondu à temps"
    snap = scenario(source)
    assert snap.progress[SITE] == Unavailable("Mutuelle ANS n'a pas répondu à temps")
    tree = html.fromstring(establishment_page.report_html(snap.report(SITE), snap))
    text = tree.xpath("string(//*[@id='progress'])")
    assert "Progression indisponible : Mutuelle ANS n'a pas répondu à temps" in text
    assert isinstance(snap.progress[STUCK], Progress)


def test_without_a_configured_mutuelle_the_pages_say_progress_is_not_available() -> None:
    observations = Observations(at=NOW, window_days=30, lifecycles=lifecycles_of(LIFECYCLES))
    snap = Snapshot(observations, 20, 1)
    tree = html.fromstring(establishment_page.report_html(snap.report(SITE), snap))
    assert "n'est pas configuré" in tree.xpath("string(//*[@id='progress'])")


def test_contract_c_progress_is_parsed_and_qualified_only_when_every_step_passed() -> None:
    document = progress_document(SITE, SITE_STEPS)
    progress = parse_progress(json.dumps(document).encode())
    assert (progress.passed, progress.count("failed"), progress.total) == (3, 1, 9)
    assert progress.blocking is not None and progress.blocking.id == "STEP_4"
    assert not progress.qualified
    document["qualified"] = True  # said, but not true of its steps
    assert not parse_progress(json.dumps(document).encode()).qualified


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "pas du JSON"),
        (b'{"sandbox": "x"}', "sans liste d'étapes"),
        (b'{"steps": [{"id": "A", "status": "won"}]}', "statut 'won' inconnu"),
    ],
)
def test_unusable_progress_answers_are_named_in_french(body: bytes, message: str) -> None:
    with pytest.raises(ProgressError, match=message):
        parse_progress(body)


class MutuelleAdminApiTests(SynchronousTestCase):
    def test_progress_asks_the_sandbox_with_its_sectors(self) -> None:
        agent = FakeAgent()
        agent.respond(200, json.dumps(progress_document(SITE, SITE_STEPS)).encode())
        api = MutuelleAdminApi(agent, "http://127.0.0.1:8091/__admin", 2.0, StrictClock())
        verifyObject(IProgressSource, api)
        progress = self.successResultOf(api.progress(SITE, ("MCO", "PSY")))
        assert progress.passed == 3
        url = urlsplit(agent.requests[0].uri.decode())
        assert url.path == f"/__admin/sandboxes/{SITE}/qualification"
        assert parse_qs(url.query) == {"sectors": ["MCO,PSY"]}

    def test_a_refusal_carries_mutuelles_french_message(self) -> None:
        agent = FakeAgent()
        agent.respond(400, b'{"error": "secteur inconnu : XYZ"}')
        api = MutuelleAdminApi(agent, "http://m/__admin", 2.0, StrictClock())
        failure = self.failureResultOf(api.progress(SITE, ("XYZ",)), ProgressError)
        assert str(failure.value) == "Mutuelle ANS a répondu HTTP 400 : secteur inconnu : XYZ"

    def test_a_silent_mutuelle_times_out(self) -> None:
        agent, clock = FakeAgent(), StrictClock()
        answer = MutuelleAdminApi(agent, "http://m/__admin", 2.0, clock).progress(SITE, ("MCO",))
        clock.advance(2.0)
        failure = self.failureResultOf(answer, ProgressError)
        assert "pas répondu à temps" in str(failure.value) and agent.cancelled == 1

    def test_an_unreachable_mutuelle_is_said_so(self) -> None:
        api = MutuelleAdminApi(
            FakeAgent([ConnectionRefusedError()]), "http://m", 2.0, StrictClock()
        )
        failure = self.failureResultOf(api.progress(SITE, ("MCO",)), ProgressError)
        assert "injoignable" in str(failure.value)


# -- the establishment's page ------------------------------------------------------------------


def page(snap: Snapshot, finess: str) -> html.HtmlElement:
    return html.fromstring(establishment_page.report_html(snap.report(finess), snap))


def test_an_establishment_in_qualification_reads_its_state_and_each_step() -> None:
    tree = page(scenario(), SITE)
    state = tree.xpath("//p[@id='state']")[0]
    assert state.get("data-state") == "qualification"
    assert "État : Qualification depuis le 01/12/2026 (2 jours)" in state.text_content()
    assert f"entité juridique {ENTITY}" in state.text_content()
    assert "seules les AMC fictives de Mutuelle ANS sont joignables" in tree.xpath(
        "string(//p[@id='state-allows'])"
    )
    progress = tree.xpath("//div[@id='progress']")[0]
    assert (progress.get("data-passed"), progress.get("data-failed")) == ("3", "1")
    assert (progress.get("data-not-played"), progress.get("data-total")) == ("5", "9")
    summary = tree.xpath("string(//p[@id='progress-summary'])")
    assert "3/9 étapes réussies, 1 échouée(s), 5 pas encore jouée(s)" in summary
    assert "Prochaine étape à réussir : « Étape 4 »" in summary
    statuses = [r.get("data-status") for r in tree.xpath("//table[@id='steps']//tr[@data-step]")]
    assert statuses == SITE_STEPS
    failed = tree.xpath("//tr[@data-step='STEP_4']")[0].text_content()
    assert "échouée" in failed and "code 05 reçu au lieu de 00" in failed
    assert "À corriger : renseigner le numéro d'adhérent" in failed
    assert "pas encore jouée" in tree.xpath("//tr[@data-step='STEP_5']")[0].text_content()


def test_under_watch_the_page_shows_when_it_ends_each_day_and_the_alerts() -> None:
    tree = page(scenario(), WATCHED)
    assert tree.xpath("string(//p[@id='state']/@data-state)") == "production_sous_surveillance"
    assert "Production sous surveillance depuis le 30/11/2026 (3 jours)" in tree.xpath(
        "string(//p[@id='state'])"
    )
    summary = tree.xpath("string(//p[@id='watch-summary'])")
    assert "jusqu'au 29/12/2026 inclus (26 jours restant(s))" in summary
    assert "Sur les 4 jour(s) lus : 40 échanges" in summary
    assert "3 demande(s) invalide(s), 1 refus du relais, 1 jour(s) sans échange" in summary
    days = {
        r.get("data-day"): (r.get("data-exchanges"), r.get("data-silent"))
        for r in tree.xpath("//table[@id='watch-days']//tr[@data-day]")
    }
    assert days == {  # 29/11, before the watch, is not in it
        "2026-11-30": ("20", "false"),
        "2026-12-01": ("0", "true"),
        "2026-12-02": ("14", "false"),
        "2026-12-03": ("6", "false"),
    }
    assert tree.xpath("string(//tr[@data-day='2026-11-30']/td[3]/@data-rate)") == "0.1"
    alert = tree.xpath("//ul[@id='watch-alerts']/li[@data-anomaly='watch_error_rate']")[0]
    assert alert.get("data-state") == "firing"
    assert "taux d'erreurs au-dessus de 5 %" in alert.text_content()
    assert not tree.xpath("//ul[@id='anomalies']")  # not listed twice


def test_a_page_read_from_relays_without_lifecycle_series_has_no_raccordement_section() -> None:
    observations = Observations(at=NOW, window_days=30, exchanges={(SITE, "IDB", "9", "ok"): 1.0})
    snap = Snapshot(observations, 20, 1)
    assert not page(snap, SITE).xpath("//section[@id='raccordement']")


# -- the agency's page -------------------------------------------------------------------------


def test_the_agency_lists_every_state_with_the_stuck_ones_first() -> None:
    tree = html.fromstring(agency_page.agency_html(scenario()))
    rows = tree.xpath("//table[@id='raccordements']//tr[@data-finess]")
    order = [r.get("data-finess") for r in rows]
    assert order[0] == STUCK and rows[0].get("data-stuck") == "true"
    assert "aucune étape réussie depuis 32 jours ; bloqué sur « Étape 1 »" in rows[0].text_content()
    assert set(order[1:4]) == {QUALIFIED, ENDED, WATCHED}  # awaiting the agency, or alerting
    assert order[-1] == LIVE
    assert [r.get("data-stuck") for r in rows[1:]] == ["false"] * (len(rows) - 1)
    site = tree.xpath(f"//tr[@data-finess='{SITE}']")[0]
    assert site.get("data-days") == "2"
    cells = site.xpath("td")
    assert cells[1].text_content() == ENTITY and cells[2].text_content() == "Qualification"
    assert cells[5].get("data-passed") == "3" and cells[5].get("data-total") == "9"
    assert "Étape 4 (échouée)" in cells[6].text_content()
    qualified = tree.xpath(f"//tr[@data-finess='{QUALIFIED}']")[0].text_content()
    assert "qualifié : à passer en production sous surveillance" in qualified
    ended = tree.xpath(f"//tr[@data-finess='{ENDED}']")[0].text_content()
    assert "surveillance terminée : à passer en production" in ended
    assert (
        "1 alerte(s) de surveillance"
        in tree.xpath(f"//tr[@data-finess='{WATCHED}']")[0].text_content()
    )
    form = tree.xpath("//form[@id='promotion']")[0]
    assert form.get("method") == "post" and form.get("action") == "agency/promotion"
    assert set(form.xpath(".//select[@name='finess']/option/@value")) == {
        ENTITY,
        STUCK,
        QUALIFIED,
        WATCHED,
        ENDED,
        LIVE,
    }
    assert form.xpath(".//select[@name='state']/option/@value") == list(TRANSITIONS)


def test_stuck_days_is_the_configured_threshold() -> None:
    snap = scenario()
    lenient = Snapshot(
        snap.observations,
        20,
        1,
        progress=snap.progress,
        qualification_configured=True,
        stuck_days=40,
    )
    assert not any(s.stuck for s in standings(lenient))
    assert [s.finess for s in standings(snap) if s.stuck] == [STUCK]


# -- the promotion form ------------------------------------------------------------------------

AGENT = Identity(agency=True, name="Agnès Dupont (ANS)")


def post(
    snap: Snapshot, fields: dict[str, str], reader: Identity = AGENT
) -> tuple[int, html.HtmlElement]:
    resource = PagesResource(
        lambda: snap,
        lambda: None,
        lambda cert: reader,
        PromotionSettings("/etc/piano/rpn.toml", "systemctl reload piano-rpn"),
        clock_at(NOW),
    )
    request = DummyRequest([b"agency", b"promotion"])
    request.method = b"POST"
    request.args = {k.encode(): [v.encode()] for k, v in fields.items()}
    body = resource.render(request)
    assert isinstance(body, bytes)
    return request.responseCode or 200, html.fromstring(body)


def clock_at(when: float) -> StrictClock:
    clock = StrictClock()
    clock.advance(when)
    return clock


def test_promoting_a_qualified_entity_prints_the_exact_command_and_change() -> None:
    status, tree = post(
        scenario(),
        {"finess": QUALIFIED, "state": "production_sous_surveillance", "reason": "Suite réussie"},
    )
    assert status == 200
    assert tree.xpath("string(//pre[@id='command'])") == (
        "python -m rpn.lifecycle set --config /etc/piano/rpn.toml --finess 990000044 "
        "--state production_sous_surveillance --by 'Agnès Dupont (ANS)' "
        "--reason 'Suite réussie'"
    )
    assert tree.xpath("string(//pre[@id='toml'])") == (
        "[[establishments.legal_entities]]\n"
        'finess = "990000044"\n'
        'state = "production_sous_surveillance"  # avant : "qualification"\n'
        'since = "2026-12-03"  # avant : "2026-11-20"'
    )
    assert tree.xpath("string(//pre[@id='reload'])") == "systemctl reload piano-rpn"
    assert "Cette page n'a rien modifié" in tree.xpath("string(//p[@id='summary'])")


@pytest.mark.parametrize(
    "reason",
    ['it\'s $(rm -rf /) `x` "y"; z', "--state production", "a\\b 'c'"],
)
def test_the_printed_command_quotes_every_argument_safely(reason: str) -> None:
    _, tree = post(scenario(), {"finess": QUALIFIED, "state": "suspendue", "reason": reason})
    words = shlex.split(tree.xpath("string(//pre[@id='command'])"))
    assert words[words.index("--reason") + 1] == reason
    assert words[words.index("--by") + 1] == "Agnès Dupont (ANS)"
    assert len(words) == 14


@pytest.mark.parametrize(
    ("fields", "status", "message"),
    [
        (
            {"finess": ENTITY, "state": "production_sous_surveillance", "reason": "ok"},
            409,
            "Pas encore qualifiée : 3/9 étapes réussies ; étape à faire : « Étape 4 »",
        ),
        (
            {"finess": WATCHED, "state": "production", "reason": "ok"},
            409,
            "La période de surveillance n'est pas terminée : elle dure jusqu'au 29/12/2026 inclus",
        ),
        (
            {"finess": QUALIFIED, "state": "production", "reason": "ok"},
            409,
            "Passage de « Qualification » à « Production » non permis ; depuis « Qualification », "
            "seulement vers : « Production sous surveillance », « Suspendue »",
        ),
        (
            {"finess": LIVE, "state": "production", "reason": "ok"},
            409,
            "déjà en « Production »",
        ),
        ({"finess": SITE, "state": "suspendue", "reason": "ok"}, 409, "pas une entité juridique"),
        (
            {"finess": QUALIFIED, "state": "suspendue", "reason": "a\nb"},
            400,
            "caractères de contrôle",
        ),
        ({"finess": QUALIFIED, "state": "suspendue", "reason": "x" * 501}, 400, "dépasse 500"),
        ({"finess": QUALIFIED, "state": "suspendue", "reason": "  "}, 400, "La raison est vide"),
        ({"finess": QUALIFIED, "state": "suspendue"}, 400, "Formulaire incomplet"),
        ({"finess": QUALIFIED, "state": "en_ligne", "reason": "ok"}, 409, "État demandé inconnu"),
    ],
)
def test_moves_the_contract_or_the_path_does_not_allow_are_refused_in_french(
    fields: dict[str, str], status: int, message: str
) -> None:
    got, tree = post(scenario(), fields)
    assert got == status
    assert message in tree.xpath("string(//p[@id='refusal'])")
    assert not tree.xpath("//pre[@id='command']")


def test_production_waits_for_the_watch_alerts_to_stop() -> None:
    got, tree = post(scenario(), {"finess": ENDED, "state": "production", "reason": "fin"})
    assert got == 200  # its watch ended, no alert: allowed
    firing = Alert("RpnWatchSilentDay", "watch_silent_day", ENDED, "warning", "firing", NOW - 60)
    got, tree = post(
        scenario(alerts=(firing,)), {"finess": ENDED, "state": "production", "reason": "fin"}
    )
    assert got == 409
    assert "Des alertes de surveillance sont en cours" in tree.xpath("string(//p[@id='refusal'])")
    pending = Alert("RpnWatchSilentDay", "watch_silent_day", ENDED, "warning", "pending", NOW)
    assert (
        post(scenario(alerts=(pending,)), {"finess": ENDED, "state": "production", "reason": "x"})[
            0
        ]
        == 200
    )


def test_only_the_agency_may_prepare_a_change() -> None:
    got, tree = post(
        scenario(),
        {"finess": QUALIFIED, "state": "suspendue", "reason": "x"},
        Identity(finess=QUALIFIED),
    )
    assert got == 403 and not tree.xpath("//pre[@id='command']")


def test_the_entity_is_qualified_by_any_of_its_sites() -> None:
    source = progress_source()
    source.documents[SITE] = progress_document(SITE, ["passed"] * 9)
    entity = entities(scenario(source))[ENTITY]
    assert entity.qualified
    got, _ = post(
        scenario(source),
        {"finess": ENTITY, "state": "production_sous_surveillance", "reason": "ok"},
    )
    assert got == 200


def test_an_entity_is_not_stuck_while_one_of_its_sites_passes_steps() -> None:
    source = progress_source()
    source.documents[STUCK] = progress_document(STUCK, ["not_played"] * 9)
    # STUCK's own sandbox played nothing, but a site of it passed a step yesterday.
    site = "990000085"
    lifecycles = [*LIFECYCLES, lifecycle_sample(site, "qualification", ts("2026-11-01"), STUCK)]
    source.documents[site] = progress_document(
        site, ["passed"] + ["not_played"] * 8, played_at="2026-12-02T09:00:00+00:00"
    )
    observations = Observations(
        at=NOW, window_days=30, lifecycles=lifecycles_of(lifecycles), watch_days=30
    )
    refresher = Refresher(FakePrometheus(), StrictClock(), 30, 14, 20, 1, progress=source)
    readings = SynchronousTestCase().successResultOf(
        Deferred.fromCoroutine(refresher._read_progress(observations))
    )
    snap = Snapshot(observations, progress=readings, qualification_configured=True)
    assert not [s.finess for s in standings(snap) if s.stuck]


def test_steps_passed_before_the_state_began_do_not_unstick_it() -> None:
    # Back in qualification since 01/11 (after a suspension): its steps passed in October.
    source = progress_source()
    source.documents[STUCK] = progress_document(
        STUCK, ["passed"] * 2 + ["not_played"] * 7, played_at="2026-10-05T09:00:00+00:00"
    )
    (row,) = [s for s in standings(scenario(source)) if s.stuck]
    assert row.finess == STUCK
    assert row.stuck == "aucune nouvelle étape réussie depuis 32 jours ; bloqué sur « Étape 3 »"


def test_the_json_page_carries_the_raccordement() -> None:
    snap = scenario()
    watched = documents.report_document(snap.report(WATCHED), snap)["raccordement"]
    assert watched["state"] == "production_sous_surveillance"
    assert watched["since"] == "2026-11-30" and watched["days_in_state"] == 3
    assert [d["exchanges"] for d in watched["watch"]["days"]] == [20, 0, 14, 6]
    assert watched["watch"]["alerts"][0]["anomaly"] == "watch_error_rate"
    site = documents.report_document(snap.report(SITE), snap)["raccordement"]
    assert site["progress"]["counts"] == {"passed": 3, "failed": 1, "not_played": 5, "total": 9}
    listed = documents.agency_document(snap)["raccordements"]
    assert listed[0]["finess"] == STUCK and listed[0]["stuck"]
