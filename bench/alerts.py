"""Time from a budget crossing to the message at the receiver, on the local stack.

In one run, on its own topics, Redis prefix and ClickHouse database, with the
worker running and local receivers standing in for Slack, Teams, PagerDuty,
Twilio and an SMTP server (tests/receivers.py):

* 120 departments, each with a $1.00 monthly budget and stages 50/80/100,
  routed 50 % -> Slack, 80 % -> Teams and email, 100 % -> PagerDuty and SMS;
* each department gets three usage events a few seconds apart ($0.60, $0.30,
  $0.30), so each crosses one stage; events go out at a steady rate with a
  background of usage that crosses nothing;
* latency of a delivery = the moment the receiver took it minus the moment the
  crossing event was handed to the producer (so it includes Kafka, the Redis
  apply, alerts.v1, routing, rendering and the provider call).

Baseline, same run: the same Slack payload POSTed straight to the receiver.
Writes bench/results/alerts.json.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from confluent_kafka import Producer

from bench._common import percentile, write_result
from bus.topic_admin import ensure_topics
from bus.topics import Topics
from schemas.config_records import prices_overrides_record
from schemas.events import UsageEvent, encode_event
from schemas.settings import Settings
from stack import manager
from tests.receivers import TWILIO_SID, TWILIO_TOKEN, start_http, start_smtp

DEPARTMENTS = 120
CROSSINGS_PER_S = 24
BACKGROUND_PER_S = 500
PRICES = (Path(__file__).resolve().parents[1] / "examples" / "prices.yaml").read_text()
PD_KEY = "B" * 32
TITLE = re.compile(r"department (dept-\d+) reached (\d+)% ")


def event(tag: str, dept: str, n: int, output_tokens: int, org: str = "acme") -> UsageEvent:
    return UsageEvent(
        event_id=f"{tag}-{dept}-{n}",
        occurred_at=datetime.now(UTC),
        org_id=org,
        user_id=f"u-{dept}",
        department_id=dept,
        feature="chat",
        provider="openai",
        model="gpt-4o",
        output_tokens=output_tokens,
    )


def metric(port: int, name: str) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1.0
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " "))


def budgets_file(http_url: str) -> str:
    lines = [
        "channels:",
        "  acme:",
        f'    slack: {{type: slack, url: "{http_url}/slack/costs", rate_per_minute: 10000}}',
        f'    teams: {{type: teams, url: "{http_url}/teams/finance", rate_per_minute: 10000}}',
        "    mail: {type: email, to: [lead@acme.example], rate_per_minute: 10000}",
        f'    pd: {{type: pagerduty, routing_key: "{PD_KEY}", rate_per_minute: 10000}}',
        '    sms: {type: sms, to: ["+15551230000"], rate_per_minute: 10000}',
        "budgets:",
    ]
    for i in range(DEPARTMENTS):
        lines.append(
            f'  - {{org: acme, scope: department, id: dept-{i:03d}, period: monthly, limit: "1.00", '
            "stages: [50, 80, 100], alerts: {50: [slack], 80: [teams, mail], 100: [pd, sms]}}"
        )
    return "\n".join(lines) + "\n"


def baseline_post_ms(url: str, samples: int = 200) -> list[float]:
    body = json.dumps({"text": "baseline", "blocks": [{"type": "divider"}]}).encode()
    out = []
    for _ in range(samples):
        began = time.perf_counter()
        request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            response.read()
        out.append((time.perf_counter() - began) * 1000)
    return sorted(out)


def main() -> None:
    base = Settings()
    manager.up(base.stack)
    http = start_http()
    smtp, mailbox = start_smtp()
    tag = f"b{uuid.uuid4().hex[:8]}"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        metrics_port = sock.getsockname()[1]
    env = {
        **os.environ,
        "SPENDSTREAM_KAFKA__TOPIC_PREFIX": f"{tag}.",
        "SPENDSTREAM_REDIS__KEY_PREFIX": tag,
        "SPENDSTREAM_CLICKHOUSE__DATABASE": tag,
        "SPENDSTREAM_METRICS_PORT": str(metrics_port),
        "SPENDSTREAM_ALERTS__SMTP_HOST": "127.0.0.1",
        "SPENDSTREAM_ALERTS__SMTP_PORT": str(smtp.port),
        "SPENDSTREAM_ALERTS__SMTP_SECURITY": "none",
        "SPENDSTREAM_ALERTS__TWILIO_ACCOUNT_SID": TWILIO_SID,
        "SPENDSTREAM_ALERTS__TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
        "SPENDSTREAM_ALERTS__TWILIO_FROM": "+15550001111",
        "SPENDSTREAM_ALERTS__TWILIO_BASE_URL": http.url,
        "SPENDSTREAM_ALERTS__PAGERDUTY_EVENTS_URL": f"{http.url}/v2/enqueue",
    }
    topics = Topics(f"{tag}.")
    bootstrap = base.kafka.bootstrap
    ensure_topics(bootstrap, topics)
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all", "linger.ms": 1})
    record = prices_overrides_record(PRICES)
    producer.produce(topics.config, key=record.key.encode(), value=record.value)
    producer.flush(30)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        handle.write(budgets_file(http.url))
    subprocess.run([sys.executable, "-m", "admin.cli", "budgets", "apply", handle.name], env=env, check=True)

    baseline = baseline_post_ms(f"{http.url}/slack/baseline")
    log = open(f"/tmp/{tag}-worker.log", "wb")  # noqa: SIM115
    worker = subprocess.Popen(
        [sys.executable, "-m", "admin.cli", "worker", "--metrics-loopback"], env=env, stdout=log, stderr=log
    )
    sent_at: dict[tuple[str, int], float] = {}
    try:
        while metric(metrics_port, "spendstream_events_consumed_total") < 0:
            time.sleep(0.2)
        time.sleep(3)
        # three rounds: round r crosses stage (50, 80, 100)[r] for every department
        steps = [(0, 60_000, 50), (1, 30_000, 80), (2, 30_000, 100)]  # $0.60, $0.30, $0.30 of gpt-4o output
        interval = 1.0 / CROSSINGS_PER_S
        background = 0
        next_at = time.perf_counter()
        for n, tokens, stage in steps:
            for i in range(DEPARTMENTS):
                dept = f"dept-{i:03d}"
                for _ in range(BACKGROUND_PER_S // CROSSINGS_PER_S):
                    background += 1
                    noise = event(tag, f"bg{background % 50}", background, 100, org="globex")
                    producer.produce(topics.usage, key=b"globex", value=encode_event(noise))
                next_at += interval
                time.sleep(max(0.0, next_at - time.perf_counter()))
                crossing = event(tag, dept, n, tokens)
                sent_at[(dept, stage)] = time.time()
                producer.produce(topics.usage, key=b"acme", value=encode_event(crossing))
                producer.poll(0)
        producer.flush(30)
        expected = DEPARTMENTS * 5  # 50: slack; 80: teams, mail; 100: pd, sms
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            got = len(http.accepted) - len(baseline) + len(mailbox.messages)
            if got >= expected:
                break
            time.sleep(0.2)
        time.sleep(1)
    finally:
        worker.terminate()
        worker.wait(60)
        http.server.shutdown()
        smtp.stop()

    latencies: dict[str, list[float]] = {"slack": [], "teams": [], "email": [], "pagerduty": [], "sms": []}
    stages_seen: dict[str, set[tuple[str, int]]] = {name: set() for name in latencies}

    def record_one(channel: str, title: str, at: float) -> None:
        match = TITLE.search(title)
        if match is None:
            return
        key = (match.group(1), int(match.group(2)))
        if key in sent_at:
            latencies[channel].append((at - sent_at[key]) * 1000)
            stages_seen[channel].add(key)

    for received in http.accepted:
        if received.path.startswith("/slack/costs"):
            record_one("slack", received.body["text"], received.at)
        elif received.path.startswith("/teams/"):
            record_one("teams", received.body["attachments"][0]["content"]["body"][0]["text"], received.at)
        elif received.path == "/v2/enqueue":
            record_one("pagerduty", received.body["payload"]["summary"], received.at)
        elif received.path.startswith("/2010-04-01/"):
            record_one("sms", received.body["Body"], received.at)
    for at, _, message in mailbox.messages:
        record_one("email", str(message["Subject"]), at)

    everything = sorted(v for values in latencies.values() for v in values)
    delivered = len(everything)
    duplicates = sum(len(v) for v in latencies.values()) - sum(len(s) for s in stages_seen.values())
    result = {
        "crossings": len(sent_at),
        "deliveries_expected": DEPARTMENTS * 5,
        "deliveries_received": delivered,
        "duplicate_deliveries": duplicates,
        "crossing_to_delivery_p50_ms": round(percentile(everything, 0.50), 1),
        "crossing_to_delivery_p90_ms": round(percentile(everything, 0.90), 1),
        "crossing_to_delivery_p99_ms": round(percentile(everything, 0.99), 1),
        "crossing_to_delivery_max_ms": round(everything[-1], 1) if everything else None,
        "per_channel_p50_ms": {k: round(percentile(sorted(v), 0.5), 1) for k, v in latencies.items()},
        "per_channel_p99_ms": {k: round(percentile(sorted(v), 0.99), 1) for k, v in latencies.items()},
        "baseline_direct_post_p50_ms": round(percentile(baseline, 0.50), 2),
        "baseline_direct_post_p99_ms": round(percentile(baseline, 0.99), 2),
        "crossings_per_s": CROSSINGS_PER_S,
        "background_events_per_s": BACKGROUND_PER_S,
        "target_p99_ms": 2000,
    }
    write_result("alerts", result)


if __name__ == "__main__":
    main()
