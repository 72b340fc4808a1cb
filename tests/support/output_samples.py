"""Sample plans and reports for the renderer tests, built from the dataclasses.

`sample_plan` touches every feature a renderer has to show: each action,
drift, adoption, KNOWN_AFTER_APPLY, a sensitive field holding its real value
(as diff builds it), long text, documents, no-ops, warnings and retained
resources. Golden files in `golden/` pin their rendering byte for byte;
`AVATARSYNC_UPDATE_GOLDEN=1 pytest tests/output` rewrites them.
"""

from __future__ import annotations

from avatarsync.planning.plan import (
    KNOWN_AFTER_APPLY,
    Action,
    Change,
    DocumentChange,
    FieldChange,
    Plan,
)
from avatarsync.planning.report import ApplyReport, Outcome, Status
from avatarsync.resources import Address

OLD_INSTRUCTIONS = """\
You help {{ customer_name }} with questions about Widget.
Be brief and friendly.
Never promise refunds.
Escalate billing questions to a human.
Answer in the customer's language.
"""

NEW_INSTRUCTIONS = """\
You help {{ customer_name }} with questions about Widget Pro.
Be brief and friendly.
Never promise refunds.
Escalate billing questions to a human.
Answer in the customer's language.
Mention the status page when the service is down.
"""


LONG_GREETING = (
    "Hello and welcome to Acme support, I am Tommy and I can help with orders, returns and billing."
)

# Real values of a sensitive field, as diff puts them in a FieldChange.
LIVE_AGENT_ID = "agent-live-0123"
REAL_AGENT_ID = "agent-real-4567"


def make_plan(changes: tuple[Change, ...], **overrides: object) -> Plan:
    fields: dict[str, object] = {
        "plan_id": "pl_0001",
        "environment": "staging",
        "client": "acme",
        "changes": changes,
        "state_serial": 7,
        "state_lineage": "5c2d7a8e-lineage",
        "live_fingerprint": "sha256:live",
        "desired_fingerprint": "sha256:desired",
        "created_at": "2025-01-02T03:04:05Z",
    }
    fields.update(overrides)
    return Plan(**fields)  # type: ignore[arg-type]


def sample_changes() -> tuple[Change, ...]:
    """One of everything, with the reasons `diff.build_plan` writes."""
    brain = Address("Brain", "support")
    face = Address("Face", "tommy-face")
    return (
        Change(
            brain,
            Action.CREATE,
            "not yet created",
            fields=(
                FieldChange("instructions", None, OLD_INSTRUCTIONS),
                FieldChange("greetingMessage", None, "Hi, I'm Tommy from Acme."),
            ),
        ),
        Change(
            face,
            Action.REPLACE,
            "identity cannot be updated in place",
            remote_id="fc_1",
            fields=(FieldChange("identity", "tommy-v1", "tommy-v2", forces_replace=True),),
        ),
        Change(
            Address("Voice", "warm-puck"),
            Action.NOOP,
            "adopt unmanaged match into state",
            remote_id="vo_77",
            adopt=True,
        ),
        Change(
            Address("Brain", "legal"),
            Action.UPDATE,
            "edited outside avatarsync since the last apply; will be restored",
            remote_id="br_9",
            drift=True,
            fields=(
                FieldChange("instructions", OLD_INSTRUCTIONS, NEW_INSTRUCTIONS),
                FieldChange("greetingMessage", LONG_GREETING, LONG_GREETING + " How can I help?"),
            ),
        ),
        Change(
            Address("KnowledgeBase", "faq"),
            Action.UPDATE,
            "documents changed",
            remote_id="kb_3",
            adopt=True,
            documents=(
                DocumentChange(Action.CREATE, "returns.md", "new document", sha256="ab" * 32),
                DocumentChange(
                    Action.REPLACE, "faq.md", "content changed", remote_id="doc_1", sha256="cd" * 32
                ),
                DocumentChange(Action.DELETE, "old.md", "not in the manifests", remote_id="doc_2"),
            ),
        ),
        Change(Address("Brain", "unchanged"), Action.NOOP, "up to date", remote_id="br_5"),
        Change(
            Address("Character", "tommy"),
            Action.UPDATE,
            "changed in the manifests",
            remote_id="ch_1",
            fields=(
                FieldChange("displayName", "Old", "New"),
                FieldChange("face", "tommy-face", f"tommy-face {KNOWN_AFTER_APPLY}"),
                FieldChange("search", False, True),
                FieldChange("elevenlabsAgentId", LIVE_AGENT_ID, REAL_AGENT_ID, sensitive=True),
            ),
            depends_on=(brain, face),
        ),
        Change(
            Address("Character", "ada"),
            Action.CREATE,
            "id ch_9 no longer exists live (deleted outside avatarsync)",
            drift=True,
            fields=(
                FieldChange("displayName", None, "Ada"),
                FieldChange("brain", None, f"support {KNOWN_AFTER_APPLY}"),
                FieldChange("elevenlabsAgentId", None, REAL_AGENT_ID, sensitive=True),
            ),
            depends_on=(brain,),
        ),
        Change(
            Address("Voice", "old"), Action.DELETE, "removed from the manifests", remote_id="vo_2"
        ),
    )


def sample_plan() -> Plan:
    return make_plan(
        sample_changes(),
        # diff writes a warning for each retained resource, and lists it.
        warnings=(
            "Brain/x is no longer in the manifests; run with --prune to delete it",
            "Character/tommy: field 'search' is ignored by the emulator",
        ),
        retained=(Address("Brain", "x"), Address("Voice", "y")),
        options={"prune": False, "targets": [], "excludes": []},
    )


def empty_plan() -> Plan:
    return make_plan(
        (Change(Address("Brain", "support"), Action.NOOP, "up to date", remote_id="br_1"),),
        retained=(Address("Voice", "old"),),
    )


def sample_report() -> ApplyReport:
    return ApplyReport(
        plan_id="pl_0001",
        environment="staging",
        outcomes=[
            Outcome(
                Address("Brain", "support"), Action.CREATE, Status.DONE, "created", "br_123", 0.21
            ),
            Outcome(
                Address("Face", "tommy-face"), Action.REPLACE, Status.DONE, "created", "fc_2", 1.5
            ),
            Outcome(
                Address("Voice", "warm-puck"),
                Action.NOOP,
                Status.DONE,
                "adopted into state",
                "vo_77",
            ),
            Outcome(
                Address("Character", "tommy"),
                Action.UPDATE,
                Status.FAILED,
                "422 Unprocessable Entity: name\n  must be at most 64 characters",
                "ch_1",
                0.4,
            ),
            Outcome(
                Address("Voice", "old"),
                Action.DELETE,
                Status.SKIPPED,
                "not done: apply stopped after an error",
            ),
        ],
        warnings=["Brain/support: the server dropped field 'greetingMessage'"],
        error=("Character/tommy: 422 Unprocessable Entity: name\n  must be at most 64 characters"),
        requests=6,
        seconds=2.5,
    )


def big_plan(n: int) -> Plan:
    """`n` brains with long instructions: half created, half rewritten."""
    changes = []
    for i in range(n):
        lines = [
            f"Rule {j} for brain {i}: answer questions about product line {j}." for j in range(30)
        ]
        text = "\n".join(lines) + "\n"
        address = Address("Brain", f"brain-{i:04d}")
        if i % 2 == 0:
            fields = (FieldChange("instructions", None, text),)
            changes.append(Change(address, Action.CREATE, "not yet created", fields=fields))
        else:
            new = text.replace("Rule 7 ", "Rule 7 (revised) ")
            fields = (FieldChange("instructions", text, new),)
            changes.append(
                Change(
                    address,
                    Action.UPDATE,
                    "changed in the manifests",
                    remote_id=f"br_{i}",
                    fields=fields,
                )
            )
    return make_plan(tuple(changes))
