"""render_plan_markdown: golden renderings and the size limit of a PR comment."""

from __future__ import annotations

import re
from collections.abc import Callable

from support.output_samples import LIVE_AGENT_ID, REAL_AGENT_ID, big_plan, make_plan

from avatarsync.output import render_plan_markdown
from avatarsync.planning.plan import Action, Change, FieldChange, Plan
from avatarsync.resources import Address

Golden = Callable[[str, str], None]


def _assert_well_formed(md: str) -> None:
    """Every fence closed, every <details> closed, and nothing nested wrongly."""
    open_fence: str | None = None
    depth = 0
    for line in md.splitlines():
        fence = re.match(r"^(`{3,})", line)
        if open_fence is None and fence:
            open_fence = fence.group(1)
        elif open_fence is not None and line == open_fence:
            open_fence = None
        elif open_fence is None:
            depth += line.count("<details>") - line.count("</details>")
            assert depth in (0, 1), line
    assert open_fence is None and depth == 0


def test_markdown_matches_golden(sample_plan: Plan, golden: Golden) -> None:
    md = render_plan_markdown(sample_plan)
    _assert_well_formed(md)
    golden("plan.md", md)


def test_no_changes_markdown(empty_plan: Plan) -> None:
    assert render_plan_markdown(empty_plan) == (
        "<!-- avatarsync plan: staging -->\n"
        "### avatarsync plan for `staging`\n"
        "\n"
        "**No changes.** Environment `staging` matches the manifests.\n"
        "\n"
        "- :warning: Voice/old is no longer in the manifests; run with --prune to delete it\n"
    )


def test_sensitive_values_are_masked(sample_plan: Plan) -> None:
    md = render_plan_markdown(sample_plan)
    assert LIVE_AGENT_ID not in md and REAL_AGENT_ID not in md
    assert "- elevenlabsAgentId: ***\n+ elevenlabsAgentId: ***\n" in md


def test_truncation_keeps_heading_summary_and_whole_blocks(
    sample_plan: Plan, golden: Golden
) -> None:
    full = render_plan_markdown(sample_plan)
    assert render_plan_markdown(sample_plan, max_chars=len(full)) == full
    cut = render_plan_markdown(sample_plan, max_chars=2000)
    assert len(cut) <= 2000
    _assert_well_formed(cut)
    golden("plan.truncated.md", cut)


def test_huge_plan_fits_a_github_comment() -> None:
    plan = big_plan(2000)
    md = render_plan_markdown(plan)
    assert len(md) <= 60000
    _assert_well_formed(md)
    assert md.startswith(
        "<!-- avatarsync plan: staging -->\n"
        "### avatarsync plan for `staging`\n\n"
        "**Plan: 1000 to create, 1000 to update, 0 to replace, 0 to delete.**\n\n"
        "| Action | Resource | Change |\n"
    )
    # The table is cut too, and says by how much; the rows kept are a prefix.
    rows = re.findall(r"^\| `[+~]` \| `(Brain/brain-\d{4})` \|", md, flags=re.MULTILINE)
    more = re.search(r"^\| \| … and (\d+) more changes \| \|$", md, flags=re.MULTILINE)
    assert more is not None and rows
    assert len(rows) + int(more.group(1)) == 2000
    assert rows == [f"Brain/brain-{i:04d}" for i in range(len(rows))]
    # No details fit after such a table; the note says what was kept and how to get all.
    assert md.count("<details>") == 0
    assert md.endswith(
        "> [!NOTE]\n"
        f"> This plan was truncated to fit in a comment: {len(rows)} of 2000 changes listed, "
        "details for 0 of 2000. For the full plan run `avatarsync plan --env staging --json`.\n"
    )


def test_medium_plan_keeps_the_whole_table_and_drops_details_from_the_end() -> None:
    plan = big_plan(60)
    md = render_plan_markdown(plan, max_chars=20000)
    assert len(md) <= 20000
    _assert_well_formed(md)
    assert "more changes" not in md
    assert md.count("| `+` |") + md.count("| `~` |") == 60
    kept = re.findall(r"<summary><code>[+~] (Brain/brain-\d{4})</code>", md)
    assert kept == [f"Brain/brain-{i:04d}" for i in range(len(kept))]
    assert 0 < len(kept) < 60
    assert f"60 of 60 changes listed, details for {len(kept)} of 60." in md


def test_free_text_cannot_break_the_table_or_inject_html() -> None:
    plan = make_plan(
        (
            Change(
                Address("Brain", "b"),
                Action.UPDATE,
                "a | b <img src=x> *bold* `tick`\nnext",
                remote_id="br_1",
                fields=(FieldChange("instructions", "x", "```\n</details>\n" + "y" * 90),),
            ),
        )
    )
    md = render_plan_markdown(plan)
    _assert_well_formed(md)
    assert (
        "| `~` | `Brain/b` | update: a \\| b &lt;img src=x&gt; \\*bold\\* \\`tick\\` next |" in md
    )
    # A fence longer than any backtick run in the body.
    assert (
        "\n````diff\n  instructions:\n@@ -1 +1,3 @@\n-     x\n+     ```\n+     </details>\n" in md
    )
