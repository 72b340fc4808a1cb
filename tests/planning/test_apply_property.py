"""Property: whatever the manifests and whatever the live starting point,
apply then plan is empty, and nothing is duplicated.

Each example uses its own `client` tag on one shared emulator: ownership
filtering is exactly what keeps examples (and real environments) apart.
"""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.plans import res

from avatarsync.emulator import DEFAULT_API_KEY, EmulatorConfig, EmulatorServer
from avatarsync.planning.apply import apply_plan
from avatarsync.planning.builder import PlanOptions, build_plan
from avatarsync.planning.live import fetch_live, natural_key
from avatarsync.providers.equos import EquosClient, to_body
from avatarsync.resources import API_KINDS, Address, DesiredState, Kind
from avatarsync.secret import Secret
from avatarsync.state import FileStateStore, ResourceState

_clients = itertools.count()

TEXTS = st.sampled_from(["Be kind.", "Be brief.", "Sell {{ plan }}.", "Help."])
VOICES = st.sampled_from(["Puck", "Kore", "Charon"])


@st.composite
def manifests(draw) -> list:
    brains = [
        res(
            "Brain",
            f"b{i}",
            instructions=draw(TEXTS),
            greetingMessage=draw(st.sampled_from([None, "Hi"])),
        )
        for i in range(draw(st.integers(0, 3)))
    ]
    voices = [
        res(
            "Voice",
            f"v{i}",
            identity=draw(VOICES),
            instructions=draw(st.sampled_from([None, "Calm"])),
        )
        for i in range(draw(st.integers(0, 2)))
    ]
    out = [*brains, *voices]
    for i in range(draw(st.integers(0, 3))):
        links = {}
        if brains and draw(st.booleans()):
            links["brain"] = draw(st.sampled_from(brains)).key
        elif draw(st.booleans()):
            inline = res("Brain", f"c{i}.brain", owner=f"c{i}", instructions=draw(TEXTS))
            out.append(inline)
            links["brain"] = inline.key
        if voices and draw(st.booleans()):
            links["voice"] = draw(st.sampled_from(voices)).key
        out.append(
            res(
                "Character",
                f"c{i}",
                displayName=f"Char {i}",
                livekitIdentity=draw(st.sampled_from([f"c{i}", f"c{i}-x"])),
                search=draw(st.booleans()),
                **links,
            )
        )
    return out


# What already exists before apply: for each desired resource, nothing, a
# faithful copy (created but unrecorded), or a drifted copy; plus junk.
START = st.sampled_from(["absent", "copy", "drifted", "recorded", "stale-id"])


@pytest.fixture(scope="module")
def server():
    with EmulatorServer(EmulatorConfig()) as s:
        yield s


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(resources=manifests(), data=st.data())
def test_apply_then_plan_is_empty(server, tmp_path_factory, resources, data):
    client_tag = f"prop-{next(_clients)}"
    d = DesiredState("test", client_tag, {r.address: r for r in resources})
    store = FileStateStore(
        tmp_path_factory.mktemp("s") / "state.json", environment="test", client=client_tag
    )
    starts = {r.address: data.draw(START, label=str(r.address)) for r in resources}
    junk = data.draw(st.lists(TEXTS, max_size=2), label="junk brains")

    async def go():
        async with EquosClient(server.url, Secret(DEFAULT_API_KEY)) as client:
            state = store.load()
            ids: dict[Address, str] = {}
            preexisting: set[str] = set()
            for r in sorted(resources, key=lambda r: API_KINDS.index(Kind(r.kind))):
                how = starts[r.address]
                if how == "stale-id":
                    state.resources[r.address] = ResourceState("does-not-exist")
                if how not in ("copy", "drifted", "recorded"):
                    continue
                spec = dict(r.spec)
                if how == "drifted" and r.kind == "Brain":
                    spec["instructions"] = "edited in the studio"
                links = {f: ids.get(t) for f, t in r.refs.items()}
                if r.kind == "Character" and None in links.values():
                    continue  # its target was not pre-created
                obj = await client.create(
                    Kind(r.kind), to_body(r.kind, spec, link_ids=links, client=client_tag)
                )
                ids[r.address] = obj["id"]
                preexisting.add(obj["id"])
                if how == "recorded":
                    state.resources[r.address] = ResourceState(obj["id"])
            for text in junk:
                body = {"instructions": text + " junk", "greetingMessage": "", "client": client_tag}
                preexisting.add((await client.create(Kind.BRAIN, body))["id"])
            store.save(state)

            live = await fetch_live(client, client_tag)
            plan = build_plan(
                d, live, state, options=PlanOptions(prune=True), plan_id="p", created_at="t"
            )
            report = await apply_plan(plan, d, client, store, state)
            store.compact(state)
            assert report.ok, report.error

            live = await fetch_live(client, client_tag)
            after = build_plan(
                d, live, store.load(), options=PlanOptions(prune=True), plan_id="q", created_at="t"
            )
            assert not after.has_changes, [c for c in after.changes if c.is_change or c.adopt]

            # every desired resource is exactly one live object, and no two
            # addresses share one
            state = store.load()
            recorded = [state.id_of(a) for a in d.resources]
            assert None not in recorded and len(set(recorded)) == len(recorded)
            for a, r in d.resources.items():
                got = live.get(a.kind, state.id_of(a))
                assert natural_key(a.kind, got.spec) == natural_key(a.kind, r.spec)
            for a, r in d.resources.items():
                if r.kind == "Character":
                    for f, t in r.refs.items():
                        assert live.get(a.kind, state.id_of(a)).spec[f] == state.id_of(t)
            # No duplicates: every object apply created is the one state
            # records; leftovers can only be unmatched pre-existing objects.
            created_by_apply = {i for (_, i) in live.resources} - preexisting
            assert created_by_apply <= set(recorded)

    asyncio.run(go())
