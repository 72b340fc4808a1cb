"""Renderers: typed results (Plan, ApplyReport) in, text out.

The last stage of the flow and the only one that knows how things look.
Renderers decide nothing — what changes and why was settled when the plan was
built — and do no I/O: the CLI picks the renderer and the colour
(`should_color`) and writes the payload to stdout. Every string they return
has been through `secret.scrub`, and sensitive fields always show the mask.

    render_plan_text      people, terminal or CI log (colour optional)
    render_plan_json      machines: the versioned contract, docs/plan-format.md
    render_plan_markdown  a pull-request comment, kept under GitHub's size limit
    render_apply_text / render_apply_json / render_apply_markdown / format_progress   apply
    render_environment_diff_text / render_environment_diff_json   diff SOURCE TARGET
    ProgressLines / LiveProgress   progress on stderr (timestamped lines, or a live display)
"""

from avatarsync.output._format import escape_controls
from avatarsync.output.apply_report import (
    format_progress,
    render_apply_json,
    render_apply_markdown,
    render_apply_text,
)
from avatarsync.output.color import should_color
from avatarsync.output.environment_diff import (
    render_environment_diff_json,
    render_environment_diff_text,
)
from avatarsync.output.plan_json import render_plan_json
from avatarsync.output.plan_markdown import render_plan_markdown
from avatarsync.output.plan_text import render_plan_text
from avatarsync.output.progress import LiveProgress, ProgressLines, open_progress

__all__ = [
    "LiveProgress",
    "ProgressLines",
    "escape_controls",
    "format_progress",
    "open_progress",
    "render_apply_json",
    "render_apply_markdown",
    "render_apply_text",
    "render_environment_diff_json",
    "render_environment_diff_text",
    "render_plan_json",
    "render_plan_markdown",
    "render_plan_text",
    "should_color",
]
