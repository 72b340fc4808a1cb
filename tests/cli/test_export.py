"""export: an organisation built outside avatarsync becomes manifests + state,
and the first plan against them shows no changes."""

from __future__ import annotations

import json

from support.e2e import CLIENT


def test_export_then_plan_shows_no_changes(project, tmp_path):
    # Build an organisation directly over the API, as the web studio would.
    with project.http() as http:

        def post(path, body):
            r = http.post(path, json={**body, "client": CLIENT})
            assert r.status_code == 201, r.text
            return r.json()["id"]

        brain = post("/v3/brains", {"instructions": "Shared brain.", "greetingMessage": "Hi"})
        own = post("/v3/brains", {"instructions": "Only Bob's.", "greetingMessage": ""})
        voice = post("/v3/voices", {"identity": "Kore", "instructions": "Bright."})
        face = post("/v3/faces", {"identity": "tommy"})
        kb = post("/v3/knowledge-bases", {"name": "Help Centre", "description": "All answers"})
        added = http.post(
            f"/v3/knowledge-bases/{kb}/documents",
            json={"name": "faq.md", "description": "", "mimeType": "text/markdown"},
        ).json()
        assert http.put(added["uploadUrl"], content=b"# FAQ").status_code in (200, 204)
        doc_id = added["document"]["id"]
        assert http.patch(f"/v3/knowledge-bases/{kb}/documents/{doc_id}/index").status_code == 200
        post(
            "/v3/characters",
            {
                "name": "Alice Smith",
                "livekitIdentity": "alice",
                "brainId": brain,
                "voiceId": voice,
                "faceId": face,
                "knowledgeBaseId": kb,
                "search": True,
            },
        )
        post("/v3/characters", {"name": "Bob", "livekitIdentity": "bob", "brainId": own})
        post("/v3/characters", {"name": "Carol", "livekitIdentity": "carol", "brainId": brain})
        # someone else's character in the same organisation is never exported
        r = http.post(
            "/v3/characters", json={"name": "Other", "livekitIdentity": "o", "client": "x"}
        )
        assert r.status_code == 201

    out = tmp_path / "adopted"
    result = project.cli("export", "--env", "test", "--out", str(out))
    assert result.code == 0, result.text
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.yaml")) == [
        "avatarsync.yaml",
        "characters/alice-smith.yaml",
        "characters/bob.yaml",
        "characters/carol.yaml",
        "shared/brains.yaml",
        "shared/faces.yaml",
        "shared/knowledge-bases.yaml",
        "shared/voices.yaml",
    ]
    bob = (out / "characters" / "bob.yaml").read_text()
    assert "brain: bob-brain" in bob  # a brain only Bob uses is named after him
    assert "brain: brain\n" in (out / "characters" / "alice-smith.yaml").read_text()

    validate = project.cli("-C", str(out), "validate")
    assert validate.code == 0, validate.text
    plan = project.cli("-C", str(out), "plan", "--env", "test", "--json")
    assert plan.code == 0, plan.text
    changes = [c for c in json.loads(plan.out)["changes"] if c["action"] != "no-op"]
    assert changes == []

    assert "faq.md" in result.err  # it says the document could not be exported
    assert len(project.remote()["KnowledgeBase"][0]["documents"]) == 1

    again = project.cli("export", "--env", "test", "--out", str(out))
    assert again.code == 1 and "would overwrite" in again.err


def test_export_of_the_embedded_emulator_keeps_its_organisation(cli, tmp_path):
    source = tmp_path / "source"
    assert cli("-C", str(source), "init").code == 0
    assert cli("-C", str(source), "apply", "--env", "local", "--yes").code == 0
    out = tmp_path / "exported"
    exported = cli("-C", str(source), "export", "--env", "local", "--out", str(out))
    assert exported.code == 0, exported.err
    assert f"Next: avatarsync -C {out} plan --env local" in exported.err
    assert ".avatarsync/" in (out / ".gitignore").read_text()
    # The suggested next step plans against the same organisation: nothing to do.
    replanned = cli("-C", str(out), "plan", "--env", "local", "--detailed-exitcode")
    assert replanned.code == 0, replanned.out + replanned.err
    assert "No changes" in replanned.out
