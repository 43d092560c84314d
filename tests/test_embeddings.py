"""Text embeddings through a local fake of the OpenAI API: the job, `similar` re-ranking,
retries, a missing key, and `forecourt reindex`."""

import subprocess
import sys
from pathlib import Path

import pytest

from forecourt.config import Settings
from forecourt.integrations.openai import EMBEDDING_DIMENSIONS, OpenAI, ProviderError
from forecourt.jobs import embed_listings
from tests.conftest import make_settings
from tests.fakes.openai_server import API_KEY
from tests.harness import LiveServer
from tests.test_catalog import add_catalog, create
from tests.test_import import IMPORT, row

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def ai_server(tmp_path, database_url, clock, fake_openai):
    settings = make_settings(tmp_path, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake_openai.url,
                             EMBED_INTERVAL_SECONDS=0)
    with LiveServer(settings, database_url, clock) as live:
        yield live


async def test_job_embeds_new_vehicles_and_similar_uses_meaning(ai_server, gql, make_user, db, fake_openai):
    dealer = await make_user("dealer")
    sedan = await add_catalog(db, "Toyota", "Camry", 2018, "Sedan")
    from forecourt.schema.relay import to_global_id
    entry = to_global_id("CatalogEntry", sedan)
    # identical facts, so only the listing text can tell these apart
    target = await create(gql, dealer, model="Camry", catalogEntryId=entry, features=["Armoured", "Bulletproof glass"])
    twin = await create(gql, dealer, model="Camry", catalogEntryId=entry, features=["Armoured", "Bulletproof glass"])
    for _ in range(3):
        await create(gql, dealer, model="Camry", catalogEntryId=entry, features=["Cup holders", "Floor mats"])
    assert await db.fetchval("SELECT count(*) FROM vehicles WHERE text_embedding IS NULL") == 5

    state = ai_server.state
    openai = OpenAI(state.settings)
    try:
        assert await ai_server.call(embed_listings, state, openai) == 5
    finally:
        await ai_server.call(openai.close)
    assert await db.fetchval("SELECT count(*) FROM vehicles WHERE text_embedding IS NULL") == 0
    request = fake_openai.requests[-1]
    assert request["dimensions"] == EMBEDDING_DIMENSIONS and request["model"] == "text-embedding-3-small"
    assert "Armoured" in " ".join(request["input"])

    body = await gql("query($id: ID!) { vehicle(id: $id) { similar(first: 1) { id } } }", {"id": target["vehicle"]["id"]})
    assert body["data"]["vehicle"]["similar"][0]["id"] == twin["vehicle"]["id"]


async def test_changed_imports_are_embedded_again(ai_server, gql, make_user, db):
    dealer = await make_user("dealer")
    await gql(IMPORT, {"input": {"rows": [row(0)]}}, token=dealer.token)
    await db.execute("UPDATE vehicles SET text_embedding = array_fill(0.1, ARRAY[256])::vector")
    await gql(IMPORT, {"input": {"rows": [row(0)]}}, token=dealer.token)  # unchanged: kept
    assert await db.fetchval("SELECT text_embedding IS NULL FROM vehicles") is False
    await gql(IMPORT, {"input": {"rows": [row(0, description="New tyres")]}}, token=dealer.token)
    assert await db.fetchval("SELECT text_embedding IS NULL FROM vehicles") is True


async def test_provider_errors_are_retried_then_reported(fake_openai, tmp_path):
    client = OpenAI(make_settings(tmp_path, OPENAI_API_KEY=API_KEY, OPENAI_BASE_URL=fake_openai.url))
    try:
        fake_openai.fail_next = 2
        assert len((await client.embed(["a red car"]))[0]) == EMBEDDING_DIMENSIONS
        fake_openai.fail_next = 5
        with pytest.raises(ProviderError):
            await client.embed(["a red car"])
    finally:
        await client.close()
    wrong_key = OpenAI(make_settings(tmp_path, OPENAI_API_KEY="sk-wrong", OPENAI_BASE_URL=fake_openai.url))
    try:
        with pytest.raises(ProviderError, match="401"):
            await wrong_key.embed(["x"])
    finally:
        await wrong_key.close()


def test_unconfigured_provider_is_a_clear_error():
    from forecourt.domain.errors import DomainError

    with pytest.raises(DomainError) as exc:
        OpenAI(Settings(FORECOURT_ENV="test", OPENAI_API_KEY=""))
    assert exc.value.code == "PROVIDER_NOT_CONFIGURED"
    assert OpenAI.maybe(Settings(FORECOURT_ENV="test")) is None
    assert "sk-" not in repr(Settings(FORECOURT_ENV="test", OPENAI_API_KEY="sk-secret"))


async def test_reindex_command(database_url, tmp_path, fake_openai, gql, make_user, db):
    dealer = await make_user("dealer")
    for i in range(3):
        await create(gql, dealer, model=f"Camry {i}")
    await db.execute("UPDATE vehicles SET feature_vector = NULL")
    env = {"DATABASE_URL": database_url, "FORECOURT_DATA_DIR": str(tmp_path),
           "OPENAI_API_KEY": API_KEY, "OPENAI_BASE_URL": fake_openai.url}
    import os
    result = subprocess.run([sys.executable, "-m", "forecourt", "reindex"], capture_output=True, text=True,
                            cwd=ROOT, env={**os.environ, **env}, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "feature vectors rebuilt: 3" in result.stdout and "text embeddings computed: 3" in result.stdout
    assert await db.fetchval("SELECT count(*) FROM vehicles WHERE feature_vector IS NULL OR text_embedding IS NULL") == 0
    # the rebuilt vectors are indexed as they are
    assert await db.fetchval("""SELECT count(*) FROM vehicles v JOIN vehicle_vectors vv ON vv.vehicle_id = v.id
                                WHERE v.feature_vector = vv.feature_vector""") == 3
    assert API_KEY not in result.stdout + result.stderr
