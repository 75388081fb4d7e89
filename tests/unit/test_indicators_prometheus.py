"""Reading Prometheus: the API client, answer parsing, and one reading into Observations."""

from __future__ import annotations

import datetime
import json
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest
from twisted.trial.unittest import SynchronousTestCase
from zope.interface.verify import verifyObject

from indicators import queries
from indicators.fetch import alerts_of, day_windows, observe
from indicators.model import Alert
from indicators.prometheus import IPrometheus, PrometheusError, PrometheusHttpApi, parse_vector
from indicators.testing import FakePrometheus, sample
from piano.testing import FakeAgent, StrictClock

# rpn.testing's fake body transport has no abortConnection; readBody warns about that only.
pytestmark = pytest.mark.filterwarnings("ignore:Using readBody with a transport:DeprecationWarning")

A = "990000028"
AT = datetime.datetime(2026, 5, 28, 15, 30, tzinfo=datetime.UTC).timestamp()


def vector(*samples: tuple[dict[str, str], str]) -> bytes:
    result = [{"metric": m, "value": [AT, v]} for m, v in samples]
    return json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": result}}
    ).encode()


def test_parse_vector_reads_labels_and_values_including_nan() -> None:
    samples = parse_vector(vector(({"finess": A}, "3"), ({"amc": "990000101"}, "NaN")))
    assert samples[0].labels == {"finess": A} and samples[0].value == 3.0
    assert samples[1].value != samples[1].value


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>", "not JSON"),
        (b"[]", "not a JSON object"),
        (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "bad_data: parse"),
        (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "instant vector"),
        (
            b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{}}]}}',
            "malformed sample",
        ),
    ],
)
def test_unusable_answers_are_named(body: bytes, message: str) -> None:
    with pytest.raises(PrometheusError, match=message):
        parse_vector(body)


class HttpApiTests(SynchronousTestCase):
    def test_query_sends_the_expression_time_and_timeout(self) -> None:
        agent = FakeAgent()
        agent.respond(200, vector(({"finess": A}, "2")))
        api = PrometheusHttpApi(agent, "http://prom:9090/", 2.5, StrictClock())
        verifyObject(IPrometheus, api)
        samples = self.successResultOf(api.query("up", AT))
        assert samples[0].value == 2.0
        url = urlsplit(agent.requests[0].uri.decode())
        assert (url.netloc, url.path) == ("prom:9090", "/api/v1/query")
        assert parse_qs(url.query) == {
            "query": ["up"],
            "time": [f"{AT:.3f}"],
            "timeout": ["2500ms"],
        }

    def test_a_query_error_answer_fails_with_prometheus_reason(self) -> None:
        agent = FakeAgent()
        agent.respond(400, b'{"status":"error","errorType":"bad_data","error":"parse error"}')
        api = PrometheusHttpApi(agent, "http://prom:9090", 2.0, StrictClock())
        failure = self.failureResultOf(api.query("sum(", AT), PrometheusError)
        assert "parse error" in str(failure.value)

    def test_an_unexpected_status_fails(self) -> None:
        agent = FakeAgent()
        agent.respond(502, b"bad gateway")
        api = PrometheusHttpApi(agent, "http://prom:9090", 2.0, StrictClock())
        failure = self.failureResultOf(api.query("up", AT), PrometheusError)
        assert "HTTP 502" in str(failure.value)

    def test_a_silent_server_times_out_and_the_request_is_cancelled(self) -> None:
        agent, clock = FakeAgent(), StrictClock()
        answer = PrometheusHttpApi(agent, "http://prom:9090", 2.0, clock).query("up", AT)
        self.assertNoResult(answer)
        clock.advance(2.0)
        failure = self.failureResultOf(answer, PrometheusError)
        assert "in time" in str(failure.value)
        assert agent.cancelled == 1

    def test_a_connection_failure_is_reported(self) -> None:
        agent = FakeAgent([ConnectionRefusedError()])
        api = PrometheusHttpApi(agent, "http://prom:9090", 2.0, StrictClock())
        self.failureResultOf(api.query("up", AT), PrometheusError)


def test_day_windows_cover_whole_paris_days_and_today_so_far() -> None:
    windows = day_windows(AT, 3)
    assert [w[0] for w in windows] == ["2026-05-26", "2026-05-27", "2026-05-28"]
    midnight = datetime.datetime(2026, 5, 28, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert windows[1][1:] == (midnight, 86400)
    assert windows[2][1:] == (AT, AT - midnight)


def test_the_day_clocks_go_forward_has_23_hours_and_the_day_they_go_back_25() -> None:
    spring = datetime.datetime(2026, 3, 30, 12, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert next((w[0], w[2]) for w in day_windows(spring, 2)) == ("2026-03-29", 23 * 3600)
    autumn = datetime.datetime(2026, 10, 26, 12, tzinfo=ZoneInfo("Europe/Paris")).timestamp()
    assert next((w[0], w[2]) for w in day_windows(autumn, 2)) == ("2026-10-25", 25 * 3600)


def test_window_count_counts_series_born_inside_the_window_and_survives_resets() -> None:
    expr = queries.window_count("m_total", "30s")
    assert expr == (
        "((last_over_time(m_total[15m]) - m_total offset 30s) >= 0"
        " or (last_over_time(m_total[15m]) unless m_total offset 30s)"
        " or last_over_time(m_total[15m]))"
    )


def test_one_reading_turns_samples_into_observations() -> None:
    prometheus = FakePrometheus(
        {
            "by (finess, service, amc, outcome)": [
                sample(4, finess=A, service="IDB", amc="990000101", outcome="ok"),
                sample(1, finess=A, service="IDB", amc="990000101", outcome="refused"),
            ],
            "by (finess, service, outcome)": [sample(2, finess=A, service="IDB", outcome="ok")],
            "by (finess, outcome)": [sample(3, finess=A, outcome="ok")],
            "by (finess, service, amc, code)": [
                sample(1, finess=A, service="IDB", amc="990000101", code="02")
            ],
            "histogram_quantile(0.5,": [sample(0.1, amc="990000101")],
            "histogram_quantile(0.95,": [sample(float("nan"), amc="990000101")],
            "by (amc, outcome)": [sample(5, amc="990000101", outcome="ok")],
            queries.AMC_INFO: [sample(1, amc="990000101", name="Mutuelle Alpha")],
            queries.BREAKER_STATE: [
                sample(1, amc="990000404", state="open"),
                sample(1, amc="990000404", state="closed"),
            ],
            "ALERTS_FOR_STATE": [
                sample(AT - 600, alertname="RpnX", anomaly="silent", finess=A, severity="warning")
            ],
            "ALERTS{": [
                sample(
                    1,
                    alertname="RpnX",
                    alertstate="pending",
                    anomaly="silent",
                    finess=A,
                    severity="warning",
                )
            ],
            queries.CERTIFICATE_EXPIRY: [sample(AT + 86400, finess=A)],
            queries.LAST_SUCCESS: [sample(AT - 60, finess=A)],
        }
    )
    verifyObject(IPrometheus, prometheus)
    obs = SynchronousTestCase().successResultOf(observe(prometheus, AT, 30, 2))
    assert obs.exchanges == {
        (A, "IDB", "990000101", "ok"): 4.0,
        (A, "IDB", "990000101", "refused"): 1.0,
    }
    assert [(d.day, dict(d.counts)) for d in obs.daily] == [
        ("2026-05-27", {(A, "IDB", "ok"): 2.0}),
        ("2026-05-28", {(A, "IDB", "ok"): 2.0}),
    ]
    assert obs.this_week == obs.previous_week == {(A, "ok"): 3.0}
    assert obs.codes == {(A, "IDB", "990000101", "02"): 1.0}
    assert obs.amc_latency == {"990000101": (0.1, None)}
    assert obs.amc_exchanges == {("990000101", "ok"): 5.0}
    assert obs.amc_names == {"990000101": "Mutuelle Alpha"}
    assert obs.breakers == {"990000404": frozenset({"open", "closed"})}
    assert obs.certificate_expiry == {A: AT + 86400}
    assert obs.last_success == {A: AT - 60}
    assert obs.alerts == (Alert("RpnX", "silent", A, "warning", "pending", AT - 600),)
    windows = [q for q in prometheus.queries if "by (finess, service, outcome)" in q[0]]
    assert [at for _, at in windows][-2:] == [day_windows(AT, 2)[0][1], AT]
    weeks = [at for q, at in prometheus.queries if "by (finess, outcome)" in q]
    assert sorted(weeks) == [AT - 7 * 86400, AT]
    assert all("offset 2592000s" in q for q, _ in prometheus.queries if "amc, code)" in q)


def test_a_firing_alert_is_one_row_even_when_also_pending() -> None:
    labels = {"alertname": "RpnX", "anomaly": "error_rate", "finess": A, "severity": "warning"}
    states = [
        sample(1, alertstate="pending", **labels),
        sample(1, alertstate="firing", **labels),
    ]
    (alert,) = alerts_of(states, [sample(AT - 60, **labels)])
    assert (alert.state, alert.since) == ("firing", AT - 60)


def test_a_failed_query_fails_the_whole_reading_with_its_reason() -> None:
    prometheus = FakePrometheus()
    prometheus.error = "cannot query Prometheus: ConnectionRefusedError"
    failure = SynchronousTestCase().failureResultOf(observe(prometheus, AT, 30, 2))
    assert isinstance(failure.value, PrometheusError)
    assert "ConnectionRefusedError" in str(failure.value)
