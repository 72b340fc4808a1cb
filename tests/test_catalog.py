"""One table of identities (avatarsync.catalog) for the manifests and the emulator."""

from __future__ import annotations

from pathlib import Path

import httpx

from avatarsync import api
from avatarsync.catalog import FACE_IDENTITIES, VOICE_IDENTITIES


def test_every_catalog_identity_validates_quietly_and_the_emulator_accepts_it(
    tmp_path: Path, emulator, equos_http: httpx.Client
) -> None:
    (tmp_path / "avatarsync.yaml").write_text(
        'manifests: ["*.yaml"]\nenvironments: {local: {emulator: true}}\n'
    )
    docs = [
        f"kind: Voice\nname: v{i}\nspec: {{identity: {v}}}\n"
        for i, v in enumerate(VOICE_IDENTITIES)
    ]
    docs += [
        f"kind: Face\nname: f{i}\nspec: {{identity: {f}}}\n" for i, f in enumerate(FACE_IDENTITIES)
    ]
    (tmp_path / "all.yaml").write_text("---\n".join(docs))
    warnings = api.validate(api.load_project(tmp_path))
    assert [w for w in warnings if "identity" in w.message] == []
    for voice in VOICE_IDENTITIES:
        assert (
            equos_http.post("/v3/voices", json={"identity": voice, "instructions": ""}).status_code
            == 201
        )
    for face in FACE_IDENTITIES:
        assert equos_http.post("/v3/faces", json={"identity": face}).status_code == 201
    # What the catalog does not list, the emulator refuses: the server decides.
    assert equos_http.post("/v3/faces", json={"identity": "deborah"}).status_code == 400


def test_an_unknown_identity_warns_and_two_characters_sharing_a_livekit_identity_warn(
    tmp_path: Path,
) -> None:
    (tmp_path / "avatarsync.yaml").write_text(
        'manifests: ["*.yaml"]\nenvironments: {local: {emulator: true}}\n'
    )
    (tmp_path / "m.yaml").write_text(
        "kind: Face\nname: deb\nspec: {identity: deborah}\n---\n"
        "kind: Character\nname: a\nspec: {displayName: A, livekitIdentity: same, face: deb}\n---\n"
        "kind: Character\nname: b\nspec: {displayName: B, livekitIdentity: same}\n"
    )
    assert [str(w) for w in api.validate(api.load_project(tmp_path))] == [
        "m.yaml:3:18: warning: face identity 'deborah' is not one avatarsync knows; the "
        "platform decides (its gallery changes between releases)",
        "m.yaml:11:41: warning: Character 'b' has the same livekitIdentity 'same' as "
        "Character 'a' (m.yaml:7:41): both would join a room as one participant",
    ]
