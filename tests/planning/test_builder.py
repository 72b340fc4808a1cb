"""build_plan is pure: every case here is desired + live + state in, Plan out."""

from __future__ import annotations

import dataclasses

import pytest
from support.plans import desired, doc, live, raw, res, state

from avatarsync.errors import PlanError, UnsafePlanError
from avatarsync.planning.builder import PlanOptions, build_plan, resource_fingerprint
from avatarsync.planning.plan import KNOWN_AFTER_APPLY, Action, Plan
from avatarsync.resources import Address


def plan(d, lv, s, **options) -> Plan:
    return build_plan(d, lv, s, options=PlanOptions(**options), plan_id="p", created_at="t")


def actions(p: Plan) -> dict[str, str]:
    return {str(c.address): c.action.value for c in p.changes}


def test_empty_org_creates_leaves_before_characters():
    d = desired(
        res("Character", "tommy", brain="support", face="tface"),
        res("Brain", "support"),
        res("Face", "tface"),
    )
    p = plan(d, live(), state())
    assert [str(c.address) for c in p.changes] == ["Face/tface", "Brain/support", "Character/tommy"]
    assert set(actions(p).values()) == {"create"}
    tommy = p.change(Address("Character", "tommy"))
    assert tommy.depends_on == (Address("Brain", "support"), Address("Face", "tface"))
    brain_field = next(f for f in tommy.fields if f.field == "brain")
    assert brain_field.after == f"support {KNOWN_AFTER_APPLY}"
    assert p.summary_line() == "Plan: 3 to create, 0 to update, 0 to replace, 0 to delete."


def test_unchanged_resources_are_noop_despite_server_defaults():
    d = desired(res("Brain", "support"), res("Character", "tommy", brain="support"))
    lv = live(("Brain", raw("Brain", "b1")), ("Character", raw("Character", "c1", brainId="b1")))
    p = plan(d, lv, state(Brain__support="b1", Character__tommy="c1"))
    assert actions(p) == {"Brain/support": "no-op", "Character/tommy": "no-op"}
    assert not p.has_changes


def test_update_shows_field_before_and_after():
    d = desired(res("Brain", "support", instructions="New text."))
    lv = live(("Brain", raw("Brain", "b1")))
    p = plan(d, lv, state(Brain__support="b1"))
    (change,) = p.changes
    assert change.action is Action.UPDATE and change.remote_id == "b1"
    assert [(f.field, f.before, f.after) for f in change.fields] == [
        ("instructions", "Be kind.", "New text.")
    ]
    assert change.reason == "changed in the manifests" and not change.drift


def test_face_change_replaces_and_relinks_character():
    d = desired(res("Face", "tface", identity="other"), res("Character", "tommy", face="tface"))
    lv = live(("Face", raw("Face", "f1")), ("Character", raw("Character", "c1", faceId="f1")))
    p = plan(d, lv, state(Face__tface="f1", Character__tommy="c1"))
    face = p.change(Address("Face", "tface"))
    assert face.action is Action.REPLACE
    assert "identity cannot be updated in place" in face.reason
    tommy = p.change(Address("Character", "tommy"))
    assert tommy.action is Action.UPDATE
    assert [(f.field, f.after) for f in tommy.fields] == [("face", f"tface {KNOWN_AFTER_APPLY}")]


def test_livekit_identity_forces_character_replace_but_name_does_not():
    d = desired(res("Character", "tommy", displayName="T2", livekitIdentity="t2"))
    p = plan(d, live(("Character", raw("Character", "c1"))), state(Character__tommy="c1"))
    (change,) = p.changes
    assert change.action is Action.REPLACE
    assert {f.field: f.forces_replace for f in change.fields} == {
        "displayName": False,
        "livekitIdentity": True,
    }


def test_removed_resource_is_retained_without_prune_and_deleted_with_it():
    d = desired(res("Brain", "keep"))
    lv = live(("Brain", raw("Brain", "b1")), ("Brain", raw("Brain", "b2", instructions="old")))
    s = state(Brain__keep="b1", Brain__gone="b2")
    p = plan(d, lv, s)
    assert "Brain/gone" not in actions(p)
    assert p.retained == (Address("Brain", "gone"),)
    assert p.warnings == ()
    p = plan(d, lv, s, prune=True)
    assert actions(p)["Brain/gone"] == "delete"
    assert p.changes[-1].address == Address("Brain", "gone")


def test_prune_deletes_characters_before_what_they_link():
    lv = live(
        ("Brain", raw("Brain", "b1")),
        ("Character", raw("Character", "c1", brainId="b1")),
        ("Brain", raw("Brain", "b9", instructions="keep")),
    )
    s = state(Brain__support="b1", Character__tommy="c1", Brain__keep="b9")
    p = plan(desired(res("Brain", "keep", instructions="keep")), lv, s, prune=True)
    order = [str(c.address) for c in p.changes if c.action is Action.DELETE]
    assert order == ["Character/tommy", "Brain/support"]
    assert p.change(Address("Brain", "support")).depends_on == (Address("Character", "tommy"),)


def test_deleting_everything_needs_an_explicit_flag():
    lv = live(("Brain", raw("Brain", "b1")))
    s = state(Brain__support="b1")
    unsafe = plan(desired(), lv, s, prune=True)
    assert actions(unsafe) == {"Brain/support": "delete"}  # built, so it can be shown
    with pytest.raises(UnsafePlanError, match="would delete all 1 managed"):
        unsafe.check_safety()
    p = plan(desired(), lv, s, prune=True, allow_delete_all=True)
    assert actions(p) == {"Brain/support": "delete"}
    p.check_safety()


def test_drift_is_flagged_when_git_did_not_change():
    brain = res("Brain", "support")
    s = state(Brain__support="b1")
    s.resources[Address("Brain", "support")].fingerprint = resource_fingerprint(brain)
    lv = live(("Brain", raw("Brain", "b1", instructions="edited in the studio")))
    (change,) = plan(desired(brain), lv, s).changes
    assert change.action is Action.UPDATE and change.drift
    assert "edited outside avatarsync" in change.reason


def test_a_relink_to_a_replaced_resource_is_not_drift():
    # Only the face changed in git; the character follows it, nobody edited it.
    tommy = res("Character", "tommy", face="tface")
    d = desired(res("Face", "tface", identity="other"), tommy)
    lv = live(("Face", raw("Face", "f1")), ("Character", raw("Character", "c1", faceId="f1")))
    s = state(Face__tface="f1", Character__tommy="c1")
    s.resources[Address("Character", "tommy")].fingerprint = resource_fingerprint(tommy)
    change = plan(d, lv, s).change(Address("Character", "tommy"))
    assert change.action is Action.UPDATE and not change.drift
    assert change.reason == "relinked: a resource it links is created or replaced"
    # ...unless the live character was also edited by hand
    edited = live(
        ("Face", raw("Face", "f1")),
        ("Character", raw("Character", "c1", faceId="f1", name="Renamed live")),
    )
    change = plan(d, edited, s).change(Address("Character", "tommy"))
    assert change.drift and "edited outside avatarsync" in change.reason


def test_resource_deleted_outside_is_recreated_as_drift():
    (change,) = plan(desired(res("Brain", "support")), live(), state(Brain__support="b1")).changes
    assert change.action is Action.CREATE and change.drift
    assert "no longer exists live" in change.reason


def test_unrecorded_object_with_our_client_is_adopted_not_created_twice():
    # e.g. an apply was killed after the POST committed but before state was saved
    lv = live(("Brain", raw("Brain", "b7")))
    (change,) = plan(desired(res("Brain", "support")), lv, state()).changes
    assert change.action is Action.NOOP and change.adopt and change.remote_id == "b7"
    assert plan(desired(res("Brain", "support")), lv, state()).has_changes


def test_two_identical_brains_adopt_two_distinct_objects():
    d = desired(res("Brain", "a"), res("Brain", "b"))
    lv = live(("Brain", raw("Brain", "b1")), ("Brain", raw("Brain", "b2")))
    p = plan(d, lv, state())
    assert sorted(c.remote_id for c in p.changes) == ["b1", "b2"]


def test_inline_brain_is_what_its_character_links():
    d = desired(
        res("Character", "tommy", brain="tommy.brain"),
        res("Brain", "tommy.brain", owner="tommy", instructions="Inline."),
    )
    lv = live(
        ("Brain", raw("Brain", "b1", instructions="Something else")),
        ("Character", raw("Character", "c1", brainId="b1")),
    )
    p = plan(d, lv, state(Character__tommy="c1"))
    brain = p.change(Address("Brain", "tommy.brain"))
    assert brain.action is Action.UPDATE and brain.remote_id == "b1" and brain.adopt
    assert p.change(Address("Character", "tommy")).action is Action.NOOP


def test_inline_and_shared_forms_plan_identically():
    shared = desired(res("Brain", "b"), res("Character", "tommy", brain="b"))
    inline = desired(
        res("Brain", "tommy.brain", owner="tommy"), res("Character", "tommy", brain="tommy.brain")
    )
    strip = lambda p: [(c.address.kind, c.action, len(c.fields)) for c in p.changes]  # noqa: E731
    assert strip(plan(shared, live(), state())) == strip(plan(inline, live(), state()))


def test_documents_diff_by_content_hash(tmp_path):
    a, b = doc("a.md", b"alpha", tmp_path), doc("b.md", b"beta", tmp_path)
    kb = res("KnowledgeBase", "faq", docs=(a, b))
    kb_live = raw(
        "KnowledgeBase",
        "k1",
        documents=[
            {"id": "d1", "name": "a.md", "size": 5, "status": "indexed", "description": ""},
            {"id": "d3", "name": "old.md", "size": 3, "status": "indexed", "description": ""},
        ],
    )
    s = state(KnowledgeBase__faq="k1")
    from avatarsync.state import DocumentState

    s.resources[Address("KnowledgeBase", "faq")].documents = {"a.md": DocumentState("d1", "0" * 64)}
    (change,) = plan(desired(kb), live(("KnowledgeBase", kb_live)), s).changes
    assert change.action is Action.UPDATE and change.fields == ()
    assert [(d.action.value, d.name) for d in change.documents] == [
        ("replace", "a.md"),
        ("create", "b.md"),
        ("delete", "old.md"),
    ]
    s.resources[Address("KnowledgeBase", "faq")].documents["a.md"] = DocumentState("d1", a.sha256)
    kept = kb_live["documents"][0]
    added = {"id": "d2", "name": "b.md", "size": 4, "status": "indexed", "description": ""}
    kb_live["documents"] = [kept, added]
    (change,) = plan(desired(kb), live(("KnowledgeBase", kb_live)), s).changes
    assert change.action is Action.NOOP, change.documents


def test_target_pulls_in_dependencies_and_exclude_drops_dependents():
    d = desired(
        res("Brain", "support"), res("Voice", "v"), res("Character", "tommy", brain="support")
    )
    p = plan(d, live(), state(), targets=(Address("Character", "tommy"),))
    assert set(actions(p)) == {"Character/tommy", "Brain/support"}
    p = plan(d, live(), state(), excludes=(Address("Brain", "support"),))
    assert set(actions(p)) == {"Voice/v"}
    with pytest.raises(PlanError, match="no such resource"):
        plan(d, live(), state(), targets=(Address("Brain", "nope"),))


def test_sensitive_fields_are_marked_and_masked_in_the_saved_form():
    d = desired(
        res(
            "Brain",
            "support",
            instructions="token sk-123456",
            sensitive=frozenset({"instructions"}),
        )
    )
    p = plan(d, live(), state())
    serialised = str(p.to_dict())
    assert "sk-123456" not in serialised
    assert p.changes[0].fields[0].sensitive


def test_plan_round_trips_through_its_dict_form():
    d = desired(res("Face", "f", identity="other"), res("Character", "tommy", face="f"))
    lv = live(("Face", raw("Face", "f1")), ("Character", raw("Character", "c1", faceId="f1")))
    p = plan(d, lv, state(Face__f="f1", Character__tommy="c1"), prune=True)
    assert Plan.from_dict(p.to_dict()) == dataclasses.replace(p)


def test_output_order_is_deterministic():
    d = desired(*(res("Brain", f"b{i}", instructions=str(i)) for i in range(20)))
    first = plan(d, live(), state())
    again = plan(desired(*reversed(list(d.resources.values()))), live(), state())
    assert [c.address for c in first.changes] == [c.address for c in again.changes]


def test_knowledge_base_without_documents_key_leaves_live_documents_alone():
    kb = dataclasses.replace(res("KnowledgeBase", "faq"), documents_managed=False)
    kb_live = raw(
        "KnowledgeBase",
        "k1",
        documents=[{"id": "d1", "name": "a.md", "size": 5, "status": "indexed"}],
    )
    (change,) = plan(
        desired(kb), live(("KnowledgeBase", kb_live)), state(KnowledgeBase__faq="k1")
    ).changes
    assert change.action is Action.NOOP
    managed = res("KnowledgeBase", "faq")  # documents: [] -> delete them
    (change,) = plan(
        desired(managed), live(("KnowledgeBase", kb_live)), state(KnowledgeBase__faq="k1")
    ).changes
    assert [(d.action, d.name) for d in change.documents] == [(Action.DELETE, "a.md")]
    renamed = dataclasses.replace(kb, spec={**kb.spec, "displayName": "New"})
    (change,) = plan(
        desired(renamed), live(("KnowledgeBase", kb_live)), state(KnowledgeBase__faq="k1")
    ).changes
    assert change.action is Action.REPLACE and "will not be carried over" in change.reason


def test_a_field_that_was_secret_when_applied_stays_masked_after_the_secret_is_gone():
    # Applied with elevenlabsAgentId from ${env.SECRET}; the manifest now writes it plainly.
    d = desired(res("Character", "tommy", elevenlabsAgentId="plain-now"))
    lv = live(("Character", raw("Character", "c1", elevenlabsAgentId="the-old-secret")))
    s = state(Character__tommy="c1")
    s.resources[Address("Character", "tommy")].sensitive = frozenset({"elevenlabsAgentId"})
    (change,) = plan(d, lv, s).changes
    (field,) = change.fields
    assert field.sensitive
    saved = change.to_dict()["fields"][0]
    assert saved["before"] == "***" and saved["after"] == "***"
    assert "the-old-secret" not in str(change.to_dict())


@pytest.mark.parametrize(
    ("status", "expected", "warned"),
    [
        ("Indexed", None, False),  # case does not matter
        ("PROCESSING", None, False),
        ("FAILED", "the live document failed (status 'FAILED'); upload again", False),
        ("Error", "the live document failed (status 'Error'); upload again", False),
        ("pending", "the live document's upload never completed (status 'pending')", False),
        (None, "the live document's upload never completed (status None)", False),
        ("quarantined", None, True),  # unknown: warn, never re-upload on every run
    ],
)
def test_document_statuses_are_read_case_insensitively(tmp_path, status, expected, warned):
    from avatarsync.state import DocumentState

    a = doc("a.md", b"alpha", tmp_path)
    kb = res("KnowledgeBase", "faq", docs=(a,))
    kb_live = raw(
        "KnowledgeBase",
        "k1",
        documents=[{"id": "d1", "name": "a.md", "size": 5, "status": status, "description": ""}],
    )
    s = state(KnowledgeBase__faq="k1")
    s.resources[Address("KnowledgeBase", "faq")].documents = {"a.md": DocumentState("d1", a.sha256)}
    p = plan(desired(kb), live(("KnowledgeBase", kb_live)), s)
    (change,) = p.changes
    reasons = [d.reason for d in change.documents]
    assert reasons == ([expected] if expected else [])
    assert any("which avatarsync does not know" in w for w in p.warnings) is warned
