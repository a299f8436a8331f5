import pytest
from pydantic import ValidationError

from schemas.settings import Settings


def test_defaults_match_the_local_stack() -> None:
    s = Settings()
    assert s.kafka.bootstrap == f"127.0.0.1:{s.stack.kafka_port}"
    assert s.redis.url.endswith(f":{s.stack.redis_port}/0")
    assert s.clickhouse.port == s.stack.clickhouse_port


def test_environment_overrides_and_secrets_stay_hidden(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SPENDSTREAM_KAFKA__BOOTSTRAP", "broker-1:9092,broker-2:9092")
    monkeypatch.setenv("SPENDSTREAM_CLICKHOUSE__PASSWORD", "hunter2")
    s = Settings()
    assert s.kafka.bootstrap == "broker-1:9092,broker-2:9092"
    assert s.clickhouse.password.get_secret_value() == "hunter2"
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.model_dump())


@pytest.mark.parametrize(
    ("name", "value", "field"),
    [
        ("SPENDSTREAM_KAFKA__BOOTSTRAP", "no-port", "bootstrap"),
        ("SPENDSTREAM_REDIS__URL", "http://x", "url"),
        ("SPENDSTREAM_CLICKHOUSE__PORT", "99999", "port"),
        ("SPENDSTREAM_CLICKHOUSE__DATABASE", "drop table;", "database"),
        ("SPENDSTREAM_STACK__KAFKA_VERSION", "3.7.0", "kafka_version"),
    ],
)
def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        Settings()
    assert field in str(info.value)
