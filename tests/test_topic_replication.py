"""Topics get the configured replication factor (3 against Kafka by default, 1 on the embedded broker)."""
from __future__ import annotations

import asyncio

from aiokafka.admin import AIOKafkaAdminClient

from leadflow.config import load_settings
from leadflow.pipeline import Pipeline


def test_replication_factor_defaults(monkeypatch):
    for key in ("LEADFLOW_KAFKA_BOOTSTRAP", "LEADFLOW_TOPIC_REPLICATION_FACTOR"):
        monkeypatch.delenv(key, raising=False)
    assert load_settings().replication_factor == 1
    assert load_settings(kafka_bootstrap="kafka:9092").replication_factor == 3
    assert load_settings(kafka_bootstrap="kafka:9092", topic_replication_factor=2).replication_factor == 2


def test_pipeline_creates_topics_with_the_replication_factor(settings, client):
    settings = settings.model_copy(update={"topic_replication_factor": 2})

    async def scenario():
        async with Pipeline(settings, settings.kafka_bootstrap, client, single_process=False, stages=()) as pipe:
            admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
            await admin.start()
            try:
                described = await admin.describe_topics(pipe.topics.all())
            finally:
                await admin.close()
        return {t["topic"]: {len(p["replicas"]) for p in t["partitions"]} for t in described}

    replicas = asyncio.run(scenario())
    assert replicas == {topic: {2} for topic in replicas} and len(replicas) == 5
